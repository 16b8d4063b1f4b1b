// Package reconcile is orca-sync's loop: on every tick and every signal it
// fetches git, loads and validates the checkout, plans it against Docker,
// applies the plan and records what happened. It is level-triggered: each
// sync reads the live state from Docker's labels, so a restart or a lost state
// file converges all the same.
//
// Loop wires a few parts, each owning its state and its lock (see
// docs/design.md): the sync runner (syncer) runs a sync as ordered steps;
// the canary driver judges canaries between syncs; the healer probes
// liveness and keeps flap suppression; the drift checker finds hand-made
// changes; the ref planner plans pull requests; the pacer decides when the
// next automatic sync runs (stalled, retry after a backoff, or the interval).
package reconcile

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/files"
	"github.com/orca-sync/orca-sync/jobs"
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

// EventSource is the runtime's event stream (apply.EventSource).
type EventSource = apply.EventSource

// Options configure a Loop.
type Options struct {
	Source  Source
	Runtime apply.Runtime
	// Inspector makes drift checks field-deep and Logs streams service
	// logs; when nil, New takes them from Runtime if it has them (the
	// Docker adapter does). Without an inspector only state, missing and
	// extra containers are drift; without a log streamer Logs fails.
	Inspector apply.ConfigInspector
	Logs      apply.LogStreamer
	// Digester reads the registry digests status and plan show; when nil,
	// New takes it from Runtime if it has it.
	Digester apply.ImageDigester
	// Credentials are what pulls send to registries besides [[registry]];
	// nil reads no host Docker config.
	Credentials apply.Credentials
	Store       Store
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
	// Files keeps the snapshots containers mount the checkout's files from
	// (files.Store); nil only where no service mounts one.
	Files *files.Store
	// Hasher hashes the files services mount; nil takes Files' hasher, else
	// a new one.
	Hasher *files.Hasher
	// HostPaths is what host paths a checkout may mount: a commit that
	// mounts another is invalid. The zero value allows none.
	HostPaths files.HostPolicy
	// Builder makes the images of services with [service.build]; nil
	// fails every such service.
	Builder Builder
	// Scheduler, when set, carries out plans itself instead of the
	// container applier: the Swarm engine ([cluster] engine = "swarm",
	// docs/guides/swarm.md). Runtime is then its view of the live tasks.
	Scheduler Scheduler
	// Engine is the [cluster] engine this process runs ("" is "docker"): a
	// commit that names another one is refused until a restart.
	Engine string
	Log    *slog.Logger
}

// Scheduler carries out a plan on an engine that runs the containers
// itself (Swarm services). While a service rolls it calls watch with the
// live containers, so the proxy follows the tasks.
type Scheduler interface {
	Schedule(ctx context.Context, d *config.Desired, plan diff.Plan, revision string, watch func([]diff.Container)) []apply.Result
}

// Builder makes the images of services with build (package build's
// Builder): Resolve looks up each build branch, Commit tells what it found,
// Known seeds the commit the running containers were built from, Ensure
// builds an image the engine does not hold.
type Builder interface {
	apply.BuildCommits
	Resolve(ctx context.Context, d *config.Desired) map[string]error
	Known(s *config.Service, commit string)
	Ensure(ctx context.Context, d *config.Desired, s *config.Service, commit string) (built bool, err error)
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

// Loop is the reconcile loop: it wires its parts and runs them on one
// goroutine (syncs and canary ticks) plus the prober's and the event
// follower's. Its methods are safe for concurrent use.
type Loop struct {
	opts    Options
	log     *slog.Logger
	planner planner.Planner
	applier *apply.Applier
	loader  loader

	signals  *signals
	last     *lastSync
	pacer    *pacer
	syncer   *syncer
	canaries *canaryDriver
	heal     *healer
	drift    *driftChecker
	refs     *refPlanner
	own      *ownStops
	jobs     *jobs.Scheduler
	// hold is taken by each sync and canary tick of Run, and by Exclusive.
	hold sync.Mutex
}

// New returns a loop; Run starts it.
func New(opts Options) *Loop {
	opts = withDefaults(opts)
	l := &Loop{opts: opts, log: opts.Log, signals: newSignals(), last: &lastSync{}, pacer: newPacer(),
		own: &ownStops{Runtime: opts.Runtime, ids: map[string]time.Time{}}}
	l.applier = apply.New(l.own, apply.Options{Node: opts.Node, Router: opts.Router, Files: opts.Files, Log: opts.Log, Credentials: opts.Credentials})
	l.planner = planner.Planner{Runtime: opts.Runtime, Node: opts.Node, Canaries: opts.Canary != nil, ListTimeout: 30 * time.Second,
		Puller: l.applier.Puller(), Digester: opts.Digester}
	if opts.Builder != nil {
		l.planner.Builds = opts.Builder
	}
	l.loader = loader{path: opts.Path, secrets: opts.Secrets, hasher: opts.Hasher, hosts: opts.HostPaths, own: l.planner.Own, cache: &loadCache{}}
	l.heal = newHealer(l.applier, l.signals, l.last, opts.Notifier, opts.Log)
	l.drift = newDriftChecker(opts.Inspector, opts.Files, opts.Notifier, opts.Metrics, opts.Log)
	l.canaries = newCanaryDriver(canaryDeps{proxy: opts.Canary, store: opts.Store, applier: l.applier,
		notifier: opts.Notifier, log: opts.Log, last: l.last, node: opts.Node, promoted: func() { l.Trigger("canary", false) }})
	l.refs = &refPlanner{opts: opts, loader: l.loader, planner: l.planner}
	l.jobs = jobs.New(jobs.Options{Runner: l.applier, History: opts.Store, Notifier: opts.Notifier, Log: opts.Log, Node: l.Node})
	l.syncer = newSyncer(l)
	return l
}

func withDefaults(opts Options) Options {
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
	if opts.Hasher == nil && opts.Files != nil {
		opts.Hasher = opts.Files.Hasher()
	}
	if opts.Hasher == nil {
		opts.Hasher = files.NewHasher()
	}
	if opts.Secrets == nil {
		opts.Secrets = secrets.NewKeyring(nil)
	}
	// The runtime's optional capabilities are looked up once, here.
	if opts.Inspector == nil {
		opts.Inspector, _ = opts.Runtime.(apply.ConfigInspector)
	}
	if opts.Logs == nil {
		opts.Logs, _ = opts.Runtime.(apply.LogStreamer)
	}
	if opts.Digester == nil {
		opts.Digester, _ = opts.Runtime.(apply.ImageDigester)
	}
	return opts
}

// Run syncs at once, then on every tick and signal, until ctx ends. A sync in
// progress when ctx ends gets ShutdownGrace to finish or undo its step.
func (l *Loop) Run(ctx context.Context) {
	l.markInterrupted()
	l.canaries.restoreWeights()
	l.jobs.Start(ctx)
	l.syncGraceful(ctx, "start")
	// Canaries are judged between syncs on the loop's own goroutine, so a
	// canary never holds up a sync for its pauses and never runs beside one.
	tick := time.NewTicker(canaryTick)
	defer tick.Stop()
	timer := time.NewTimer(l.nextWait())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			l.jobs.Wait() // runs in flight remove their containers
			return
		case <-timer.C:
			l.syncGraceful(ctx, "interval")
			timer.Reset(l.nextWait())
		case <-l.signals.C():
			l.syncGraceful(ctx, "")
			timer.Reset(l.nextWait())
		case <-tick.C:
			l.canaryTick(ctx)
		case <-l.canaries.wake:
			l.canaryTick(ctx)
		}
	}
}

func (l *Loop) canaryTick(ctx context.Context) {
	l.hold.Lock()
	defer l.hold.Unlock()
	l.canaries.tick(ctx)
}

// Exclusive runs fn while Run neither syncs nor judges a canary: a volume
// restore stops a service's containers in it, and the sync that starts them
// again comes after (docs/guides/backups.md#restore).
func (l *Loop) Exclusive(ctx context.Context, fn func(ctx context.Context) error) error {
	l.hold.Lock()
	defer l.hold.Unlock()
	return fn(ctx)
}

// Desired is the last valid checkout, its secrets resolved, with only the
// services this host's node runs (docs/guides/several-hosts.md): what a
// backup covers. nil before the first one. It must not be changed.
func (l *Loop) Desired() *config.Desired { return l.planner.Own(l.last.desiredOf()) }

// nextWait is how long until the next automatic sync: the retry backoff
// after a failure, else the interval.
func (l *Loop) nextWait() time.Duration { return l.pacer.wait(l.interval(), time.Now()) }

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
	l.hold.Lock()
	defer l.hold.Unlock()
	l.SyncOnce(sctx, trigger)
}

func (l *Loop) interval() time.Duration {
	if l.opts.Interval > 0 {
		return l.opts.Interval
	}
	if d := l.last.desiredOf(); d != nil {
		return d.Cluster.Reconcile.Interval
	}
	return config.DefaultCluster().Reconcile.Interval
}

// SyncOnce runs one sync now and returns its record. trigger names what asked
// for it; "" takes the trigger of the pending signal.
func (l *Loop) SyncOnce(ctx context.Context, trigger string) state.SyncRecord {
	return l.syncer.sync(ctx, l.signals.take(trigger))
}

// Trigger signals the loop to sync now. It never blocks: signals that arrive
// while a sync runs make exactly one more sync.
func (l *Loop) Trigger(trigger string, retry bool) { l.signals.trigger(trigger, retry) }

// Cluster returns the cluster configuration of the last valid checkout (the
// defaults before the first one).
func (l *Loop) Cluster() config.Cluster {
	if d := l.last.desiredOf(); d != nil {
		return d.Cluster
	}
	return config.DefaultCluster()
}

// Node is this host's node name: --node, else [cluster] node of the last
// valid checkout, else the host name.
func (l *Loop) Node() string { return l.planner.NodeOf(l.last.desiredOf()) }

// NamedNode is Node when the last valid checkout declares [[node]] entries,
// else "": what container names and the metrics' node label carry.
func (l *Loop) NamedNode() string {
	d := l.last.desiredOf()
	return diff.NameNode(d, l.planner.NodeOf(d))
}

// nopReporter is the Notifier and CommitStatuses of a loop without them.
type nopReporter struct{}

func (nopReporter) Notify(notify.Event)                 {}
func (nopReporter) CommitStatus(string, string, string) {}
