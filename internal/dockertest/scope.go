package dockertest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Name is prefix plus a random suffix of 6 [a-z0-9]: a name no other test,
// and no earlier run, uses.
func Name(prefix string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 6)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + string(b)
}

// Scope is one test's share of the engine: a unique prefix for the names of
// everything it creates, and a cleanup that removes all of it.
//
// It owns: every container whose name starts with Prefix, every orca-managed
// container whose orca.project starts with Prefix, every network whose name
// starts with Prefix or "orca-"+Prefix (a project's network is
// "orca-"+project), every volume whose name starts with Prefix, and every
// image orca-sync built for a project whose name starts with Prefix.
type Scope struct {
	// Prefix is "t" + 6 random [a-z0-9]; name projects Prefix+name.
	Prefix string
	Docker *client.Client
	t      testing.TB
}

// NewScope picks a fresh prefix and registers a cleanup that (also when the
// test fails) removes everything the scope owns, and reports what it could
// not remove as a test error. On failure it first logs the last log lines of
// the scope's containers.
func NewScope(t testing.TB, cli *client.Client) *Scope {
	t.Helper()
	s := &Scope{Prefix: Name("t"), Docker: cli, t: t}
	t.Cleanup(func() {
		if t.Failed() {
			s.DumpLogs()
		}
		if err := s.Cleanup(); err != nil {
			t.Errorf("docker cleanup: %v", err)
		}
	})
	return s
}

// Containers lists all (also stopped) containers the scope owns.
func (s *Scope) Containers(ctx context.Context) ([]container.Summary, error) {
	res, err := s.Docker.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []container.Summary
	for _, c := range res.Items {
		managed := c.Labels["orca.managed"] == "true" && strings.HasPrefix(c.Labels["orca.project"], s.Prefix)
		named := slices.ContainsFunc(c.Names, func(n string) bool { return strings.HasPrefix(strings.TrimPrefix(n, "/"), s.Prefix) })
		if managed || named {
			out = append(out, c)
		}
	}
	return out, nil
}

func (s *Scope) ownsNetwork(name string) bool {
	return strings.HasPrefix(name, s.Prefix) || strings.HasPrefix(name, "orca-"+s.Prefix)
}

// Cleanup removes everything the scope owns. It can run more than once. A
// failed sweep (say a container another process is still removing keeps a
// network busy) is retried a few times.
func (s *Scope) Cleanup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if err = s.sweep(ctx); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
	}
	return err
}

func (s *Scope) sweep(ctx context.Context) error {
	var errs []error
	cs, err := s.Containers(ctx)
	errs = append(errs, err)
	for _, c := range cs {
		_, err := s.Docker.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID[:12], err))
		}
	}
	nets, err := s.Docker.NetworkList(ctx, client.NetworkListOptions{})
	errs = append(errs, err)
	for _, n := range nets.Items {
		if s.ownsNetwork(n.Name) {
			_, err := s.Docker.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
			if err != nil && !IsNotFound(err) {
				errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
			}
		}
	}
	vols, err := s.Docker.VolumeList(ctx, client.VolumeListOptions{})
	errs = append(errs, err)
	for _, v := range vols.Items {
		if strings.HasPrefix(v.Name, s.Prefix) {
			_, err := s.Docker.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true})
			if err != nil && !IsNotFound(err) {
				errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
			}
		}
	}
	return errors.Join(append(errs, s.sweepBuiltImages(ctx))...)
}

// LabelBuildProject is the label orca-sync puts on the images it builds
// (package build's LabelProject): the scope removes those of its projects.
const LabelBuildProject = "orca.build.project"

func (s *Scope) sweepBuiltImages(ctx context.Context) error {
	imgs, err := s.Docker.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("label", LabelBuildProject)})
	if err != nil {
		return fmt.Errorf("list built images: %w", err)
	}
	var errs []error
	for _, img := range imgs.Items {
		if !strings.HasPrefix(img.Labels[LabelBuildProject], s.Prefix) {
			continue
		}
		_, err := s.Docker.ImageRemove(ctx, img.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		if err != nil && !IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove built image %s: %w", img.ID, err))
		}
	}
	return errors.Join(errs...)
}

// Leftovers names what Cleanup would remove (containers, networks, volumes).
func (s *Scope) Leftovers(ctx context.Context) ([]string, error) {
	var out []string
	cs, err := s.Containers(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		out = append(out, "container "+strings.Join(c.Names, ","))
	}
	nets, err := s.Docker.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	for _, n := range nets.Items {
		if s.ownsNetwork(n.Name) {
			out = append(out, "network "+n.Name)
		}
	}
	vols, err := s.Docker.VolumeList(ctx, client.VolumeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	for _, v := range vols.Items {
		if strings.HasPrefix(v.Name, s.Prefix) {
			out = append(out, "volume "+v.Name)
		}
	}
	return out, nil
}

// DumpLogs logs the state and last 30 log lines of each container the scope
// owns.
func (s *Scope) DumpLogs() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := s.Containers(ctx)
	if err != nil {
		s.t.Logf("docker: listing containers for logs: %v", err)
		return
	}
	for _, c := range cs {
		rc, err := s.Docker.ContainerLogs(ctx, c.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "30"})
		if err != nil {
			s.t.Logf("docker: logs of %v: %v", c.Names, err)
			continue
		}
		var buf strings.Builder
		_, _ = stdcopy.StdCopy(&buf, &buf, rc)
		rc.Close()
		s.t.Logf("docker: container %v (%s, %s) last logs:\n%s", c.Names, c.State, c.Status, buf.String())
	}
}
