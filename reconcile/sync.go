package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/jobs"
	"github.com/orca-sync/orca-sync/planner"
	"github.com/orca-sync/orca-sync/source"
	"github.com/orca-sync/orca-sync/state"
)

// Sync results, as recorded in history and counted in metrics.
const (
	ResultSucceeded = "succeeded"
	ResultFailed    = "failed"
	ResultInvalid   = "invalid"
	// ResultNotANode: this host's node is not a [[node]] of the commit's
	// cluster.toml, and it applies nothing.
	ResultNotANode    = "not-a-node"
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
	// fetchErr is set when the fetch failed and the sync goes on with the
	// last good checkout.
	fetchErr error
	desired  *config.Desired
	live     planner.Live
	services []diff.Service
	// buildFailed are the failed builds by service key.
	buildFailed map[string]error
	// imageIDs are, by service key, the image IDs after the re-pull a
	// redeploy or an image webhook asked for.
	imageIDs map[string]string
	// inspected are the drift inspects of the stable containers by ID.
	inspected map[string]*diff.Live
	// modified are the mounts, by container ID, whose snapshot was changed
	// on the host by hand.
	modified map[string][]string
	pins     map[string]state.Pin
	plan     diff.Plan
	// The plan step's decisions that other steps carry out.
	unpins   []string
	drift    driftCheck
	degraded []degradedNews
	// repaired lists, per service key, the drift findings its change repairs.
	repaired map[string][]string
	results  []apply.Result
	// swept are the one-off containers a crash left, removed by the sweep.
	swept []diff.Container
	// hookResults are the post_deploy hooks run again for swept ones.
	hookResults []apply.Result
	// pendingSent: the commit status went to pending when the apply started.
	pendingSent bool
	// canaryResults are what the canary step started; promoting the
	// canaries whose promotion this sync rolls.
	canaryResults []apply.Result
	promoting     []canaryRecord
	// err is why the steps stopped, for the closing steps.
	err error
}

// step is one stage of a sync. The steps run in order until one fails; the
// error's type decides what comes next (outcome.go).
type step func(ctx context.Context, r *run) error

// syncer runs syncs: the ordered steps, then the closing steps that always
// run. Only the plan step decides; the steps around it do the I/O.
type syncer struct {
	opts     Options
	log      *slog.Logger
	planner  planner.Planner
	applier  *apply.Applier
	loader   loader
	valid    lastValid
	last     *lastSync
	pacer    *pacer
	canaries *canaryDriver
	heal     *healer
	drift    *driftChecker
	reporter *reporter
	history  *history
	jobs     *jobs.Scheduler
	// interval comes from the loop: it caps the retry backoff.
	interval func() time.Duration
}

func newSyncer(l *Loop) *syncer {
	return &syncer{
		opts: l.opts, log: l.log, planner: l.planner, applier: l.applier, loader: l.loader,
		valid: lastValid{store: l.opts.Store, source: l.opts.Source, dir: l.opts.LastValidDir, loader: l.loader, last: l.last, log: l.log},
		last:  l.last, pacer: l.pacer, canaries: l.canaries, heal: l.heal, drift: l.drift,
		reporter: &reporter{notifier: l.opts.Notifier, statuses: l.opts.Statuses, last: l.last, planner: l.planner},
		history:  &history{store: l.opts.Store, metrics: l.opts.Metrics, last: l.last, drift: l.drift, heal: l.heal, status: l.Status},
		interval: l.interval, jobs: l.jobs,
	}
}

// steps are a sync's stages in order: git, the checkout, the live state
// and images (I/O), the plan (pure), then what carries it out.
func (s *syncer) steps() []step {
	return []step{s.fetch, s.hold, s.load, s.list, s.readPins, s.lookup, s.images, s.build, s.sweep,
		s.inspect, s.plan, s.unpin, s.announce, s.route, s.guard, s.scheduleJobs, s.canary, s.apply}
}

// closing are the steps every sync ends with, however the steps ended.
func (s *syncer) closing() []step {
	return []step{s.canaryAfter, s.routeAfter, s.notePulls, s.record}
}

// sync runs one sync and returns its record.
func (s *syncer) sync(ctx context.Context, p pending) state.SyncRecord {
	r := &run{pending: p, record: state.SyncRecord{Trigger: p.trigger, Started: time.Now()}}
	s.last.setSyncing(true)
	defer s.last.setSyncing(false)
	for _, st := range s.steps() {
		if r.err = st(ctx, r); r.err != nil {
			break
		}
	}
	for _, st := range s.closing() {
		if err := st(ctx, r); err != nil {
			s.log.Error("sync", "error", err)
		}
	}
	return r.record
}

// fetch updates the checkout. A failed fetch is reported, and the sync goes on
// with the last good checkout so drift is still repaired.
func (s *syncer) fetch(ctx context.Context, r *run) error {
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	commit, err := s.opts.Source.Sync(fctx)
	last := s.last.fetched(err)
	if err == nil {
		r.commit = commit
		return nil
	}
	s.log.Warn("fetch failed; keeping the last good checkout", "error", err)
	if last.SHA == "" {
		return fmt.Errorf("fetch: %w", err)
	}
	r.commit, r.fetchErr = last, err
	r.record.Error = "fetch failed: " + err.Error()
	return nil
}

// hold ends an automatic sync of the stalled commit while git has not
// moved: loading it again would fail the same way.
func (s *syncer) hold(_ context.Context, r *run) error {
	if r.fetchErr == nil && s.pacer.holds(r.commit.SHA, r.pending) {
		return errHeld
	}
	return nil
}

// load parses and validates the checkout as a whole.
func (s *syncer) load(ctx context.Context, r *run) error {
	r.record.Commit, r.record.Message = r.commit.SHA, r.commit.Subject()
	d, err := s.loader.load(ctx, s.opts.Source.Dir(), r.commit.SHA)
	var errs config.Errors
	errors.As(err, &errs)
	if err != nil {
		s.last.loaded(nil, r.commit, errs)
		s.valid.recover(ctx)
		return &stalledError{result: ResultInvalid, err: fmt.Errorf("commit %s is invalid, nothing applied:\n%w", short(r.commit.SHA), err)}
	}
	if want := engineOf(s.opts.Engine); d.Cluster.Engine != want {
		err := fmt.Errorf("cluster.toml: [cluster] engine = %q, but this orca-sync runs the %q engine: restart orca-sync serve to switch engines", d.Cluster.Engine, want)
		s.last.loaded(nil, r.commit, config.Errors{{File: "cluster.toml", Key: "cluster.engine", Message: err.Error()}})
		return &stalledError{result: ResultInvalid, err: fmt.Errorf("commit %s is invalid, nothing applied:\n%w", short(r.commit.SHA), err)}
	}
	s.last.loaded(d, r.commit, errs)
	s.valid.remember(r.commit.SHA)
	if err := s.planner.Place(d).Err(); err != nil {
		// Stalled, so that it is logged and reported once per commit, not at
		// every tick; routes are rebuilt from the last valid checkout.
		return &stalledError{result: ResultNotANode, err: fmt.Errorf("%w: nothing applied on this host; add it to cluster.toml or start it with --node set to a listed node", err)}
	}
	r.desired = d
	return nil
}

func engineOf(e string) string {
	if e == "" {
		return config.EngineDocker
	}
	return e
}

// list reads the live containers (one list call, an inspect per container
// Docker reported dead) and sets the canaries aside.
func (s *syncer) list(ctx context.Context, r *run) error {
	live, err := s.planner.List(ctx, r.desired)
	if err != nil {
		return err
	}
	r.live = s.planner.Split(r.desired, confirmDied(ctx, s.opts.Runtime, r.pending, live.All))
	s.last.noteLive(r.live.All)
	return nil
}

// confirmDied corrects the list for containers Docker reported dead but
// still lists as running: Docker 20.10 sends die before its container list
// (a view updated apart) says exited, while an inspect reads the container
// itself. One inspect per such event.
func confirmDied(ctx context.Context, rt apply.Runtime, p pending, live []diff.Container) []diff.Container {
	for i := range live {
		c := &live[i]
		if !p.died[c.ID] || c.State != "running" {
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := rt.Inspect(ictx, c.ID)
		cancel()
		if err == nil && !st.Running {
			c.State = st.Status
		}
	}
	return live
}

// images builds the desired services, pulling pull_policy = "always"
// images, and re-pulls the images of redeployed and refreshed services.
func (s *syncer) images(ctx context.Context, r *run) error {
	r.services = s.planner.Desire(ctx, r.desired, s.applier.Puller())
	warned := map[string]bool{}
	for _, svc := range r.services {
		key := svc.Key()
		if svc.PullErr != nil && !warned[svc.Image] {
			warned[svc.Image] = true
			s.log.Warn("pull failed; a local image of that tag stays in use", "image", svc.Image, "error", svc.PullErr)
		}
		if !r.pending.redeploy[key] && !r.pending.refresh[key] || !apply.PullsOwnImage(svc.Service) || svc.Build != nil {
			continue
		}
		if err := s.applier.Puller().Pull(ctx, r.desired, svc.Image); err != nil {
			s.log.Warn("re-pull failed", "service", key, "error", err)
		}
		if r.imageIDs == nil {
			r.imageIDs = map[string]string{}
		}
		r.imageIDs[key], _ = s.opts.Runtime.ImageID(ctx, svc.Image)
	}
	s.planner.Digests(ctx, r.services, r.live)
	s.last.noteServices(r.services)
	return nil
}

// inspect reads the config of the stable containers the drift checker has
// not seen before.
func (s *syncer) inspect(ctx context.Context, r *run) error {
	r.inspected = s.drift.inspectAll(ctx, r.live.Stable)
	r.modified = s.drift.modifiedMounts(ctx, r.live.Stable)
	return nil
}

// readPins reads the specs held as failed; a retry clears them first.
func (s *syncer) readPins(_ context.Context, r *run) error {
	if r.pending.retry {
		if err := s.opts.Store.ClearPins(); err != nil {
			return fmt.Errorf("clear pins: %w", err)
		}
	}
	pins, err := s.opts.Store.Pins()
	if err != nil {
		return fmt.Errorf("read pins: %w", err)
	}
	r.pins = pins
	return nil
}
