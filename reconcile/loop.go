// Package reconcile is orca-sync's loop: on every tick and every signal it
// fetches git, loads and validates the checkout, plans it against Docker,
// applies the plan and records what happened. It is level-triggered: each
// sync reads the live state from Docker's labels, so a restart or a lost state
// file converges all the same.
package reconcile

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/notify"
	"github.com/orca-sync/orca-sync/planner"
	"github.com/orca-sync/orca-sync/secrets"
	"github.com/orca-sync/orca-sync/source"
	"github.com/orca-sync/orca-sync/state"
)

// Source is the git checkout the loop syncs from.
type Source interface {
	// Sync fetches the tracked branch and checks it out; on error the last
	// good checkout stays in Dir.
	Sync(ctx context.Context) (source.Commit, error)
	Dir() string
}

// Store is the state file as the loop uses it.
type Store interface {
	AddSync(r state.SyncRecord) (uint64, error)
	UpdateSync(r state.SyncRecord) error
	History(limit int) ([]state.SyncRecord, error)
	Pin(p state.Pin) error
	Unpin(service string) error
	Pins() (map[string]state.Pin, error)
	ClearPins() error
	// Put, Get, Delete and Keys keep small values by namespace and key
	// (the last valid commit, canary state).
	Put(namespace, key string, v any) error
	Get(namespace, key string, v any) (bool, error)
	Delete(namespace, key string) error
	Keys(namespace string) ([]string, error)
}

// Notifier receives the loop's events; it must not block (notify.Notifier
// queues).
type Notifier interface {
	Notify(e notify.Event)
}

// CommitStatuses receives the outcome of each synced commit (GitHub commit
// statuses): state is "pending", "success" or "failure". It must not block.
type CommitStatuses interface {
	CommitStatus(sha, state, description string)
}

// Options configure a Loop.
type Options struct {
	Source  Source
	Runtime apply.Runtime
	Store   Store
	// Path is the infra tree inside the checkout ("." for its root).
	Path string
	// Node names this host (label orca.node).
	Node string
	// Interval, when set, overrides [reconcile] interval_secs.
	Interval time.Duration
	// ShutdownGrace is how long a sync in progress may go on after the
	// loop's context ends, to finish or undo its current step.
	ShutdownGrace  time.Duration
	AllowMassPrune bool
	// Router follows rollouts (route in when ready, out and drained before
	// stop); Routes rebuilds the proxy's table from live Docker before and
	// after each apply. Both nil without a proxy.
	Router apply.Router
	Routes RouteTable
	// Canary is the proxy's split and figures; without it a canary service
	// rolls like a rolling one.
	Canary CanaryProxy
	// Secrets resolves each commit's secrets; nil decrypts with no identity,
	// so only a checkout without secrets files is valid.
	Secrets Secrets
	Metrics *Metrics
	// Notifier and Statuses are told what each sync did; nil: nobody.
	Notifier Notifier
	Statuses CommitStatuses
	// RefDir is where PlanRef checks out other refs (pull request heads);
	// it must not overlap the Source's directory.
	RefDir string
	// LastValidDir is where a restart that finds the branch head invalid
	// writes the last valid commit's files, so routes, tokens and webhook
	// secrets keep the configuration that runs; "" goes without.
	LastValidDir string
	Log          *slog.Logger
}

// RouteTable is the proxy's level-triggered side: the whole table from the
// desired state and the live containers of this node.
type RouteTable interface {
	Sync(ctx context.Context, d *config.Desired, live []diff.Container, node string) error
}

// Secrets resolves the ${secrets.NAME} references of a loaded checkout
// (secrets.Keyring).
type Secrets interface {
	Resolve(ctx context.Context, d *config.Desired) error
}

// Loop is the reconcile loop. Its methods are safe for concurrent use.
type Loop struct {
	opts    Options
	log     *slog.Logger
	applier *apply.Applier
	planner planner.Planner
	secrets Secrets
	// signal wakes the loop; its buffer of one coalesces a burst of signals
	// into one more sync.
	signal chan struct{}

	drift *driftState
	heal  *healer
	own   *ownStops

	mu      sync.Mutex
	pending pending
	last    lastSync
	syncing bool
	// refMu serialises PlanRef, which reuses one checkout directory.
	refMu sync.Mutex

	canaryMu   sync.Mutex
	baselines  map[string]baseline // service key -> start of the step's window
	canaryAsks map[string]string   // service key -> "promote" | "abort"
	canaryWake chan struct{}
}

// pending is the work signals asked for since the last sync started.
type pending struct {
	trigger  string
	since    time.Time // when the first signal arrived, for commit-to-ready
	retry    bool
	redeploy map[string]bool   // service keys to force-pull and replace
	refresh  map[string]bool   // service keys to re-pull, replaced if the image moved
	replace  map[string]string // container IDs to replace (liveness) → why
	died     map[string]bool   // container IDs Docker reported dead
}

// lastSync is what the last sync learnt, for status and the API.
type lastSync struct {
	commit   source.Commit
	desired  *config.Desired // last valid checkout
	record   state.SyncRecord
	fetchErr string
	errs     config.Errors    // validation errors of the newest commit
	live     []diff.Container // the newest container list
	services []diff.Service   // the desired services of the newest sync
	// recordedOK is the commit of the newest history record when that record
	// is a success; quiet syncs of it are not recorded again.
	recordedOK string
	// statusCommit is the newest commit given a final commit status.
	statusCommit string
}

// New returns a loop; Run starts it.
func New(opts Options) *Loop {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Path == "" {
		opts.Path = "."
	}
	if opts.ShutdownGrace == 0 {
		opts.ShutdownGrace = 30 * time.Second
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Notifier == nil {
		opts.Notifier = nopReporter{}
	}
	if opts.Statuses == nil {
		opts.Statuses = nopReporter{}
	}
	var sec Secrets = secrets.NewKeyring(nil)
	if opts.Secrets != nil {
		sec = opts.Secrets
	}
	own := &ownStops{Runtime: opts.Runtime, ids: map[string]time.Time{}}
	return &Loop{
		opts:    opts,
		log:     opts.Log,
		own:     own,
		applier: apply.New(own, apply.Options{Node: opts.Node, Router: opts.Router, Log: opts.Log}),
		planner: planner.Planner{Runtime: opts.Runtime, Node: opts.Node, Canaries: opts.Canary != nil, ListTimeout: 30 * time.Second},
		secrets: sec,
		signal:  make(chan struct{}, 1),
		drift:   newDriftState(),
		heal:    newHealer(),

		baselines:  map[string]baseline{},
		canaryAsks: map[string]string{},
		canaryWake: make(chan struct{}, 1),
	}
}

// Run syncs at once, then on every tick and signal, until ctx ends. A sync in
// progress when ctx ends gets ShutdownGrace to finish or undo its step.
func (l *Loop) Run(ctx context.Context) {
	l.markInterrupted()
	l.restoreWeights()
	l.syncGraceful(ctx, "start")
	// Canaries are judged between syncs on the loop's own goroutine, so a
	// canary never holds up a sync for its pauses and never runs beside one.
	tick := time.NewTicker(canaryTick)
	defer tick.Stop()
	timer := time.NewTimer(l.interval())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			l.syncGraceful(ctx, "interval")
			timer.Reset(l.interval())
		case <-l.signal:
			l.syncGraceful(ctx, "")
			timer.Reset(l.interval())
		case <-tick.C:
			l.tickCanaries(ctx)
		case <-l.canaryWake:
			l.tickCanaries(ctx)
		}
	}
}

// markInterrupted closes the records of syncs a previous process started but
// never finished (it was killed): the history then says what happened.
func (l *Loop) markInterrupted() {
	recs, err := l.opts.Store.History(50)
	if err != nil {
		l.log.Error("read history", "error", err)
		return
	}
	for _, r := range recs {
		if r.Result != ResultRunning {
			continue
		}
		r.Result, r.Error = ResultInterrupted, "orca-sync stopped during this sync; the next sync converged from Docker's labels"
		if err := l.opts.Store.UpdateSync(r); err != nil {
			l.log.Error("mark interrupted sync", "id", r.ID, "error", err)
		}
	}
}

func (l *Loop) syncGraceful(ctx context.Context, trigger string) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		l.log.Info("shutting down: letting the current sync finish", "grace", l.opts.ShutdownGrace)
		time.AfterFunc(l.opts.ShutdownGrace, cancel)
	})
	defer stop()
	l.SyncOnce(sctx, trigger)
}

func (l *Loop) interval() time.Duration {
	if l.opts.Interval > 0 {
		return l.opts.Interval
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.desired != nil {
		return l.last.desired.Cluster.Reconcile.Interval
	}
	return config.DefaultCluster().Reconcile.Interval
}

// Trigger signals the loop to sync now. It never blocks: signals that arrive
// while a sync runs make exactly one more sync.
func (l *Loop) Trigger(trigger string, retry bool) {
	l.mu.Lock()
	if l.pending.trigger == "" {
		l.pending.trigger = trigger
		l.pending.since = time.Now()
	}
	l.pending.retry = l.pending.retry || retry
	l.mu.Unlock()
	l.wake()
}

func (l *Loop) wake() {
	select {
	case l.signal <- struct{}{}:
	default:
	}
}

// takePending returns and clears what signals asked for.
func (l *Loop) takePending(trigger string) pending {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.pending
	l.pending = pending{}
	if trigger != "" || p.trigger == "" {
		if p.trigger == "" {
			p.since = time.Now()
		}
		if trigger != "" {
			p.trigger = trigger
		}
	}
	return p
}

// markService asks the next sync to redeploy or refresh a service.
func (l *Loop) markService(key string, redeploy bool) {
	l.mu.Lock()
	m := &l.pending.refresh
	if redeploy {
		m = &l.pending.redeploy
	}
	if *m == nil {
		*m = map[string]bool{}
	}
	(*m)[key] = true
	if l.pending.trigger == "" {
		l.pending.trigger, l.pending.since = "api", time.Now()
		if !redeploy {
			l.pending.trigger = "webhook"
		}
	}
	l.mu.Unlock()
	l.wake()
}

// lastDesired returns the last valid checkout, or nil.
func (l *Loop) lastDesired() *config.Desired {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last.desired
}

// Cluster returns the cluster configuration of the last valid checkout (the
// defaults before the first one).
func (l *Loop) Cluster() config.Cluster {
	if d := l.lastDesired(); d != nil {
		return d.Cluster
	}
	return config.DefaultCluster()
}

// nopReporter is the Notifier and CommitStatuses of a loop without them.
type nopReporter struct{}

func (nopReporter) Notify(notify.Event)                 {}
func (nopReporter) CommitStatus(string, string, string) {}
