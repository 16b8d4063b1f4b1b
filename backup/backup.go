// Package backup takes the volume backups of [backup] (docs/guides/backups.md):
// on its schedule or on demand, for each service with named volumes, it runs
// the service's backup.pre_hook in its first running replica, reads each
// volume through the engine's archive endpoint, writes it as a gzip'd tar to
// every target (a directory or an S3 bucket) and applies retention; it lists
// archives and restores one into its emptied volume. It drives the engine
// through Runtime (package docker implements it) and knows nothing of the
// reconcile loop but the few hooks of Options.
package backup

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/notify"
)

// Runtime is what backups need of the container engine.
type Runtime interface {
	// List returns every orca-managed container, running or not.
	List(ctx context.Context) ([]diff.Container, error)
	// ExecOutput runs cmd in a running container, writing its output to
	// out, and returns its exit code.
	ExecOutput(ctx context.Context, id string, cmd []string, out io.Writer) (int, error)
	// CopyFrom is a tar of path in a container (entries under path's base
	// name); CopyTo unpacks a tar at dir.
	CopyFrom(ctx context.Context, id, path string) (io.ReadCloser, error)
	CopyTo(ctx context.Context, id, dir string, tar io.Reader) error
	// CreateIdle creates, never starts, an unmanaged container of a local
	// image with volumes mounted.
	CreateIdle(ctx context.Context, name, image, role string, volumes []config.Volume) (string, error)
	Stop(ctx context.Context, id string, grace time.Duration) error
	Remove(ctx context.Context, id string) error
	// EmptyVolume removes a volume no container uses and makes it again.
	EmptyVolume(ctx context.Context, name string) error
}

// Store keeps each volume's last backup across restarts (state.db).
type Store interface {
	Put(namespace, key string, v any) error
	Get(namespace, key string, v any) (bool, error)
	Keys(namespace string) ([]string, error)
}

// Notifier receives backup_failed; it must not block.
type Notifier interface{ Notify(e notify.Event) }

// Options configure a Manager.
type Options struct {
	Runtime Runtime
	// Desired is the last valid checkout, secrets resolved (nil before the
	// first one).
	Desired func() *config.Desired
	// Exclusive runs fn while no sync runs; a restore stops and removes the
	// service's containers inside it so no sync starts them meanwhile.
	Exclusive func(ctx context.Context, fn func(ctx context.Context) error) error
	// Restored is told a service was restored, to start it (signal a sync).
	Restored func(project, service string)
	// SpoolDir holds an archive while it is written to the targets.
	SpoolDir string
	Store    Store
	Notifier Notifier
	Metrics  *Metrics
	// Node and Cluster name this host in backup_failed.
	Node string
	Log  *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Manager runs backups and restores, one at a time.
type Manager struct {
	opts Options
	log  *slog.Logger
	// mu makes backups and restores take turns.
	mu sync.Mutex
	st *statusMemory
}

// New returns a manager; RunSchedule starts its schedule.
func New(opts Options) *Manager {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Exclusive == nil {
		opts.Exclusive = func(ctx context.Context, fn func(context.Context) error) error { return fn(ctx) }
	}
	if opts.Restored == nil {
		opts.Restored = func(string, string) {}
	}
	return &Manager{opts: opts, log: opts.Log, st: newStatusMemory(opts.Store, opts.Log)}
}

// targets are the [[backup.targets]] of d; a target that cannot even be
// made (a bad endpoint) is returned as an error by name.
func targetsOf(d *config.Desired) ([]Target, map[string]error) {
	var out []Target
	bad := map[string]error{}
	for _, t := range d.Cluster.Backup.Targets {
		tg, err := NewTarget(t)
		if err != nil {
			bad[t.Name()] = err
			continue
		}
		out = append(out, tg)
	}
	return out, bad
}
