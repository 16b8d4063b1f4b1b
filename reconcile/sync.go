package reconcile

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/planner"
	"github.com/orca-sync/orca-sync/source"
	"github.com/orca-sync/orca-sync/state"
)

// Sync results, as recorded in history and counted in metrics.
const (
	ResultSucceeded   = "succeeded"
	ResultFailed      = "failed"
	ResultInvalid     = "invalid"
	ResultFetchFailed = "fetch-failed"
	// ResultRunning marks a sync in progress; one found at start-up was cut
	// short and becomes ResultInterrupted.
	ResultRunning     = "running"
	ResultInterrupted = "interrupted"
)

// run is one sync in progress; every step reads and extends it.
type run struct {
	pending pending
	record  state.SyncRecord
	commit  source.Commit
	desired *config.Desired
	live    planner.Live
	plan    diff.Plan
	pins    map[string]state.Pin
	results []apply.Result
	// repaired lists, per service key, the drift findings its change repairs.
	repaired map[string][]string
	// pendingSent: the commit status went to pending when the apply started.
	pendingSent bool
	// canaryResults are what canaryStep started; promoting the canaries
	// whose promotion this sync rolls.
	canaryResults []apply.Result
	promoting     []canaryRecord
}

// step is one stage of a sync. A stalledError ends the sync without retrying
// until git changes; any other error ends it and the next tick tries again.
type step func(ctx context.Context, r *run) error

// stalledError is a problem only a new commit (or an operator) can fix: an
// invalid checkout, a refused prune.
type stalledError struct {
	result string
	err    error
}

func (e *stalledError) Error() string { return e.err.Error() }
func (e *stalledError) Unwrap() error { return e.err }

// SyncOnce runs one sync now and returns its record. trigger names what asked
// for it; "" takes the trigger of the pending signal.
func (l *Loop) SyncOnce(ctx context.Context, trigger string) state.SyncRecord {
	r := &run{pending: l.takePending(trigger)}
	r.record = state.SyncRecord{Trigger: r.pending.trigger, Started: time.Now()}
	l.setSyncing(true)
	defer l.setSyncing(false)

	var err error
	for _, s := range []step{l.fetch, l.load, l.planStep, l.routeStep, l.guard, l.canaryStep, l.applyStep} {
		if err = s(ctx, r); err != nil {
			break
		}
	}
	l.canaryAfter(ctx, r)
	l.routeAfter(ctx, r)
	l.finish(ctx, r, err)
	return r.record
}

func (l *Loop) setSyncing(on bool) {
	l.mu.Lock()
	l.syncing = on
	l.mu.Unlock()
}

// fetch updates the checkout. A failed fetch is reported, and the sync goes on
// with the last good checkout so drift is still repaired.
func (l *Loop) fetch(ctx context.Context, r *run) error {
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	commit, err := l.opts.Source.Sync(fctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.last.fetchErr = err.Error()
		l.log.Warn("fetch failed; keeping the last good checkout", "error", err)
		if l.last.commit.SHA == "" {
			return fmt.Errorf("fetch: %w", err)
		}
		r.commit = l.last.commit
		r.record.Error = "fetch failed: " + err.Error()
		return nil
	}
	l.last.fetchErr = ""
	r.commit = commit
	return nil
}

// loadDir parses and validates the infra tree of the checkout in dir and
// resolves its secrets, the same way for the tracked branch and for pull
// request heads: a file this host cannot decrypt or a missing name makes the
// whole commit invalid.
func (l *Loop) loadDir(ctx context.Context, dir string) (*config.Desired, error) {
	d, err := config.Load(filepath.Join(dir, l.opts.Path))
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = l.secrets.Resolve(sctx, d)
		cancel()
	}
	return d, err
}

// load parses and validates the checkout as a whole.
func (l *Loop) load(ctx context.Context, r *run) error {
	r.record.Commit, r.record.Message = r.commit.SHA, r.commit.Subject()
	d, err := l.loadDir(ctx, l.opts.Source.Dir())
	var errs config.Errors
	errors.As(err, &errs)
	l.mu.Lock()
	l.last.errs = errs
	if err == nil {
		l.last.desired, l.last.commit = d, r.commit
	}
	l.mu.Unlock()
	if err != nil {
		l.recoverLastValid(ctx)
		return &stalledError{result: ResultInvalid, err: fmt.Errorf("commit %s is invalid, nothing applied:\n%w", short(r.commit.SHA), err)}
	}
	l.rememberValid(r.commit.SHA)
	r.desired = d
	return nil
}

// planStep reads the live state and plans; pinned rollouts are held back,
// redeploys and moved images are forced.
func (l *Loop) planStep(ctx context.Context, r *run) error {
	live, err := l.planner.List(ctx, r.desired)
	if err != nil {
		return err
	}
	r.live = l.planner.Split(r.desired, l.confirmDied(ctx, r.pending, live.All))
	l.noteLive(r.live.All)
	desired := l.planner.Desire(ctx, r.desired, true)
	l.mu.Lock()
	l.last.services = desired
	l.mu.Unlock()
	r.plan = l.planner.Compute(r.desired, desired, r.live)
	l.forceReplace(ctx, r)
	// The drift check reuses the plan's list call; only containers not seen
	// before are inspected.
	findings := l.checkDrift(ctx, r.desired, r.commit.SHA, desired, r.live.Stable)
	r.repaired = l.applyDriftPolicy(&r.plan, findings)
	l.selfHeal(r)
	return l.holdPinned(r)
}

// routeStep rebuilds the proxy's table from what runs now, before anything
// changes: after a restart, serving containers are routed at once, not only
// once a long apply ends.
func (l *Loop) routeStep(ctx context.Context, r *run) error {
	l.syncRoutes(ctx, r.desired, r.live.All)
	return nil
}

// routeAfter rebuilds the table once more after an apply that changed
// containers, or, when the sync stopped early (an invalid commit), from the
// last valid checkout.
func (l *Loop) routeAfter(ctx context.Context, r *run) {
	if l.opts.Routes == nil {
		return
	}
	d := r.desired
	if d == nil {
		d = l.lastDesired()
	} else if r.results == nil {
		return // nothing applied: routeStep's table stands
	}
	if d == nil {
		return
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	live, err := l.opts.Runtime.List(lctx)
	if err != nil {
		l.log.Warn("proxy routes not refreshed: list containers", "error", err)
		return
	}
	l.syncRoutes(lctx, d, live)
}

func (l *Loop) syncRoutes(ctx context.Context, d *config.Desired, live []diff.Container) {
	if l.opts.Routes == nil || d == nil {
		return
	}
	if err := l.opts.Routes.Sync(ctx, d, live, apply.NodeName(l.opts.Node, d)); err != nil {
		l.log.Warn("proxy", "error", err)
	}
}

// holdPinned turns the change of a service whose current spec already failed
// into nothing, until git changes the spec or a retry clears the pins.
func (l *Loop) holdPinned(r *run) error {
	if r.pending.retry {
		if err := l.opts.Store.ClearPins(); err != nil {
			return fmt.Errorf("clear pins: %w", err)
		}
	}
	pins, err := l.opts.Store.Pins()
	if err != nil {
		return fmt.Errorf("read pins: %w", err)
	}
	r.pins = pins
	for i := range r.plan.Changes {
		c := &r.plan.Changes[i]
		pin, ok := pins[c.Key()]
		if !ok {
			continue
		}
		if c.Desired == nil || c.Desired.Hash != pin.Hash {
			if err := l.opts.Store.Unpin(c.Key()); err != nil {
				return fmt.Errorf("unpin %s: %w", c.Key(), err)
			}
			continue
		}
		if c.Action == diff.ActionCreate || c.Action == diff.ActionUpdate {
			c.Action = diff.ActionNone
			c.Reason = fmt.Sprintf("held: this spec failed at %s (%s); push a fix or run `orca-sync sync --retry`",
				pin.Since.Format(time.RFC3339), pin.Reason)
		}
	}
	return nil
}

// forceReplace makes redeployed services, and refreshed services whose image
// moved, roll even though their spec did not change.
func (l *Loop) forceReplace(ctx context.Context, r *run) {
	for i := range r.plan.Changes {
		c := &r.plan.Changes[i]
		key := c.Key()
		if c.Desired == nil || !(r.pending.redeploy[key] || r.pending.refresh[key]) || c.Action != diff.ActionNone {
			continue
		}
		if err := l.opts.Runtime.Pull(ctx, c.Desired.Image); err != nil {
			l.log.Warn("re-pull failed", "service", key, "error", err)
		}
		id, _ := l.opts.Runtime.ImageID(ctx, c.Desired.Image)
		if !r.pending.redeploy[key] && !imageMoved(c.Containers, id) {
			continue
		}
		outdated := make([]diff.Container, len(c.Containers))
		for j, ctr := range c.Containers {
			ctr.Replace = true
			outdated[j] = ctr
		}
		c.Containers, c.Action, c.Reason = outdated, diff.ActionUpdate, "redeploy"
	}
}

func imageMoved(cs []diff.Container, id string) bool {
	for _, c := range cs {
		if id != "" && c.ImageID != "" && c.ImageID != id {
			return true
		}
	}
	return false
}

// guard refuses a mass prune.
func (l *Loop) guard(_ context.Context, r *run) error {
	rc := r.desired.Cluster.Reconcile
	if err := r.plan.CheckPruneGuard(rc.PruneGuard, rc.AllowEmpty || l.opts.AllowMassPrune); err != nil {
		return &stalledError{result: ResultFailed, err: fmt.Errorf("nothing applied: %w", err)}
	}
	return nil
}

// applyStep carries out the plan and pins the specs whose rollout failed.
func (l *Loop) applyStep(ctx context.Context, r *run) error {
	r.record.Plan = planSummary(r.plan)
	// The values of an unchanged commit are what a later failed rollout
	// restores its containers with (Apply remembers those it applies).
	l.applier.Remember(r.desired)
	r.results = r.canaryResults
	if !r.plan.HasChanges() {
		return canaryFailures(r.canaryResults)
	}
	// Recorded before anything changes, so a sync cut short by a crash shows
	// in the history as interrupted.
	r.record.Result = ResultRunning
	if id, err := l.opts.Store.AddSync(r.record); err != nil {
		l.log.Error("record sync start", "error", err)
	} else {
		r.record.ID = id
	}
	l.opts.Statuses.CommitStatus(r.commit.SHA, "pending", "applying: "+r.record.Plan)
	r.pendingSent = true
	applied := l.applier.Apply(ctx, r.desired, r.plan, r.commit.SHA)
	r.results = append(r.results, applied...)
	var failed []string
	for _, res := range r.canaryResults {
		if res.Failed() {
			failed = append(failed, fmt.Sprintf("%s/%s: %s", res.Project, res.Service, res.Error))
		}
	}
	for _, res := range applied {
		l.opts.Metrics.rollout(strategyOf(r.plan, res), res.Failed())
		if !res.Failed() {
			if c := changeOf(r.plan, res); c != nil && c.Desired != nil {
				l.drift.ran(c.Desired)
			}
			continue
		}
		failed = append(failed, fmt.Sprintf("%s/%s: %s", res.Project, res.Service, res.Error))
		// Only a rollout git (or a redeploy) asked for is pinned. A failed
		// repair — heal, drift, liveness — keeps the deployed spec, is
		// retried at the next sync, and repeated failures are flap
		// suppression's to stop.
		if hash := hashOf(r.plan, res); hash != "" && l.pinnable(changeOf(r.plan, res)) {
			pin := state.Pin{Service: res.Project + "/" + res.Service, Hash: hash, Reason: firstLine(res.Error), Since: time.Now()}
			if err := l.opts.Store.Pin(pin); err != nil {
				l.log.Error("pin failed rollout", "service", pin.Service, "error", err)
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d changes failed: %s", len(failed), len(r.results), strings.Join(failed, "; "))
	}
	return nil
}

// pinnable reports whether a failed change is a rollout git or an operator
// asked for, rather than a repair of the deployed spec.
func (l *Loop) pinnable(c *diff.Change) bool {
	switch {
	case c == nil || c.Desired == nil || c.Action == diff.ActionRemove || c.Action == diff.ActionHeal:
		return false
	case c.Action == diff.ActionCreate || c.Reason == "redeploy":
		return true
	}
	return l.gitChanged(c)
}

func canaryFailures(rs []apply.Result) error {
	var failed []string
	for _, res := range rs {
		if res.Failed() {
			failed = append(failed, fmt.Sprintf("%s/%s: %s", res.Project, res.Service, res.Error))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d canaries failed to start: %s", len(failed), strings.Join(failed, "; "))
	}
	return nil
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
