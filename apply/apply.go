package apply

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/files"
	"github.com/orca-sync/orca-sync/routing"
)

// Router follows a rollout for the proxy: a container is routed in once it is
// ready, and routed out — its in-flight requests drained — before it stops.
type Router interface {
	RouteIn(svc *diff.Service, t routing.Target)
	RouteOut(ctx context.Context, project, service string, t routing.Target)
}

// noRouter is used when no proxy runs: nothing to route.
type noRouter struct{}

var _ Router = noRouter{}

func (noRouter) RouteIn(*diff.Service, routing.Target)                    {}
func (noRouter) RouteOut(context.Context, string, string, routing.Target) {}

// Options configure an Applier.
type Options struct {
	// Node is this host's node (label orca.node); "" takes NodeName's default.
	Node string
	// Router is told about targets entering and leaving; nil routes nothing.
	Router Router
	// Files holds the snapshots containers mount files of the checkout
	// from; without it a service with a `./` mount cannot start.
	Files *files.Store
	Log   *slog.Logger
	// Credentials are what pulls send to registries; nil sends only those
	// of [[registry]] entries.
	Credentials Credentials
}

// Applier carries out plans on one Docker engine.
type Applier struct {
	rt     Runtime
	puller *Puller
	log    *slog.Logger
	router Router
	node   string
	http   *http.Client
	// seen keeps the secret values of earlier checkouts by keyed hash, for
	// undo (see secretMemory).
	seen *secretMemory
	// awaiting are the containers started and not yet through readiness.
	awaiting *idSet
	// oneOffs are the names of the hook and job containers this process
	// runs now, which a sweep must leave alone. Names, not IDs: a name is
	// taken before the create call, so a sweep listing meanwhile cannot
	// take the container for a leftover.
	oneOffs *idSet
	// sweepDue: a one-off container may have been left (at start, or
	// after a failed create or removal), so the next sweep lists them.
	sweepDue atomic.Bool
	files    *files.Store
}

// NodeName is the node this host acts as: the flag's value, else cluster.toml's
// [cluster] node, else the host name.
func NodeName(flag string, d *config.Desired) string {
	if flag != "" {
		return flag
	}
	if d != nil && d.Cluster.Node != "" {
		return d.Cluster.Node
	}
	h, _ := os.Hostname()
	return h
}

// New returns an Applier for rt.
func New(rt Runtime, opts Options) *Applier {
	a := &Applier{rt: rt, puller: NewPuller(rt, opts.Credentials), log: opts.Log, router: opts.Router, node: opts.Node,
		seen: newSecretMemory(), awaiting: newIDSet(), files: opts.Files, oneOffs: newIDSet()}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.router == nil {
		a.router = noRouter{}
	}
	a.http = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	a.sweepDue.Store(true)
	return a
}

// Puller is how the applier pulls, for the reconciler's re-pulls.
func (a *Applier) Puller() *Puller { return a.puller }

// Result is what happened to one service.
type Result struct {
	Project string      `json:"project"`
	Service string      `json:"service"`
	Action  diff.Action `json:"action"`
	Error   string      `json:"error,omitempty"`
	// PullFailed: the image could not be pulled (a *PullError). Such a
	// failure is never pinned; the next sync tries again.
	PullFailed bool          `json:"pull_failed,omitempty"`
	Started    []string      `json:"started,omitempty"`
	Removed    []string      `json:"removed,omitempty"`
	Duration   time.Duration `json:"duration_ns"`
}

// Failed reports whether the service's change failed.
func (r Result) Failed() bool { return r.Error != "" }

// Apply carries out plan. Services of a project start in depends_on order,
// each wave once the previous one is ready; independent projects and the
// services of one wave run concurrently. A service whose dependency failed is
// not touched. Apply returns one Result per changed service.
func (a *Applier) Apply(ctx context.Context, d *config.Desired, plan diff.Plan, revision string) []Result {
	a.Remember(d)
	changes := map[string]diff.Change{}
	for _, c := range plan.Changes {
		changes[c.Key()] = c
	}
	var (
		mu      sync.Mutex
		results []Result
		wg      sync.WaitGroup
	)
	record := func(r Result) {
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
	}
	for _, p := range d.Projects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.applyProject(ctx, p, changes, a.newJob(d, revision), record)
		}()
	}
	for _, c := range plan.Changes {
		if c.Action == diff.ActionRemove {
			wg.Add(1)
			go func() {
				defer wg.Done()
				record(a.run(ctx, c, a.newJob(d, revision)))
			}()
		}
	}
	wg.Wait()
	a.pruneFiles(ctx)
	return results
}

// pruneFiles removes the snapshots and writable copies that no container
// uses any more, after an apply (docs/guides/files.md). A failure to list
// or remove only delays it to the next apply.
func (a *Applier) pruneFiles(ctx context.Context) {
	if a.files == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	live, err := a.rt.List(ctx)
	if err != nil {
		a.log.Warn("snapshots not pruned: list containers", "error", err)
		return
	}
	var used []string
	for _, c := range live {
		for _, b := range c.Binds {
			used = append(used, b.Source)
		}
	}
	removed, err := a.files.Prune(ctx, used)
	if err != nil {
		a.log.Warn("snapshots not all pruned", "error", err)
	}
	if len(removed) > 0 {
		a.log.Info("snapshots pruned", "removed", len(removed))
	}
}

// applyProject runs the project's waves in order.
func (a *Applier) applyProject(ctx context.Context, p *config.Project, changes map[string]diff.Change, j job, record func(Result)) {
	failed := map[string]string{}
	for _, wave := range p.StartOrder() {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, s := range wave {
			c, ok := changes[s.Key()]
			// A removal is Apply's own loop's, also for a service still in
			// git (placed on another node now): it runs once.
			if !ok || c.Action == diff.ActionNone || c.Action == diff.ActionRemove {
				continue
			}
			if dep := failedDependency(s, failed); dep != "" {
				r := Result{Project: s.Project, Service: s.Name, Action: c.Action, Error: fmt.Sprintf("not applied: dependency %s failed", dep)}
				failed[s.Name] = r.Error
				record(r)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := a.run(ctx, c, j)
				if r.Failed() {
					mu.Lock()
					failed[s.Name] = r.Error
					mu.Unlock()
				}
				record(r)
			}()
		}
		wg.Wait()
	}
}

func failedDependency(s *config.Service, failed map[string]string) string {
	for _, d := range s.DependsOn {
		if _, ok := failed[d]; ok {
			return d
		}
	}
	return ""
}

// job is what every change of one Apply shares.
type job struct {
	revision string
	root     string
	node     string
	// nameNode is the node part of container names (diff.NameNode).
	nameNode string
	secrets  config.SecretValues
	seen     *secretMemory
	// desired is the checkout, whose [[registry]] entries pulls use.
	desired *config.Desired
}

func (a *Applier) newJob(d *config.Desired, revision string) job {
	node := NodeName(a.node, d)
	return job{revision: revision, root: d.Root, node: node, nameNode: diff.NameNode(d, node), secrets: d.Secrets, seen: a.seen, desired: d}
}

// ownGrace stops a container with its own stop timeout: the
// stop_grace_secs it was created with (a pruned service is no longer in
// git to say).
const ownGrace = -1 * time.Second

// run carries out one service's change.
func (a *Applier) run(ctx context.Context, c diff.Change, j job) Result {
	start := time.Now()
	r := Result{Project: c.Project, Service: c.Service, Action: c.Action}
	log := a.log.With("service", c.Key(), "action", c.Action)
	log.Info("applying", "replicas", c.Replicas, "live", c.Live)
	var err error
	if c.Action == diff.ActionRemove {
		err = a.removeAll(ctx, c, &r)
	} else {
		rc := &rollout{a: a, svc: c.Desired, change: c, job: j, result: &r, log: log}
		err = rc.run(ctx)
	}
	r.Duration = time.Since(start)
	if err != nil {
		r.Error, r.PullFailed = err.Error(), IsPullError(err)
		log.Error("failed", "error", err, "duration", r.Duration)
	} else {
		log.Info("done", "started", len(r.Started), "removed", len(r.Removed), "duration", r.Duration)
	}
	return r
}

// removeAll prunes a service gone from git: route out, drain, stop, remove.
// Volumes stay.
func (a *Applier) removeAll(ctx context.Context, c diff.Change, r *Result) error {
	for _, ctr := range c.Containers {
		if err := a.retire(ctx, c.Project, c.Service, ctr, ownGrace); err != nil {
			return err
		}
		r.Removed = append(r.Removed, ctr.Name)
	}
	return nil
}

// retire routes a container out (the router drains it), stops it with
// grace (stop_grace_secs) and removes it.
func (a *Applier) retire(ctx context.Context, project, service string, c diff.Container, grace time.Duration) error {
	if err := a.stopOut(ctx, project, service, c, grace); err != nil {
		return err
	}
	return a.removeStopped(ctx, c)
}

// stopOut routes a container out (the router drains it) and stops it with
// grace: from then on it serves nothing and runs nothing.
func (a *Applier) stopOut(ctx context.Context, project, service string, c diff.Container, grace time.Duration) error {
	a.router.RouteOut(ctx, project, service, routing.Target{ContainerID: c.ID})
	if err := a.rt.Stop(ctx, c.ID, grace); err != nil {
		return fmt.Errorf("stop %s: %w", c.Name, err)
	}
	return nil
}

// removeStopped removes a container stopOut stopped.
func (a *Applier) removeStopped(ctx context.Context, c diff.Container) error {
	if err := a.rt.Remove(ctx, c.ID); err != nil {
		return fmt.Errorf("remove %s: %w", c.Name, err)
	}
	a.awaiting.done(c.ID)
	return nil
}
