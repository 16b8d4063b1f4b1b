// Package apply carries out a plan on a container Runtime (the Docker engine,
// through package docker): it creates, rolls, scales, heals and removes the
// containers of each service, waits for them to be ready, and undoes a
// rollout that does not become ready in time.
package apply

import (
	"context"
	"errors"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/registryauth"
)

// Labels orca-sync puts on every container it manages.
const (
	LabelManaged  = "orca.managed"
	LabelProject  = "orca.project"
	LabelService  = "orca.service"
	LabelHash     = "orca.spec-hash"
	LabelRevision = "orca.revision"
	LabelRole     = "orca.role"
	LabelNode     = "orca.node"
	// LabelSpec holds the container spec (no secret values) so a plan can
	// name changed fields from the list call alone.
	LabelSpec = "orca.spec"
	// LabelHook names the hook a hook container runs (pre_deploy,
	// post_deploy).
	LabelHook = "orca.hook"
)

// The orca.role of one-off containers: they run to their exit and are no
// replica of their service (docs/reference/service-toml.md#hooks).
const (
	RoleHook = "hook"
	RoleJob  = "job"
)

// IsOneOff reports whether an orca.role is a hook's or a job's.
func IsOneOff(role string) bool { return role == RoleHook || role == RoleJob }

// ErrImageNotFound is returned by Runtime.ImageID for an image the engine
// does not hold.
var ErrImageNotFound = errors.New("image not found locally")

// Runtime is the part of the Docker engine that apply uses. The Docker
// adapter (package docker) implements it; tests use applytest's fake.
type Runtime interface {
	// List returns every container labelled orca.managed=true, running or not,
	// with one engine call, but the one-off (hook and job) containers.
	List(ctx context.Context) ([]diff.Container, error)
	// ListOneOffs returns the managed hook and job containers.
	ListOneOffs(ctx context.Context) ([]diff.Container, error)
	// Wait blocks until the container no longer runs and returns its exit
	// code.
	Wait(ctx context.Context, id string) (int, error)
	EnsureNetwork(ctx context.Context, name string) error
	EnsureVolume(ctx context.Context, name string) error
	// ImageID returns the ID of a local image, or ErrImageNotFound.
	ImageID(ctx context.Context, ref string) (string, error)
	// Pull fetches an image with auth (none when empty), reporting progress
	// lines to the runtime's logger. A registry's refusal is a *PullError.
	Pull(ctx context.Context, ref string, auth registryauth.Auth) error
	// Run creates a container, connects it to its networks and starts it.
	Run(ctx context.Context, c ContainerConfig) (id string, err error)
	// Stop sends SIGTERM, then SIGKILL after grace; a negative grace is the
	// container's own stop timeout.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Remove force-removes a container; never its named volumes.
	Remove(ctx context.Context, id string) error
	// Rename renames a container, running or not.
	Rename(ctx context.Context, id, name string) error
	Inspect(ctx context.Context, id string) (State, error)
	// Logs returns the last tail lines of stdout and stderr.
	Logs(ctx context.Context, id string, tail int) (string, error)
	// Exec runs cmd in the container and returns its exit code.
	Exec(ctx context.Context, id string, cmd []string) (int, error)
}

// ContainerConfig is everything needed to start one container.
type ContainerConfig struct {
	Name string
	Spec diff.Spec
	// Env and Command are resolved (secrets substituted); Spec keeps the
	// templates, which are what the orca.spec label shows.
	Env     map[string]string
	Command []string
	// Mounts carry resolved host paths.
	Mounts []config.Mount
	Labels map[string]string
	// StopGrace is the container's own stop timeout (stop_grace_secs), what
	// a stop with a negative grace uses; 0 keeps the engine's default.
	StopGrace time.Duration
}

// State is what an inspect tells about a container.
type State struct {
	Running  bool
	Status   string // created, running, exited, ...
	ExitCode int
	// Health is the image HEALTHCHECK's status: "", starting, healthy, unhealthy.
	Health    string
	OOMKilled bool
	// IPs maps a network name to the container's IPv4 address on it.
	IPs       map[string]string
	StartedAt time.Time
}

// Event is a container runtime event that matters to orca-sync (the Docker
// adapter's Events streams them).
type Event struct {
	// Action is die, oom, stop, destroy, pause, health_status (with the
	// status after a colon, as Docker sends it), or a change of config
	// without a new ID: update, connect, disconnect.
	Action      string
	ContainerID string
	// Managed is set for containers labelled orca.managed=true; Node is
	// their orca.node.
	Managed bool
	Node    string
	// Role is the container's orca.role: events of one-off containers
	// (IsOneOff) ask for no sync.
	Role string
}
