package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/planner"
	"github.com/orca-sync/orca-sync/source"
)

// RefFetcher checks out an arbitrary ref of the remote in a directory of its
// own (source.Repo.FetchRef), leaving the tracked checkout alone.
type RefFetcher interface {
	FetchRef(ctx context.Context, ref, dir string) (source.Commit, error)
}

// ErrNoRefFetch means the loop's source cannot fetch other refs, or no
// directory was given for them.
var ErrNoRefFetch = errors.New("this source cannot check out other refs")

// PlanRef fetches ref (e.g. "refs/pull/7/head") into Options.RefDir,
// validates it like a sync would and plans it against the live containers.
// It applies nothing and never touches the tracked checkout. Calls run one
// at a time.
func (l *Loop) PlanRef(ctx context.Context, ref string) (RefPlan, error) {
	return l.refs.plan(ctx, ref)
}

// refPlanner plans other refs than the tracked branch (pull request heads)
// in a checkout directory of its own, one at a time.
type refPlanner struct {
	opts    Options
	loader  loader
	planner planner.Planner
	// mu serialises plans, which reuse one checkout directory.
	mu sync.Mutex
	// forgot is when each pull request was last forgotten (prplans.go),
	// under its own lock so that a forget never waits for a plan.
	forgotMu sync.Mutex
	forgot   map[int]time.Time
}

func (rp *refPlanner) plan(ctx context.Context, ref string) (RefPlan, error) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.planHeld(ctx, ref)
}

// planHeld is plan with rp.mu held.
func (rp *refPlanner) planHeld(ctx context.Context, ref string) (RefPlan, error) {
	fetcher, ok := rp.opts.Source.(RefFetcher)
	if !ok || rp.opts.RefDir == "" {
		return RefPlan{}, ErrNoRefFetch
	}
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	commit, err := fetcher.FetchRef(fctx, ref, rp.opts.RefDir)
	if err != nil {
		return RefPlan{}, err
	}
	out := RefPlan{Ref: ref, Commit: commit.SHA, Subject: commit.Subject()}
	d, err := rp.loader.load(ctx, rp.opts.RefDir, commit.SHA)
	var errs config.Errors
	if errors.As(err, &errs) {
		out.Errors = errs
		lines := make([]string, len(errs))
		for i, e := range errs {
			lines[i] = e.Error()
		}
		out.Text = strings.Join(lines, "\n")
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("load %s at %s: %w", ref, short(commit.SHA), err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	res, err := rp.planner.Plan(pctx, d, false)
	var notNode *planner.NotANodeError
	if errors.As(err, &notNode) {
		out.Valid, out.Plan, out.Text = true, &diff.Plan{}, err.Error()+": a merge applies nothing on this host"
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("plan %s at %s: %w", ref, short(commit.SHA), err)
	}
	plan := res.Plan
	var buf bytes.Buffer
	if err := plan.WriteText(&buf); err != nil {
		return out, err
	}
	rc := d.Cluster.Reconcile
	if err := plan.CheckPruneGuard(rc.PruneGuard, rc.AllowEmpty || rp.opts.AllowMassPrune); err != nil {
		fmt.Fprintf(&buf, "\nwarning: a sync would refuse this plan: %v\n", err)
	}
	out.Valid, out.Plan, out.Text = true, &plan, strings.TrimRight(buf.String(), "\n")
	for _, c := range plan.Changes {
		if c.Action != diff.ActionNone {
			out.Changes++
		}
	}
	return out, nil
}
