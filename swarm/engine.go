// Package swarm is orca-sync's Swarm engine ([cluster] engine = "swarm"):
// it converges one Swarm service <project>_<service> per [[service]]
// instead of containers, and lists the services' tasks as the planner's
// live containers, so the planner's spec, the diff against the orca.*
// labels, drift, prune and its guard stay the ones of plain Docker
// (docs/guides/swarm.md). It is the one package that talks Swarm.
package swarm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/registryauth"
)

// Options configure an Engine.
type Options struct {
	// Local is the plain Docker adapter of the manager's engine: it pulls
	// (to resolve and check images) and answers image lookups.
	Local apply.Runtime
	// Credentials pick each image's registry credentials, which service
	// creates and updates send on to the workers (with-registry-auth).
	Credentials apply.Credentials
	// Node is the orca.node label of the services (the manager's node).
	Node string
	// Poll is how often a rollout re-reads the service and its tasks;
	// 0 is 250 ms.
	Poll time.Duration
	Log  *slog.Logger
}

// Engine converges Swarm services. It is an apply.Runtime whose List gives
// the tasks of the managed services, so the planner plans against it as
// against Docker; Schedule carries out a plan.
type Engine struct {
	cli   *client.Client
	local apply.Runtime
	creds apply.Credentials
	node  string
	poll  time.Duration
	log   *slog.Logger
	// netMu serialises network creation: the services of a project
	// converge concurrently and each ensures the project network.
	netMu sync.Mutex
}

var _ apply.Runtime = (*Engine)(nil)

// ErrNotManager is returned by New on a node that is no Swarm manager.
var ErrNotManager = errors.New("engine = \"swarm\" needs orca-sync on a Swarm manager")

// New connects to the engine from the environment and checks that it is a
// manager of an active swarm.
func New(ctx context.Context, opts Options) (*Engine, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the Docker engine: %w", err)
	}
	e := &Engine{cli: cli, local: opts.Local, creds: opts.Credentials, node: opts.Node, poll: opts.Poll, log: opts.Log}
	if e.poll == 0 {
		e.poll = 250 * time.Millisecond
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.creds == nil {
		e.creds = registryauth.ClusterOnly()
	}
	if err := e.checkManager(ctx); err != nil {
		cli.Close()
		return nil, err
	}
	return e, nil
}

// Close closes the engine's client.
func (e *Engine) Close() error { return e.cli.Close() }

// checkManager asks for the swarm's own state, which only a manager of an
// active swarm has (the engine's /info would tell more, but it waits on
// every container's lock and can hang on a busy engine).
func (e *Engine) checkManager(ctx context.Context) error {
	if _, err := e.cli.SwarmInspect(ctx, client.SwarmInspectOptions{}); err != nil {
		return fmt.Errorf("%w: this engine is in no swarm or is a worker (%v); run `docker swarm init`, run orca-sync on a manager (`docker node ls` there lists them), or set engine = \"docker\"", ErrNotManager, err)
	}
	return nil
}

// The Runtime methods below are what the loop calls outside a rollout;
// containers themselves are Swarm's to run.

var errSwarmTask = errors.New("not available for Swarm tasks")

// ListOneOffs is empty: hooks and jobs are refused on Swarm.
func (e *Engine) ListOneOffs(context.Context) ([]diff.Container, error) { return nil, nil }

// EnsureNetwork creates the attachable overlay network name unless it exists.
func (e *Engine) EnsureNetwork(ctx context.Context, name string) error {
	e.netMu.Lock()
	defer e.netMu.Unlock()
	res, err := e.cli.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", name)})
	if err != nil {
		return fmt.Errorf("list networks %s: %w", name, err)
	}
	for _, n := range res.Items {
		if n.Name != name {
			continue
		}
		// A swarm network a manager has just made may be listed without
		// its driver yet; only another driver is refused.
		if n.Driver != "overlay" && n.Driver != "" {
			return fmt.Errorf("network %s exists with driver %s; Swarm services need an overlay network of that name (remove it)", name, n.Driver)
		}
		return nil
	}
	_, err = e.cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "overlay", Attachable: true,
		Labels: map[string]string{apply.LabelManaged: "true"}})
	if err != nil {
		return fmt.Errorf("create overlay network %s: %w", name, err)
	}
	return nil
}

// EnsureVolume is Swarm's: each node creates a service's named volumes
// where its task runs.
func (e *Engine) EnsureVolume(context.Context, string) error { return nil }

// ImageID asks the manager's engine.
func (e *Engine) ImageID(ctx context.Context, ref string) (string, error) {
	return e.local.ImageID(ctx, ref)
}

// Pull pulls on the manager (the workers pull at each task start with the
// credentials the service carries).
func (e *Engine) Pull(ctx context.Context, ref string, auth registryauth.Auth) error {
	return e.local.Pull(ctx, ref, auth)
}

// Inspect tells a task's state.
func (e *Engine) Inspect(ctx context.Context, id string) (apply.State, error) {
	res, err := e.cli.TaskInspect(ctx, id, client.TaskInspectOptions{})
	if err != nil {
		return apply.State{}, fmt.Errorf("inspect task %s: %w", id, err)
	}
	t := res.Task
	return apply.State{Running: t.Status.State == swarm.TaskStateRunning, Status: taskState(t)}, nil
}

// Wait, Run, Stop, Remove, Rename, Logs and Exec act on containers, which
// Swarm runs: the loop never calls them on Swarm (hooks, jobs, liveness,
// canaries and backups are validation errors there).
func (e *Engine) Wait(context.Context, string) (int, error) { return 0, errSwarmTask }

// Run is refused: Swarm starts the tasks.
func (e *Engine) Run(context.Context, apply.ContainerConfig) (string, error) { return "", errSwarmTask }

// Stop is refused: Swarm stops the tasks.
func (e *Engine) Stop(context.Context, string, time.Duration) error { return errSwarmTask }

// Remove is refused: Swarm removes the tasks.
func (e *Engine) Remove(context.Context, string) error { return errSwarmTask }

// Rename is refused: tasks are named by Swarm.
func (e *Engine) Rename(context.Context, string, string) error { return errSwarmTask }

// Logs is refused: use `docker service logs`.
func (e *Engine) Logs(context.Context, string, int) (string, error) { return "", errSwarmTask }

// Exec is refused: a task may run on another node.
func (e *Engine) Exec(context.Context, string, []string) (int, error) { return 0, errSwarmTask }
