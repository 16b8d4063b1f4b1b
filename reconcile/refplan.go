package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/source"
)

// RefFetcher checks out an arbitrary ref of the remote in a directory of its
// own (source.Repo.FetchRef), leaving the tracked checkout alone.
type RefFetcher interface {
	FetchRef(ctx context.Context, ref, dir string) (source.Commit, error)
}

// RefPlan is the plan of a ref's head (a pull request) against the live
// host: what merging it would do. An invalid head has Errors and no Plan.
type RefPlan struct {
	Ref     string        `json:"ref"`
	Commit  string        `json:"commit"`
	Subject string        `json:"subject,omitempty"`
	Valid   bool          `json:"valid"`
	Errors  config.Errors `json:"errors,omitempty"`
	Plan    *diff.Plan    `json:"plan,omitempty"`
	// Changes counts the services the plan changes.
	Changes int `json:"changes"`
	// Text is the plan as `orca-sync plan` prints it, or the validation
	// errors one per line.
	Text string `json:"text"`
}

// ErrNoRefFetch means the loop's source cannot fetch other refs, or no
// directory was given for them.
var ErrNoRefFetch = errors.New("this source cannot check out other refs")

// PlanRef fetches ref (e.g. "refs/pull/7/head") into Options.RefDir,
// validates it like a sync would and plans it against the live containers.
// It applies nothing and never touches the tracked checkout. Calls run one
// at a time.
func (l *Loop) PlanRef(ctx context.Context, ref string) (RefPlan, error) {
	fetcher, ok := l.opts.Source.(RefFetcher)
	if !ok || l.opts.RefDir == "" {
		return RefPlan{}, ErrNoRefFetch
	}
	l.refMu.Lock()
	defer l.refMu.Unlock()
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	commit, err := fetcher.FetchRef(fctx, ref, l.opts.RefDir)
	if err != nil {
		return RefPlan{}, err
	}
	rp := RefPlan{Ref: ref, Commit: commit.SHA, Subject: commit.Subject()}
	d, err := l.loadDir(ctx, l.opts.RefDir)
	var errs config.Errors
	if errors.As(err, &errs) {
		rp.Errors = errs
		lines := make([]string, len(errs))
		for i, e := range errs {
			lines[i] = e.Error()
		}
		rp.Text = strings.Join(lines, "\n")
		return rp, nil
	}
	if err != nil {
		return rp, fmt.Errorf("load %s at %s: %w", ref, short(commit.SHA), err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	plan, err := l.planOf(pctx, d)
	if err != nil {
		return rp, fmt.Errorf("plan %s at %s: %w", ref, short(commit.SHA), err)
	}
	var buf bytes.Buffer
	if err := plan.WriteText(&buf); err != nil {
		return rp, err
	}
	rc := d.Cluster.Reconcile
	if err := plan.CheckPruneGuard(rc.PruneGuard, rc.AllowEmpty || l.opts.AllowMassPrune); err != nil {
		fmt.Fprintf(&buf, "\nwarning: a sync would refuse this plan: %v\n", err)
	}
	rp.Valid, rp.Plan, rp.Text = true, &plan, strings.TrimRight(buf.String(), "\n")
	for _, c := range plan.Changes {
		if c.Action != diff.ActionNone {
			rp.Changes++
		}
	}
	return rp, nil
}
