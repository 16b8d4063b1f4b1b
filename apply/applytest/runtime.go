// Package applytest provides a fake container engine for the hermetic tests
// of apply's users.
package applytest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/registryauth"
)

// Runtime keeps containers in memory. An image whose name contains
// "broken" starts containers that exit at once; one whose name contains
// "noexec" cannot be started, and the error names the command, as Docker's
// does ("exec: ...: executable file not found"). It records the fewest
// serving containers per service seen after any change once that service
// first reached its full count. An image whose name contains "remote" is
// not on the host until a Pull of it succeeds; Refuse, when set, decides
// whether a pull does.
type Runtime struct {
	mu         sync.Mutex
	seq        int
	containers map[string]*container
	// MinServing is the fewest serving containers seen per watched service.
	MinServing map[string]int
	// Watch lists the service keys ("project/name") whose serving count is tracked.
	Watch map[string]bool
	// Inspects counts InspectConfig calls.
	Inspects int
	// Refuse fails a pull when it returns an error (a registry's refusal).
	Refuse func(ref string, auth registryauth.Auth) error
	// Pulls are the credentials of every pull, in order.
	Pulls  []registryauth.Auth
	pulled map[string]bool
}

type container struct {
	c   diff.Container
	cfg apply.ContainerConfig
}

// NewRuntime returns an empty fake engine.
func NewRuntime() *Runtime {
	return &Runtime{containers: map[string]*container{}, MinServing: map[string]int{}, Watch: map[string]bool{}}
}

var _ apply.Runtime = (*Runtime)(nil)

func (f *Runtime) List(context.Context) ([]diff.Container, error) {
	return f.list(false), nil
}

// ListOneOffs returns the hook and job containers, which List leaves out.
func (f *Runtime) ListOneOffs(context.Context) ([]diff.Container, error) {
	return f.list(true), nil
}

func (f *Runtime) list(oneOffs bool) []diff.Container {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []diff.Container
	for _, c := range f.containers {
		if apply.IsOneOff(c.c.Role) == oneOffs {
			out = append(out, c.c)
		}
	}
	return out
}

// Wait ends a running container: it exits with N for the command
// ["exit", "N"], else 1 for a "broken" image, else 0.
func (f *Runtime) Wait(_ context.Context, id string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[id]
	if c == nil {
		return 0, fmt.Errorf("no such container %s", id)
	}
	c.c.State = "exited"
	code := 0
	if strings.Contains(c.cfg.Spec.Image, "broken") {
		code = 1
	}
	if len(c.cfg.Command) == 2 && c.cfg.Command[0] == "exit" {
		fmt.Sscanf(c.cfg.Command[1], "%d", &code)
	}
	return code, nil
}

func (f *Runtime) EnsureNetwork(context.Context, string) error { return nil }
func (f *Runtime) EnsureVolume(context.Context, string) error  { return nil }
func (f *Runtime) ImageID(_ context.Context, ref string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Contains(ref, "remote") && !f.pulled[ref] {
		return "", fmt.Errorf("inspect image %s: %w", ref, apply.ErrImageNotFound)
	}
	return "sha256:fake", nil
}

func (f *Runtime) Pull(_ context.Context, ref string, auth registryauth.Auth) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Pulls = append(f.Pulls, auth)
	if f.Refuse != nil {
		if err := f.Refuse(ref, auth); err != nil {
			return err
		}
	}
	if f.pulled == nil {
		f.pulled = map[string]bool{}
	}
	f.pulled[ref] = true
	return nil
}

func (f *Runtime) Run(_ context.Context, cfg apply.ContainerConfig) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.c.Name == cfg.Name {
			return "", fmt.Errorf("name %s in use", cfg.Name)
		}
	}
	if strings.Contains(cfg.Spec.Image, "noexec") && len(cfg.Command) > 0 {
		return "", fmt.Errorf("OCI runtime create failed: exec: %q: executable file not found in $PATH: unknown", cfg.Command[0])
	}
	f.seq++
	id := fmt.Sprintf("c%d", f.seq)
	state := "running"
	if strings.Contains(cfg.Spec.Image, "broken") {
		state = "exited"
	}
	spec := cfg.Spec
	var idx int
	fmt.Sscanf(cfg.Name[strings.LastIndex(cfg.Name, "-")+1:], "%d", &idx)
	var binds []config.Mount
	for _, m := range cfg.Mounts {
		binds = append(binds, config.Mount{Source: m.HostPath, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	f.containers[id] = &container{cfg: cfg, c: diff.Container{Binds: binds,
		ID: id, Name: cfg.Name, Project: cfg.Labels[apply.LabelProject], Service: cfg.Labels[apply.LabelService],
		Index: idx, Hash: cfg.Labels[apply.LabelHash], State: state, Spec: &spec,
		Revision: cfg.Labels[apply.LabelRevision], Role: cfg.Labels[apply.LabelRole], Node: cfg.Labels[apply.LabelNode],
	}}
	f.observe()
	return id, nil
}

func (f *Runtime) Stop(_ context.Context, id string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.containers[id]; c != nil {
		c.c.State = "exited"
	}
	f.observe()
	return nil
}

func (f *Runtime) Remove(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.containers, id)
	return nil
}

func (f *Runtime) Rename(_ context.Context, id, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.containers[id]; c != nil {
		c.c.Name = name
		return nil
	}
	return fmt.Errorf("no such container %s", id)
}

func (f *Runtime) Inspect(_ context.Context, id string) (apply.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[id]
	if c == nil {
		return apply.State{}, fmt.Errorf("no such container %s", id)
	}
	return apply.State{Running: c.c.State == "running", Status: c.c.State, ExitCode: map[bool]int{true: 0, false: 1}[c.c.State == "running"],
		IPs: map[string]string{diff.NetworkName(c.c.Project): "10.0.0.1"}, StartedAt: time.Now().Add(-time.Hour)}, nil
}

// Logs is "boom", followed, like an app that prints its connection string as
// it dies, by the value of the container's env var CRASH_LOG when it has one.
func (f *Runtime) Logs(_ context.Context, id string, _ int) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.containers[id]; c != nil && c.cfg.Env["CRASH_LOG"] != "" {
		return "boom\n" + c.cfg.Env["CRASH_LOG"], nil
	}
	return "boom", nil
}
func (f *Runtime) Exec(context.Context, string, []string) (int, error) {
	return 0, nil
}

// SetState changes a container's Docker state, as a crash or `docker stop` would.
func (f *Runtime) SetState(id, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.containers[id]; c != nil {
		c.c.State = state
	}
}

// observe records the serving count of watched services (caller holds mu).
func (f *Runtime) observe() {
	counts := map[string]int{}
	for _, c := range f.containers {
		if c.c.Serving() {
			counts[c.c.Project+"/"+c.c.Service]++
		}
	}
	for k := range f.Watch {
		if m, ok := f.MinServing[k]; !ok || counts[k] < m {
			f.MinServing[k] = counts[k]
		}
	}
}

// IDs maps the ID of every container of service to its image.
func (f *Runtime) IDs(service string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for id, c := range f.containers {
		if c.c.Service == service {
			out[id] = c.cfg.Spec.Image
		}
	}
	return out
}

// InspectConfig returns the config a container was made with, as Docker
// would report it; Inspects counts the calls.
func (f *Runtime) InspectConfig(_ context.Context, id string) (diff.Live, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Inspects++
	c := f.containers[id]
	if c == nil {
		return diff.Live{}, fmt.Errorf("no such container %s", id)
	}
	s := c.cfg.Spec
	li := diff.Live{Image: s.Image, ImageID: s.ImageID, Env: map[string]string{}, Command: c.cfg.Command,
		Ports: s.Ports, Volumes: s.Volumes, Networks: map[string][]string{}, Labels: c.cfg.Labels,
		RestartPolicy: s.RestartPolicy, MemoryBytes: s.MemoryBytes, NanoCPUs: s.NanoCPUs}
	for k, v := range c.cfg.Env {
		li.Env[k] = v
	}
	for _, n := range s.Networks {
		li.Networks[n] = s.Aliases
	}
	for _, m := range c.cfg.Mounts {
		li.Binds = append(li.Binds, config.Mount{Source: m.HostPath, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	return li, nil
}

// HandCopy replaces container id with a copy made by hand — same name and
// labels, a new ID — whose env key is set to value. It returns the new ID.
func (f *Runtime) HandCopy(id, key, value string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.containers[id]
	delete(f.containers, id)
	f.seq++
	nid := fmt.Sprintf("c%d", f.seq)
	cp := &container{c: old.c, cfg: old.cfg}
	cp.c.ID = nid
	cp.cfg.Env = map[string]string{}
	for k, v := range old.cfg.Env {
		cp.cfg.Env[k] = v
	}
	cp.cfg.Env[key] = value
	f.containers[nid] = cp
	return nid
}

// Env maps the ID of every container of service to the value of its
// (resolved) environment variable name.
func (f *Runtime) Env(service, name string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for id, c := range f.containers {
		if c.c.Service == service {
			out[id] = c.cfg.Env[name]
		}
	}
	return out
}
