package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/orca-sync/orca-sync/source"
)

// prPlanNamespace is where the state file keeps the latest plan of each
// pull request serve planned, keyed by its number: the dashboard's Pull
// requests page lists them (docs/guides/pull-request-review.md).
const prPlanNamespace = "pr-plans"

// PRRef is the ref of pull request n's head, as GitHub and Gitea keep it.
func PRRef(n int) string { return fmt.Sprintf("refs/pull/%d/head", n) }

// PlanPR plans pull request n's head as PlanRef does and keeps the plan in
// the state file as the PR's latest, replacing an older one, so that it is
// listed after a restart too. A head the remote no longer has forgets the
// PR, and a PR forgotten while it was planned (closed) is not kept. A plan
// that cannot be kept is still returned (the reporter publishes it all the
// same); the failure is logged.
func (l *Loop) PlanPR(ctx context.Context, n int) (RefPlan, error) {
	if n < 1 {
		return RefPlan{}, fmt.Errorf("plan pull request %d: a pull request number is a positive integer", n)
	}
	rp := l.refs
	// Planned and kept under one hold, so that of two plans of one PR the
	// newer is kept.
	rp.mu.Lock()
	defer rp.mu.Unlock()
	started := time.Now()
	p, err := rp.planHeld(ctx, PRRef(n))
	if errors.Is(err, source.ErrNoSuchRef) {
		if ferr := l.ForgetPR(n); ferr != nil {
			l.log.Warn("pull request plan", "pr", n, "error", ferr)
		}
		return p, err
	}
	if err != nil {
		return p, err
	}
	rec := PRPlanRecord{Number: n, Planned: time.Now().UTC(), Commit: p.Commit, Subject: p.Subject,
		Valid: p.Valid, Changes: p.Changes, Text: p.Text}
	if err := l.keepPR(rec, started); err != nil {
		l.log.Warn("pull request plan not kept", "pr", n, "error", err)
	}
	return p, nil
}

// keepPR stores rec unless its PR was forgotten after started, while it
// was planned. Called with refs.mu held: no other plan is under way.
func (l *Loop) keepPR(rec PRPlanRecord, started time.Time) error {
	rp := l.refs
	rp.forgotMu.Lock()
	defer rp.forgotMu.Unlock()
	if at, ok := rp.forgot[rec.Number]; ok {
		if at.After(started) {
			return nil
		}
		delete(rp.forgot, rec.Number) // older than any plan under way
	}
	return l.opts.Store.Put(prPlanNamespace, strconv.Itoa(rec.Number), rec)
}

// PRPlans lists the kept plans of pull requests, newest first.
func (l *Loop) PRPlans() ([]PRPlanRecord, error) {
	keys, err := l.opts.Store.Keys(prPlanNamespace)
	if err != nil {
		return nil, fmt.Errorf("list pull request plans: %w", err)
	}
	out := make([]PRPlanRecord, 0, len(keys))
	for _, k := range keys {
		var rec PRPlanRecord
		ok, err := l.opts.Store.Get(prPlanNamespace, k, &rec)
		if err != nil {
			return nil, fmt.Errorf("read the plan of pull request %s: %w", k, err)
		}
		if ok { // else forgotten between Keys and Get
			out = append(out, rec)
		}
	}
	slices.SortFunc(out, func(a, b PRPlanRecord) int {
		if c := b.Planned.Compare(a.Planned); c != 0 {
			return c
		}
		return b.Number - a.Number
	})
	return out, nil
}

// ForgetPR drops the kept plan of pull request n (it was closed), and a
// plan of it under way will not be kept; one never kept is not an error.
// It never waits for a plan.
func (l *Loop) ForgetPR(n int) error {
	rp := l.refs
	rp.forgotMu.Lock()
	defer rp.forgotMu.Unlock()
	if rp.forgot == nil {
		rp.forgot = map[int]time.Time{}
	}
	rp.forgot[n] = time.Now()
	if err := l.opts.Store.Delete(prPlanNamespace, strconv.Itoa(n)); err != nil {
		return fmt.Errorf("forget the plan of pull request %d: %w", n, err)
	}
	return nil
}
