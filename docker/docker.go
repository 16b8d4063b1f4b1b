// Package docker adapts the moby Docker client to apply.Runtime and to the
// optional capabilities the reconciler looks for on a runtime (a container's
// actual config for drift checks, its log stream, the engine's events). It
// is the only package that links the Docker client: apply's rollout logic
// and the proxy are written against interfaces, not against Docker.
package docker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

// Engine is the apply.Runtime backed by a Docker engine, reached as the
// docker CLI would (DOCKER_HOST, DOCKER_CERT_PATH, ... or the local socket).
// The API version is negotiated with the engine, so old engines (API 1.41)
// work.
type Engine struct {
	cli *client.Client
	log *slog.Logger
	// netMu serialises network creation: Docker 20.10 accepts two networks
	// of one name, and the services of a project start concurrently.
	netMu sync.Mutex
	// images caches the defaults of each image ID for drift checks.
	imgMu  sync.Mutex
	images map[string]imageDefaults
	// digests caches RepoDigest by "<image ID> <repository>".
	digests map[string]string
	// refs caches every RepoDigest answer (references, and images without
	// a digest there) while an event stream watches images, which can
	// change under a tag: see imageWatch.
	refs imageWatch
}

// Engine is an apply.Runtime with every optional capability of
// apply/capabilities.go: InspectConfig (drift checks), StreamLogs (the logs
// API) and Events (self-healing).
var (
	_ apply.Runtime         = (*Engine)(nil)
	_ apply.ConfigInspector = (*Engine)(nil)
	_ apply.LogStreamer     = (*Engine)(nil)
	_ apply.EventSource     = (*Engine)(nil)
	_ apply.ImageDigester   = (*Engine)(nil)
)

// dockerPingTimeout bounds the first contact with the engine when ctx has no
// deadline of its own, so a hung daemon fails the start instead of hanging it.
const dockerPingTimeout = 15 * time.Second

// New connects to the Docker engine from the environment and checks it
// answers. log receives pull progress; nil discards it.
func New(ctx context.Context, log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the Docker engine: %w", err)
	}
	pctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, dockerPingTimeout)
		defer cancel()
	}
	if _, err := cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		// The client's error names the host it tried.
		return nil, fmt.Errorf("cannot reach the Docker engine: %w", err)
	}
	return &Engine{cli: cli, log: log}, nil
}

// Close releases the engine connection.
func (d *Engine) Close() error { return d.cli.Close() }

// List returns every orca-managed container, running or not, with one call,
// but the hook and job containers (ListOneOffs): plans, drift, prune, status
// and routes see only the replicas of services.
func (d *Engine) List(ctx context.Context) ([]diff.Container, error) {
	res, err := d.cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", apply.LabelManaged+"=true"),
	})
	if err != nil {
		return nil, fmt.Errorf("list managed containers: %w", err)
	}
	out := make([]diff.Container, 0, len(res.Items))
	for _, s := range res.Items {
		if apply.IsOneOff(s.Labels[apply.LabelRole]) || IsSwarmTask(s.Labels) {
			continue
		}
		out = append(out, dockerContainer(s))
	}
	return out, nil
}

// swarmTaskLabel is the label Swarm puts on the containers of its tasks.
const swarmTaskLabel = "com.docker.swarm.task.id"

// IsSwarmTask reports whether a container's labels are a Swarm task's. The
// Swarm engine labels its tasks' containers orca.managed too; the Docker
// engine leaves them to Swarm, so that engine = "docker" on a swarm node
// never fights Swarm over them (docs/guides/swarm.md).
func IsSwarmTask(labels map[string]string) bool { return labels[swarmTaskLabel] != "" }

func dockerContainer(s container.Summary) diff.Container {
	name := ""
	if len(s.Names) > 0 {
		name = strings.TrimPrefix(s.Names[0], "/")
	}
	c := diff.Container{
		ID:       s.ID,
		Name:     name,
		Project:  s.Labels[apply.LabelProject],
		Service:  s.Labels[apply.LabelService],
		Index:    dockerNameIndex(name),
		Hash:     s.Labels[apply.LabelHash],
		Revision: s.Labels[apply.LabelRevision],
		Role:     s.Labels[apply.LabelRole],
		Node:     s.Labels[apply.LabelNode],
		State:    string(s.State),
		Health:   dockerSummaryHealth(s),
		Status:   s.Status,
		ImageID:  s.ImageID,
	}
	if spec, ok := diff.DecodeSpec(s.Labels[apply.LabelSpec]); ok {
		c.Spec = &spec
	}
	if ns := s.NetworkSettings; ns != nil {
		for name, ep := range ns.Networks {
			if ep != nil && ep.IPAddress.IsValid() {
				if c.IPs == nil {
					c.IPs = map[string]string{}
				}
				c.IPs[name] = ep.IPAddress.String()
			}
		}
	}
	for _, m := range s.Mounts {
		if m.Type == mount.TypeBind {
			c.Binds = append(c.Binds, config.Mount{Source: m.Source, Target: m.Destination, ReadOnly: !m.RW})
		}
	}
	return c
}

// dockerNameIndex is the replica number n of <project>-<service>-<hash8>-<n>, 0
// when the name does not end in one.
func dockerNameIndex(name string) int {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return 0
	}
	digits := name[i+1:]
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return 0
	}
	n, err := strconv.Atoi(digits)
	if err != nil {
		return 0
	}
	return n
}

// dockerSummaryHealth is the HEALTHCHECK status of a listed container. Engines
// with API 1.52+ send it as a field; older ones (20.10 speaks 1.41) only put
// it in the Status text, e.g. "Up 5 minutes (healthy)".
func dockerSummaryHealth(s container.Summary) string {
	if s.Health != nil {
		switch s.Health.Status {
		case container.Healthy, container.Unhealthy, container.Starting:
			return string(s.Health.Status)
		case container.NoHealthcheck:
			return ""
		}
	}
	switch {
	case strings.Contains(s.Status, "(healthy)"):
		return string(container.Healthy)
	case strings.Contains(s.Status, "(unhealthy)"):
		return string(container.Unhealthy)
	case strings.Contains(s.Status, "(health: starting)"):
		return string(container.Starting)
	}
	return ""
}

// EnsureNetwork creates the bridge network name unless it exists.
//
// Engines before API 1.44 (Docker 20.10 among them) accept a second network
// with a name already taken, only warning about it, and a name that matches
// two networks can no longer be used to attach containers. So after a create
// the networks of that name are listed again and every creator but the one of
// the oldest network removes its own, which leaves exactly one even when two
// callers race.
func (d *Engine) EnsureNetwork(ctx context.Context, name string) error {
	d.netMu.Lock()
	defer d.netMu.Unlock()
	nets, err := d.networksNamed(ctx, name)
	if err != nil {
		return err
	}
	if len(nets) > 0 {
		return d.awaitOneNetwork(ctx, name, len(nets))
	}
	res, err := d.cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{
		Driver: "bridge",
		Labels: map[string]string{apply.LabelManaged: "true"},
	})
	if cerrdefs.IsConflict(err) {
		return nil // created by someone else meanwhile
	}
	if err != nil {
		return fmt.Errorf("create network %s: %w", name, err)
	}
	nets, err = d.networksNamed(ctx, name)
	if err != nil {
		return err
	}
	if len(nets) <= 1 {
		return nil
	}
	sort.Slice(nets, func(i, j int) bool {
		if !nets[i].Created.Equal(nets[j].Created) {
			return nets[i].Created.Before(nets[j].Created)
		}
		return nets[i].ID < nets[j].ID
	})
	if nets[0].ID == res.ID {
		// Ours stays; until the other creators have removed theirs the
		// name is ambiguous and no container can attach by it.
		return d.awaitOneNetwork(ctx, name, len(nets))
	}
	d.log.Debug("network created twice concurrently; removing the duplicate", "network", name, "id", res.ID)
	if _, err := d.cli.NetworkRemove(ctx, res.ID, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove duplicate network %s (%s): %w", name, dockerShortID(res.ID), err)
	}
	// A third creator may not have removed its own yet.
	return d.awaitOneNetwork(ctx, name, len(nets))
}

// awaitOneNetwork waits, up to networkSettle, until name matches one network
// again while another creator removes its duplicate (see EnsureNetwork).
func (d *Engine) awaitOneNetwork(ctx context.Context, name string, n int) error {
	deadline := time.Now().Add(networkSettle)
	for n > 1 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("network %s: %w", name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		nets, err := d.networksNamed(ctx, name)
		if err != nil {
			return err
		}
		n = len(nets)
	}
	if n > 1 {
		return fmt.Errorf("network %s: %d networks have this name; remove all but one (docker network ls)", name, n)
	}
	return nil
}

// networkSettle bounds the wait for a concurrent creator's duplicate
// network to go.
const networkSettle = 15 * time.Second

// networksNamed lists the networks whose name is exactly name (the engine's
// name filter matches substrings).
func (d *Engine) networksNamed(ctx context.Context, name string) ([]network.Summary, error) {
	res, err := d.cli.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", name)})
	if err != nil {
		return nil, fmt.Errorf("list networks named %s: %w", name, err)
	}
	var out []network.Summary
	for _, n := range res.Items {
		if n.Name == name {
			out = append(out, n)
		}
	}
	return out, nil
}

// EnsureVolume creates the named volume unless it exists.
func (d *Engine) EnsureVolume(ctx context.Context, name string) error {
	_, err := d.cli.VolumeInspect(ctx, name, client.VolumeInspectOptions{})
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect volume %s: %w", name, err)
	}
	_, err = d.cli.VolumeCreate(ctx, client.VolumeCreateOptions{
		Name:   name,
		Labels: map[string]string{apply.LabelManaged: "true"},
	})
	if err != nil && !cerrdefs.IsConflict(err) {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	return nil
}

// ImageID returns the ID of a local image, or an error wrapping
// apply.ErrImageNotFound.
func (d *Engine) ImageID(ctx context.Context, ref string) (string, error) {
	res, err := d.cli.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("inspect image %s: %w", ref, apply.ErrImageNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return res.ID, nil
}

// dockerIsLayerID reports whether a pull message ID names a layer (12 hex digits)
// rather than the image or tag.
func dockerIsLayerID(id string) bool {
	if len(id) != 12 {
		return false
	}
	for _, r := range id {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}

// Stop sends SIGTERM, then SIGKILL once grace (rounded up to whole seconds)
// has passed; a negative grace leaves it to the container's own stop
// timeout (its stop_grace_secs when orca-sync created it). A container that
// no longer exists is not an error.
func (d *Engine) Stop(ctx context.Context, id string, grace time.Duration) error {
	var timeout *int
	if grace >= 0 {
		secs := int(math.Ceil(grace.Seconds()))
		timeout = &secs
	}
	_, err := d.cli.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: timeout})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop container %s: %w", dockerShortID(id), err)
	}
	return nil
}

// Remove force-removes a container. Its volumes, named or anonymous, are
// kept. A container that no longer exists is not an error.
func (d *Engine) Remove(ctx context.Context, id string) error {
	_, err := d.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: false})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s: %w", dockerShortID(id), err)
	}
	return nil
}

// Inspect reads a container's state.
func (d *Engine) Inspect(ctx context.Context, id string) (apply.State, error) {
	res, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return apply.State{}, fmt.Errorf("inspect container %s: %w", dockerShortID(id), err)
	}
	ci := res.Container
	st := apply.State{IPs: map[string]string{}}
	if s := ci.State; s != nil {
		st.Running = s.Running
		st.Status = string(s.Status)
		st.ExitCode = s.ExitCode
		st.OOMKilled = s.OOMKilled
		if s.Health != nil && s.Health.Status != container.NoHealthcheck {
			st.Health = string(s.Health.Status)
		}
		if t, err := time.Parse(time.RFC3339Nano, s.StartedAt); err == nil && !t.IsZero() && t.Year() > 1 {
			st.StartedAt = t
		}
	}
	if ci.NetworkSettings != nil {
		for name, ep := range ci.NetworkSettings.Networks {
			if ep != nil && ep.IPAddress.IsValid() {
				st.IPs[name] = ep.IPAddress.String()
			}
		}
	}
	return st, nil
}

// Logs returns the last tail lines of stdout and stderr (all of them when
// tail ≤ 0), interleaved as the engine returns them.
func (d *Engine) Logs(ctx context.Context, id string, tail int) (string, error) {
	var buf strings.Builder
	err := d.StreamLogs(ctx, id, tail, false, &buf)
	return buf.String(), err
}

// StreamLogs copies the last tail lines of a container's stdout and stderr to
// w (tail <= 0: all), and with follow goes on until ctx ends.
func (d *Engine) StreamLogs(ctx context.Context, id string, tail int, follow bool, w io.Writer) error {
	opts := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "all", Follow: follow}
	if tail > 0 {
		opts.Tail = strconv.Itoa(tail)
	}
	rc, err := d.cli.ContainerLogs(ctx, id, opts)
	if err != nil {
		return fmt.Errorf("logs of container %s: %w", dockerShortID(id), err)
	}
	defer rc.Close()
	if _, err := stdcopy.StdCopy(w, w, rc); err != nil && ctx.Err() == nil {
		return fmt.Errorf("logs of container %s: %w", dockerShortID(id), err)
	}
	return nil
}

// Rename renames a container, running or not.
func (d *Engine) Rename(ctx context.Context, id, name string) error {
	if _, err := d.cli.ContainerRename(ctx, id, client.ContainerRenameOptions{NewName: name}); err != nil {
		return fmt.Errorf("rename container %s to %s: %w", dockerShortID(id), name, err)
	}
	return nil
}

// Exec runs cmd in the container, waits for it to end and returns its exit
// code. A command that cannot start (say it does not exist in the image) is
// an error.
func (d *Engine) Exec(ctx context.Context, id string, cmd []string) (int, error) {
	what := fmt.Sprintf("exec %q in container %s", strings.Join(cmd, " "), dockerShortID(id))
	ex, err := d.cli.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: cmd})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if _, err := d.cli.ExecStart(ctx, ex.ID, client.ExecStartOptions{Detach: true}); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	delay := 20 * time.Millisecond
	for {
		res, err := d.cli.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
		if err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		if !res.Running {
			return res.ExitCode, nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, fmt.Errorf("%s: %w", what, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

func dockerShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
