package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/routing"
)

// rollout converges one service. Every path follows the same rule: new
// containers must be ready before old ones go, and a rollout that fails
// removes what it started and puts back what it took away.
type rollout struct {
	a      *Applier
	svc    *diff.Service
	change diff.Change
	// job carries the revision and node for labels, and the checkout root
	// that relative mount sources resolve against.
	job    job
	result *Result
	log    *slog.Logger

	mu   sync.Mutex      // guards result and gone, written by concurrent starts
	gone map[string]bool // IDs of the containers this rollout removed
	// deadline bounds the whole rollout: deploy.timeout_secs from its start.
	deadline time.Time
	// role is the orca.role of the containers it starts ("" is stable).
	role string
	// holdRoutes: startOne leaves routing to the caller (blue-green).
	holdRoutes bool
	// addrs are the addresses on the project network, by container ID, of
	// the containers it started, from their last readiness inspect: what
	// routes them in without inspecting them again.
	addrs map[string]string
	// removing are the removals stopAll left running beside the next
	// batch; removeErrs their failures (under mu).
	removing   sync.WaitGroup
	removeErrs []error
}

func (r *rollout) roleLabel() string {
	if r.role == "" {
		return routing.RoleStable
	}
	return r.role
}

func (r *rollout) noteStarted(name string) {
	r.mu.Lock()
	r.result.Started = append(r.result.Started, name)
	r.mu.Unlock()
}

func (r *rollout) noteRemoved(c diff.Container) {
	r.mu.Lock()
	r.result.Removed = append(r.result.Removed, c.Name)
	if r.gone == nil {
		r.gone = map[string]bool{}
	}
	r.gone[c.ID] = true
	r.mu.Unlock()
}

func (r *rollout) noteAddr(id string, st State) {
	r.mu.Lock()
	if r.addrs == nil {
		r.addrs = map[string]string{}
	}
	r.addrs[id] = st.IPs[diff.NetworkName(r.svc.Project)]
	r.mu.Unlock()
}

func (r *rollout) addr(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addrs[id]
}

func (r *rollout) retired(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gone[id]
}

func (r *rollout) run(ctx context.Context) error {
	r.deadline = time.Now().Add(r.svc.Deploy.Timeout)
	if err := r.prepare(ctx); err != nil {
		return err
	}
	var current, outdated []diff.Container
	for _, c := range r.change.Containers {
		if c.Hash == r.svc.Hash && !c.Replace {
			current = append(current, c)
		} else {
			outdated = append(outdated, c)
		}
	}
	rollsOut := r.change.Action == diff.ActionCreate || r.change.Action == diff.ActionUpdate
	// pre_deploy runs before the first container of a new spec; when it
	// fails nothing starts and the old containers keep serving.
	if r.newSpecRollout(current) {
		if err := r.runHook(ctx, config.HookPreDeploy); err != nil {
			return err
		}
	}
	if err := r.roll(ctx, current, outdated); err != nil {
		return err
	}
	// post_deploy runs once the rollout is ready; its failure undoes nothing.
	if rollsOut {
		return r.runHook(ctx, config.HookPostDeploy)
	}
	return nil
}

func (r *rollout) roll(ctx context.Context, current, outdated []diff.Container) error {
	if len(outdated) == 0 {
		return r.converge(ctx, current)
	}
	switch r.svc.Deploy.Strategy {
	case config.StrategyRecreate:
		return r.recreate(ctx, current, outdated)
	case config.StrategyBlueGreen:
		return r.blueGreen(ctx, current, outdated)
	default:
		// A canary's own containers are started by StartCanary; the update
		// that reaches here is its promotion (or a canary service applied
		// without the loop, e.g. one-shot `apply`), which rolls.
		return r.rolling(ctx, current, outdated)
	}
}

// prepare makes sure the image, networks and volumes exist.
func (r *rollout) prepare(ctx context.Context) error {
	img := r.svc.Spec.Image
	_, err := r.a.rt.ImageID(ctx, img)
	switch {
	case err == nil:
	case !errors.Is(err, ErrImageNotFound):
		return fmt.Errorf("image %s: %w", img, err)
	case r.svc.Build != nil: // built here, never pulled (docs/guides/builds.md)
		return fmt.Errorf("built image %s is not on this host: its build has not run or failed", img)
	case !PullsOwnImage(r.svc.Service):
		return fmt.Errorf("image %s is not on this host and pull_policy is \"never\"", img)
	default:
		r.log.Info("pulling image", "image", img)
		if err := r.a.puller.Pull(ctx, r.job.desired, img); err != nil {
			return err // a *PullError: it names the image, the registry and the fix
		}
	}
	for _, n := range r.svc.Spec.Networks {
		if err := r.a.rt.EnsureNetwork(ctx, n); err != nil {
			return err
		}
	}
	for _, v := range r.svc.Spec.Volumes {
		if err := r.a.rt.EnsureVolume(ctx, v.Source); err != nil {
			return err
		}
	}
	return nil
}

// converge brings a service whose containers all have the desired spec to its
// replica count: broken ones are replaced, missing ones started, extra ones
// retired.
func (r *rollout) converge(ctx context.Context, current []diff.Container) error {
	keep, drop := r.sortOut(current)
	if err := r.retireAll(ctx, brokenOnly(drop)); err != nil {
		return err
	}
	if _, err := r.startBatch(ctx, freeIndices(keep, r.svc.Replicas, r.svc.Replicas)); err != nil {
		return err
	}
	return r.retireAll(ctx, servingOnly(drop))
}

// rolling starts max_surge new containers at a time (created, started and
// waited for side by side), waits until all of them are ready, then retires
// as many old ones at once (docs/guides/rollouts-and-canary.md#strategies).
func (r *rollout) rolling(ctx context.Context, current, outdated []diff.Container) (err error) {
	defer func() { err = errors.Join(err, r.awaitRemovals()) }()
	// A batch's old ones are removed beside the next batch's starts unless
	// one of them holds a name that batch creates (a redeploy of the same
	// spec: freeName renames it aside, and a container being removed
	// cannot be).
	retire := r.stopAll
	if r.namesTaken() {
		retire = r.retireAll
	}
	keep, drop := r.sortOut(current)
	if err := r.retireAll(ctx, drop); err != nil {
		return err
	}
	old := append([]diff.Container(nil), outdated...)
	sort.SliceStable(old, func(i, j int) bool { return !old[i].Serving() && old[j].Serving() })
	var started []diff.Container
	var retired []diff.Container
	for len(keep)+len(started) < r.svc.Replicas {
		n := min(r.svc.Deploy.MaxSurge, r.svc.Replicas-len(keep)-len(started))
		batch, err := r.startBatch(ctx, freeIndices(append(keep, started...), r.svc.Replicas, n))
		if err != nil {
			return r.undo(ctx, err, started, retired)
		}
		started = append(started, batch...)
		// As many old ones as have just become ready leave together:
		// routed out at once, drained and stopped side by side.
		k := min(n, len(old))
		if err := retire(ctx, old[:k]); err != nil {
			return err
		}
		retired, old = append(retired, old[:k]...), old[k:]
	}
	return r.retireAll(ctx, old)
}

// recreate stops every old container, then starts the new set. When the new
// set does not become ready, the old one is started again from its spec.
func (r *rollout) recreate(ctx context.Context, current, outdated []diff.Container) error {
	all := append(append([]diff.Container(nil), outdated...), current...)
	if err := r.retireAll(ctx, all); err != nil {
		return err
	}
	if _, err := r.startBatch(ctx, freeIndices(nil, r.svc.Replicas, r.svc.Replicas)); err != nil {
		return r.undo(ctx, err, nil, servingOnly(outdated))
	}
	return nil
}

// blueGreen starts the whole new set beside the old one and retires the old
// set only once every new container is ready.
func (r *rollout) blueGreen(ctx context.Context, current, outdated []diff.Container) error {
	keep, drop := r.sortOut(current)
	if err := r.retireAll(ctx, drop); err != nil {
		return err
	}
	// The new set is routed only once all of it is ready, then the old set
	// leaves the table at once (its drains run side by side): traffic
	// switches in one move, never a mix for the length of a rollout.
	r.holdRoutes = true
	started, err := r.startBatch(ctx, freeIndices(keep, r.svc.Replicas, r.svc.Replicas-len(keep)))
	r.holdRoutes = false
	if err != nil {
		return err
	}
	for _, c := range started {
		r.routeIn(ctx, c)
	}
	return r.retireAll(ctx, outdated)
}

// undo puts back, from the spec in their labels, the old containers a failed
// rollout had already retired, and only then removes the new containers it
// started: capacity never drops below what served before the rollout.
func (r *rollout) undo(ctx context.Context, cause error, started, retired []diff.Container) error {
	ctx = context.WithoutCancel(ctx)
	r.log.Warn("rollout failed, undoing", "error", cause, "remove", len(started), "restore", len(retired))
	errs := []error{fmt.Errorf("rollout of %s undone: %w", r.svc.Key(), cause)}
	// A restored container takes its old name: the old one must be gone.
	if err := r.awaitRemovals(); err != nil {
		errs = append(errs, fmt.Errorf("undo: %w", err))
	}
	for _, old := range retired {
		if err := r.restore(ctx, old); err != nil {
			errs = append(errs, fmt.Errorf("undo: restore %s: %w", old.Name, err))
		}
	}
	if err := r.retireAll(ctx, started); err != nil {
		errs = append(errs, fmt.Errorf("undo: %w", err))
	}
	return errors.Join(errs...)
}

// restore starts a retired container again from the spec in its labels,
// with the secret values its label names. When this process never saw one of
// them (it started after the rotation), the container gets the current value
// and the undo says so: serving with it beats not serving, and the next sync
// replaces the container anyway, its hash being outdated.
func (r *rollout) restore(ctx context.Context, old diff.Container) error {
	if old.Spec == nil {
		return fmt.Errorf("its orca.spec label is unreadable")
	}
	secrets := r.job.asLabelled(r.svc.Project, *old.Spec)
	cfg, release, err := r.containerConfig(ctx, *old.Spec, old.Hash, old.Revision, old.Index, secrets)
	if err != nil {
		return err
	}
	id, err := r.a.rt.Run(ctx, cfg)
	release()
	if err != nil {
		return errors.New(secrets.redactor().String(err.Error()))
	}
	r.noteStarted(cfg.Name)
	st, err := r.a.waitReady(ctx, r.svc, id, cfg.Name, secrets.redactor())
	if err != nil {
		return err
	}
	r.noteAddr(id, st)
	r.routeIn(ctx, diff.Container{ID: id, Name: cfg.Name, Project: r.svc.Project, Service: r.svc.Name, Index: old.Index, Hash: old.Hash, State: "running"})
	if len(secrets.unknown) > 0 {
		return fmt.Errorf("restored with the current value of secrets.%s: the value its label names predates this orca-sync process",
			strings.Join(secrets.unknown, ", secrets."))
	}
	return nil
}

// freeName renames aside an old container of the service that still holds
// name — as when a redeploy replaces containers of an unchanged spec — so the
// new one can start beside it; the old one keeps serving until retired.
func (r *rollout) freeName(ctx context.Context, name string) error {
	for _, c := range r.change.Containers {
		if c.Name != name || r.retired(c.ID) {
			continue
		}
		aside := fmt.Sprintf("%s-replaced-%d", name, time.Now().UnixNano())
		if err := r.a.rt.Rename(ctx, c.ID, aside); err != nil {
			return fmt.Errorf("rename %s aside: %w", name, err)
		}
	}
	return nil
}

// namesTaken reports whether a container of the change holds a name the
// rollout may create (replica 1..replicas of the desired spec).
func (r *rollout) namesTaken() bool {
	names := map[string]bool{}
	for i := 1; i <= r.svc.Replicas; i++ {
		names[diff.ContainerName(r.svc.Project, r.svc.Name, r.svc.Hash, r.job.nameNode, i)] = true
	}
	for _, c := range r.change.Containers {
		if names[c.Name] {
			return true
		}
	}
	return false
}

// sortOut splits containers of the desired spec into those to keep (serving,
// one per replica number within 1..replicas) and the rest.
func (r *rollout) sortOut(current []diff.Container) (keep, drop []diff.Container) {
	taken := map[int]bool{}
	sorted := append([]diff.Container(nil), current...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Index < sorted[j].Index })
	for _, c := range sorted {
		if c.Serving() && c.Index >= 1 && c.Index <= r.svc.Replicas && !taken[c.Index] {
			taken[c.Index] = true
			keep = append(keep, c)
		} else {
			drop = append(drop, c)
		}
	}
	return keep, drop
}

// freeIndices returns up to n replica numbers in 1..replicas not used by used.
func freeIndices(used []diff.Container, replicas, n int) []int {
	taken := map[int]bool{}
	for _, c := range used {
		taken[c.Index] = true
	}
	var free []int
	for i := 1; i <= replicas && len(free) < n; i++ {
		if !taken[i] {
			free = append(free, i)
		}
	}
	return free
}

func brokenOnly(cs []diff.Container) []diff.Container {
	var out []diff.Container
	for _, c := range cs {
		if !c.Serving() {
			out = append(out, c)
		}
	}
	return out
}

func servingOnly(cs []diff.Container) []diff.Container {
	var out []diff.Container
	for _, c := range cs {
		if c.Serving() {
			out = append(out, c)
		}
	}
	return out
}

// startBatch starts one container per index, waits until all are ready
// (within deploy.timeout_secs) and routes them in. If any is not ready, the
// whole batch is removed and the first reason returned.
func (r *rollout) startBatch(ctx context.Context, indices []int) ([]diff.Container, error) {
	if len(indices) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithDeadline(ctx, r.deadline)
	defer cancel()
	batch := make([]diff.Container, len(indices))
	errs := make([]error, len(indices))
	var wg sync.WaitGroup
	for i, idx := range indices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch[i], errs[i] = r.startOne(ctx, idx)
		}()
	}
	wg.Wait()
	var started []diff.Container
	for i := range batch {
		if batch[i].ID != "" {
			started = append(started, batch[i])
		}
	}
	if err := errors.Join(errs...); err != nil {
		if rerr := r.retireAll(context.WithoutCancel(ctx), started); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	return started, nil
}

// startOne runs one new container and waits until it is ready. It returns the
// container even on failure when one was created, so the caller removes it.
func (r *rollout) startOne(ctx context.Context, index int) (diff.Container, error) {
	secrets := r.job.current(r.svc.Project)
	cfg, release, err := r.containerConfig(ctx, r.svc.Spec, r.svc.Hash, r.job.revision, index, secrets)
	if err != nil {
		return diff.Container{}, err
	}
	defer release()
	if err := r.freeName(ctx, cfg.Name); err != nil {
		return diff.Container{}, err
	}
	id, err := r.a.rt.Run(ctx, cfg)
	if err != nil && ctx.Err() != nil {
		// The rollout's deadline passed while a loaded engine was still
		// creating or starting it: the container was not ready within
		// timeout_secs, as for a probe that never passed, not a Docker error.
		return diff.Container{}, &NotReadyError{Container: cfg.Name,
			Reason: fmt.Sprintf("not ready within %s: Docker had not created and started it yet", r.svc.Deploy.Timeout)}
	}
	if err != nil {
		// Docker's error names the command, which may hold a secret.
		return diff.Container{}, fmt.Errorf("start %s: %s", cfg.Name, secrets.redactor().String(err.Error()))
	}
	c := diff.Container{ID: id, Name: cfg.Name, Project: r.svc.Project, Service: r.svc.Name, Index: index, Hash: r.svc.Hash, State: "running"}
	r.noteStarted(cfg.Name)
	r.log.Info("started", "container", cfg.Name)
	st, err := r.a.waitReady(ctx, r.svc, id, cfg.Name, secrets.redactor())
	if err != nil {
		return c, err
	}
	r.noteAddr(id, st)
	if !r.holdRoutes {
		r.routeIn(ctx, c)
	}
	return c, nil
}
