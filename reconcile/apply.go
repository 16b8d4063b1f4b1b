package reconcile

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/state"
)

// route rebuilds the proxy's table from what runs now, before anything
// changes: after a restart, serving containers are routed at once, not only
// once a long apply ends.
func (s *syncer) route(ctx context.Context, r *run) error {
	s.syncRoutes(ctx, r.desired, r.live.All)
	return nil
}

// routeAfter rebuilds the table once more after an apply that changed
// containers, or, when the sync stopped early (an invalid commit), from the
// last valid checkout.
func (s *syncer) routeAfter(ctx context.Context, r *run) error {
	if s.opts.Routes == nil {
		return nil
	}
	d := r.desired
	if d == nil {
		d = s.last.desiredOf()
	} else if r.results == nil {
		return nil // nothing applied: the route step's table stands
	}
	if d == nil {
		return nil
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	live, err := s.opts.Runtime.List(lctx)
	if err != nil {
		s.log.Warn("proxy routes not refreshed: list containers", "error", err)
		return nil
	}
	s.syncRoutes(lctx, d, live)
	return nil
}

func (s *syncer) syncRoutes(ctx context.Context, d *config.Desired, live []diff.Container) {
	if s.opts.Routes == nil || d == nil {
		return
	}
	if err := s.opts.Routes.Sync(ctx, s.planner.Own(d), live, s.planner.NodeOf(d)); err != nil {
		s.log.Warn("proxy", "error", err)
	}
}

// guard refuses a mass prune.
func (s *syncer) guard(_ context.Context, r *run) error {
	rc := r.desired.Cluster.Reconcile
	if err := r.plan.CheckPruneGuard(rc.PruneGuard, rc.AllowEmpty || s.opts.AllowMassPrune); err != nil {
		return &stalledError{result: ResultFailed, err: fmt.Errorf("nothing applied: %w", err)}
	}
	return nil
}

// canary starts, supersedes, aborts or holds the canaries of the plan's
// services (the canary driver).
func (s *syncer) canary(ctx context.Context, r *run) error {
	s.canaries.step(ctx, r)
	return nil
}

// canaryAfter finishes the promotions the sync rolled.
func (s *syncer) canaryAfter(ctx context.Context, r *run) error {
	s.canaries.after(ctx, r)
	return nil
}

// apply carries out the plan and pins the specs whose rollout failed.
func (s *syncer) apply(ctx context.Context, r *run) error {
	r.record.Plan = planSummary(r.plan)
	// The values of an unchanged commit are what a later failed rollout
	// restores its containers with (Apply remembers those it applies).
	s.applier.Remember(r.desired)
	builds, buildFails := s.buildResults(r)
	r.results = append(r.canaryResults, builds...)
	if !r.plan.HasChanges() {
		s.rerunHooks(ctx, r)
		failed := append(failures(r.canaryResults), failures(r.hookResults)...)
		if len(failed)+len(buildFails) == 0 {
			return nil
		}
		return fmt.Errorf("%d changes failed: %s", len(failed)+len(buildFails), joinFailed(append(failed, buildFails...)))
	}
	// Recorded before anything changes, so a sync cut short by a crash shows
	// in the history as interrupted.
	r.record.Result = ResultRunning
	if id, err := s.opts.Store.AddSync(r.record); err != nil {
		s.log.Error("record sync start", "error", err)
	} else {
		r.record.ID = id
	}
	s.reporter.pending(r)
	applied := s.carryOut(ctx, r)
	r.results = append(r.results, applied...)
	s.rerunHooks(ctx, r)
	failed := append(failures(r.canaryResults), buildFails...)
	failed = append(failed, failures(r.hookResults)...)
	for _, res := range applied {
		s.opts.Metrics.rollout(strategyOf(r.plan, res), res.Failed())
		if !res.Failed() {
			if c := changeOf(r.plan, res); c != nil && c.Desired != nil {
				s.drift.ran(c.Desired)
			}
			continue
		}
		failed = append(failed, fmt.Sprintf("%s/%s: %s", res.Project, res.Service, res.Error))
		s.pinFailed(r, res)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d changes failed: %s", len(failed), len(r.results), strings.Join(failed, "; "))
	}
	return nil
}

// carryOut applies the plan with the container applier, or hands it to
// the scheduler (Swarm), which re-routes the proxy at each poll.
func (s *syncer) carryOut(ctx context.Context, r *run) []apply.Result {
	own := s.planner.Own(r.desired)
	if s.opts.Scheduler == nil {
		return s.applier.Apply(ctx, own, r.plan, r.commit.SHA)
	}
	watch := func(live []diff.Container) { s.syncRoutes(ctx, own, live) }
	return s.opts.Scheduler.Schedule(ctx, own, r.plan, r.commit.SHA, watch)
}

// pinFailed pins a failed rollout git (or a redeploy) asked for. A failed
// repair — heal, drift, liveness — keeps the deployed spec, is retried at
// the next sync, and repeated failures are flap suppression's to stop.
func (s *syncer) pinFailed(r *run, res apply.Result) {
	hash := hashOf(r.plan, res)
	// A refused pull is not a failed rollout: the fix is usually on the
	// host, so the next sync tries again (docs/guides/private-registries.md).
	if hash == "" || res.PullFailed || !s.pinnable(changeOf(r.plan, res)) {
		return
	}
	pin := state.Pin{Service: res.Project + "/" + res.Service, Hash: hash, Reason: firstLine(res.Error), Since: time.Now()}
	if err := s.opts.Store.Pin(pin); err != nil {
		s.log.Error("pin failed rollout", "service", pin.Service, "error", err)
	}
}

// pinnable reports whether a failed change is a rollout git or an operator
// asked for, rather than a repair of the deployed spec.
func (s *syncer) pinnable(c *diff.Change) bool {
	switch {
	case c == nil || c.Desired == nil || c.Action == diff.ActionRemove || c.Action == diff.ActionHeal:
		return false
	case c.Action == diff.ActionCreate || c.Reason == "redeploy":
		return true
	}
	return s.drift.gitChanged(c)
}

func failures(rs []apply.Result) []string {
	var failed []string
	for _, res := range rs {
		if res.Failed() {
			failed = append(failed, fmt.Sprintf("%s/%s: %s", res.Project, res.Service, res.Error))
		}
	}
	return failed
}

func planSummary(p diff.Plan) string {
	return fmt.Sprintf("%d to create, %d to update, %d to scale, %d to heal, %d to remove",
		p.Count(diff.ActionCreate), p.Count(diff.ActionUpdate), p.Count(diff.ActionScale),
		p.Count(diff.ActionHeal), p.Count(diff.ActionRemove))
}

func changeOf(p diff.Plan, res apply.Result) *diff.Change {
	for i := range p.Changes {
		if p.Changes[i].Project == res.Project && p.Changes[i].Service == res.Service {
			return &p.Changes[i]
		}
	}
	return nil
}

func hashOf(p diff.Plan, res apply.Result) string {
	if c := changeOf(p, res); c != nil && c.Desired != nil {
		return c.Desired.Hash
	}
	return ""
}

func strategyOf(p diff.Plan, res apply.Result) string {
	if c := changeOf(p, res); c != nil && c.Strategy != "" {
		return c.Strategy
	}
	return string(res.Action)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func short(sha string) string { return sha[:min(len(sha), 12)] }
