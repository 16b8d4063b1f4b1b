package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/internal/dockertest"
	"github.com/orca-sync/orca-sync/registryauth"
)

// dockerTestImage is the image the Docker tests run: FROM scratch with the
// static binary of testdata/sleeper, built locally (no registry needed).
const dockerTestImage = "orca-test/apply-sleeper:1"

// dockerConnect connects to the engine, or skips the test in -short mode.
// Without -short an unreachable engine fails the test: it never skips.
func dockerConnect(t *testing.T) *Engine {
	t.Helper()
	dockertest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := New(ctx, log)
	if err != nil {
		t.Fatalf("Docker tests need a Docker engine (or run with -short): %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func dockerTestCtx(t *testing.T, timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// dockerBuildSleeper builds dockerTestImage from testdata/sleeper, unless
// the image already holds this binary and Dockerfile.
func dockerBuildSleeper(t *testing.T, d *Engine) {
	t.Helper()
	err := dockertest.BuildImages(dockerTestCtx(t, 3*time.Minute), d.cli,
		dockertest.Program{Dir: filepath.Join("testdata", "sleeper"), Binary: "sleeper", Standalone: true},
		dockertest.Image{Tag: dockerTestImage, Lines: "EXPOSE 8080\n" +
			"HEALTHCHECK --interval=1s --timeout=3s --retries=3 CMD [\"/sleeper\", \"exists\", \"/sleeper\"]\n" +
			"CMD [\"/sleeper\"]\n"})
	if err != nil {
		t.Fatal(err)
	}
}

// dockerFreePort returns a TCP port free on 127.0.0.1 right now.
func dockerFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// dockerEventually retries f every 100ms until it returns nil or timeout passes,
// then fails the test with f's last error.
func dockerEventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestDockerLifecycle(t *testing.T) {
	d := dockerConnect(t)
	dockerBuildSleeper(t, d)
	ctx := dockerTestCtx(t, 3*time.Minute)

	project := dockertest.NewScope(t, d.cli).Prefix
	netA, netB := diff.NetworkName(project), diff.NetworkName(project)+"-int"
	vol := project + "-data"
	spec := diff.Spec{
		Image:         dockerTestImage,
		Env:           map[string]string{"GREETING": "${secrets.GREETING}"},
		Volumes:       []config.Volume{{Source: vol, Target: "/data"}},
		Mounts:        []config.Mount{{Source: "./conf", Target: "/conf", ReadOnly: true}},
		Aliases:       []string{"web", "www"},
		Networks:      []string{netA, netB},
		MemoryBytes:   64 << 20,
		NanoCPUs:      500_000_000,
		RestartPolicy: "on-failure:2",
	}
	port := dockerFreePort(t)
	spec.Ports = []config.PortBinding{{HostIP: "127.0.0.1", HostPort: port, ContainerPort: 8080, Protocol: "tcp"}}
	hash := spec.Hash()
	name := fmt.Sprintf("%s-web-%s-3", project, hash[:8])
	name2 := fmt.Sprintf("%s-web-%s-4", project, hash[:8])

	// Networks and volumes: a second ensure is a no-op.
	for _, n := range []string{netA, netA, netB} {
		if err := d.EnsureNetwork(ctx, n); err != nil {
			t.Fatalf("EnsureNetwork(%s): %v", n, err)
		}
	}
	if nets, err := d.networksNamed(ctx, netA); err != nil || len(nets) != 1 {
		t.Fatalf("networks named %s after two EnsureNetwork: %d, %v; want exactly 1", netA, len(nets), err)
	} else if nets[0].Driver != "bridge" || nets[0].Labels[apply.LabelManaged] != "true" {
		t.Errorf("network %s: driver %q labels %v; want bridge, orca.managed=true", netA, nets[0].Driver, nets[0].Labels)
	}
	for range 2 {
		if err := d.EnsureVolume(ctx, vol); err != nil {
			t.Fatalf("EnsureVolume: %v", err)
		}
	}
	if v, err := d.cli.VolumeInspect(ctx, vol, client.VolumeInspectOptions{}); err != nil {
		t.Fatalf("volume %s after EnsureVolume: %v", vol, err)
	} else if v.Volume.Labels[apply.LabelManaged] != "true" {
		t.Errorf("volume labels %v; want orca.managed=true", v.Volume.Labels)
	}

	imageID, err := d.ImageID(ctx, dockerTestImage)
	if err != nil || !strings.HasPrefix(imageID, "sha256:") {
		t.Fatalf("ImageID(%s) = %q, %v; want a sha256 ID", dockerTestImage, imageID, err)
	}

	confDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(confDir, "marker"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{
		apply.LabelManaged: "true", apply.LabelProject: project, apply.LabelService: "web", apply.LabelHash: hash,
		apply.LabelRevision: "abc123", apply.LabelRole: "stable", apply.LabelNode: "n1", apply.LabelSpec: spec.Encode(),
		"com.example.team": "core",
	}
	cfg := apply.ContainerConfig{
		Name:   name,
		Spec:   spec,
		Env:    map[string]string{"GREETING": "hi", "B": "2", "A": "1"},
		Mounts: []config.Mount{{Source: "./conf", Target: "/conf", ReadOnly: true, HostPath: confDir}},
		Labels: labels,
	}
	start := time.Now()
	id, err := d.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("Run took %v", time.Since(start).Round(time.Millisecond))

	// What the engine was told.
	raw, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ci := raw.Container
	if got, want := ci.Config.Env, []string{"A=1", "B=2", "GREETING=hi"}; !dockerContainsAll(got, want) {
		t.Errorf("env %v; want it to hold %v", got, want)
	}
	if got := ci.Config.Cmd; !slices.Equal(got, []string{"/sleeper"}) {
		t.Errorf("cmd %v; want the image's [/sleeper]", got)
	}
	if ci.Config.Labels["com.example.team"] != "core" || ci.Config.Labels[apply.LabelNode] != "n1" {
		t.Errorf("labels %v", ci.Config.Labels)
	}
	hc := ci.HostConfig
	if hc.RestartPolicy.Name != container.RestartPolicyOnFailure || hc.RestartPolicy.MaximumRetryCount != 2 {
		t.Errorf("restart policy %+v; want on-failure:2", hc.RestartPolicy)
	}
	if hc.Memory != 64<<20 || hc.NanoCPUs != 500_000_000 {
		t.Errorf("resources memory=%d nanocpus=%d", hc.Memory, hc.NanoCPUs)
	}
	for _, n := range []string{netA, netB} {
		ep := ci.NetworkSettings.Networks[n]
		if ep == nil {
			t.Errorf("not on network %s: %v", n, ci.NetworkSettings.Networks)
			continue
		}
		if !dockerContainsAll(ep.Aliases, []string{"web", "www"}) {
			t.Errorf("aliases on %s: %v; want web, www", n, ep.Aliases)
		}
	}

	// The published port answers.
	dockerEventually(t, 15*time.Second, "GET on the published port", func() error {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "ok" {
			return fmt.Errorf("status %d body %q", resp.StatusCode, body)
		}
		return nil
	})

	// Inspect: running, an IPv4 on both networks, healthy once the image's
	// HEALTHCHECK has run.
	var st apply.State
	dockerEventually(t, 20*time.Second, "health becomes healthy", func() error {
		st, err = d.Inspect(ctx, id)
		if err != nil {
			return err
		}
		if st.Health != "healthy" {
			return fmt.Errorf("health %q", st.Health)
		}
		return nil
	})
	if !st.Running || st.Status != "running" || st.ExitCode != 0 || st.OOMKilled {
		t.Errorf("Inspect = %+v; want running", st)
	}
	if time.Since(st.StartedAt) > time.Minute || st.StartedAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("StartedAt %v; want about now", st.StartedAt)
	}
	for _, n := range []string{netA, netB} {
		ip, err := dockerIPv4(st.IPs[n])
		if err != nil {
			t.Errorf("IP on %s: %v (IPs %v)", n, err, st.IPs)
		} else {
			t.Logf("IP on %s: %s", n, ip)
		}
	}

	// List finds it, labels decoded.
	all, err := d.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	i := slices.IndexFunc(all, func(c diff.Container) bool { return c.ID == id })
	if i < 0 {
		t.Fatalf("List does not hold %s (%d containers)", name, len(all))
	}
	c := all[i]
	if c.Name != name || c.Project != project || c.Service != "web" || c.Hash != hash || c.Index != 3 ||
		c.Revision != "abc123" || c.Role != "stable" || c.Node != "n1" || c.State != "running" || c.Health != "healthy" {
		t.Errorf("List entry = %+v", c)
	}
	for _, n := range []string{netA, netB} {
		if c.IPs[n] == "" || c.IPs[n] != st.IPs[n] {
			t.Errorf("List IP on %s = %q, want Inspect's %q", n, c.IPs[n], st.IPs[n])
		}
	}
	if !strings.Contains(c.Status, "Up") {
		t.Errorf("Status %q; want Docker's status text", c.Status)
	}
	if c.Spec == nil {
		t.Errorf("List entry has no Spec")
	} else if c.Spec.Hash() != hash {
		t.Errorf("decoded spec hashes to %s; want %s", c.Spec.Hash(), hash)
	}

	// Exec: exit codes come back; scratch has no shell, so exec the binary.
	execs := []struct {
		cmd  []string
		want int
	}{
		{[]string{"/sleeper", "exit", "3"}, 3},
		{[]string{"/sleeper", "exit", "0"}, 0},
		{[]string{"/sleeper", "exists", "/conf/marker"}, 0}, // bind mount
		{[]string{"/sleeper", "write", "/conf/new"}, 2},     // read-only
		{[]string{"/sleeper", "write", "/data/kept"}, 0},    // named volume
		{[]string{"/sleeper", "resolve", "www"}, 0},         // alias
	}
	for _, e := range execs {
		code, err := d.Exec(ctx, id, e.cmd)
		if err != nil || code != e.want {
			t.Errorf("Exec(%v) = %d, %v; want %d", e.cmd, code, err, e.want)
		}
	}
	if code, err := d.Exec(ctx, id, []string{"/bin/sh", "-c", "true"}); err == nil && code == 0 {
		t.Errorf("Exec of a command missing from the image = 0, nil; want an error or non-zero code")
	} else {
		t.Logf("Exec of a missing command: code %d, err %v", code, err)
	}

	// Logs: both streams, demultiplexed.
	dockerEventually(t, 10*time.Second, "logs", func() error {
		logs, err := d.Logs(ctx, id, 50)
		if err != nil {
			return err
		}
		for _, want := range []string{"sleeper listening on :8080 (GREETING=hi)\n", "sleeper stderr line\n"} {
			if !strings.Contains(logs, want) {
				return fmt.Errorf("logs %q lack %q", logs, want)
			}
		}
		return nil
	})
	if logs, err := d.Logs(ctx, id, 1); err != nil || strings.Count(logs, "\n") != 1 {
		t.Errorf("Logs(tail 1) = %q, %v; want one line", logs, err)
	}

	// Stop: SIGTERM ends the sleeper cleanly well within the grace.
	start = time.Now()
	if err := d.Stop(ctx, id, 1500*time.Millisecond); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("Stop took %v", time.Since(start).Round(time.Millisecond))
	st, err = d.Inspect(ctx, id)
	if err != nil || st.Running || st.Status != "exited" || st.ExitCode != 0 {
		t.Errorf("Inspect after Stop = %+v, %v; want exited with code 0", st, err)
	}
	if logs, err := d.Logs(ctx, id, 5); err != nil || !strings.Contains(logs, "got SIGTERM") {
		t.Errorf("logs after Stop = %q, %v; want the SIGTERM line", logs, err)
	}
	if err := d.Stop(ctx, id, time.Second); err != nil {
		t.Errorf("Stop of a stopped container: %v", err)
	}

	// Remove: gone, idempotent, and the named volume stays.
	if err := d.Remove(ctx, id); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := d.Inspect(ctx, id); !cerrdefs.IsNotFound(err) {
		t.Errorf("Inspect after Remove: %v; want not found", err)
	}
	if err := d.Remove(ctx, id); err != nil {
		t.Errorf("Remove of a removed container: %v", err)
	}
	if err := d.Stop(ctx, id, time.Second); err != nil {
		t.Errorf("Stop of a removed container: %v", err)
	}
	if _, err := d.cli.VolumeInspect(ctx, vol, client.VolumeInspectOptions{}); err != nil {
		t.Fatalf("volume %s after Remove: %v", vol, err)
	}

	// A new container on the same volume sees what the first one wrote.
	cfg2 := cfg
	cfg2.Name = name2
	cfg2.Spec.Ports = nil
	id2, err := d.Run(ctx, cfg2)
	if err != nil {
		t.Fatalf("Run on the kept volume: %v", err)
	}
	if code, err := d.Exec(ctx, id2, []string{"/sleeper", "exists", "/data/kept"}); err != nil || code != 0 {
		t.Errorf("file written to the volume before Remove: exists = %d, %v; want 0", code, err)
	}
	if err := d.Remove(ctx, id2); err != nil {
		t.Errorf("Remove: %v", err)
	}
}

func dockerContainsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func dockerIPv4(s string) (net.IP, error) {
	ip := net.ParseIP(s)
	if ip == nil || ip.To4() == nil {
		return nil, fmt.Errorf("%q is not an IPv4 address", s)
	}
	return ip, nil
}

// TestDockerRunUndoesHalfMadeContainer: when a step after the create fails
// (here: connecting to a network that does not exist), Run removes the
// container it created.
func TestDockerRunUndoesHalfMadeContainer(t *testing.T) {
	d := dockerConnect(t)
	dockerBuildSleeper(t, d)
	ctx := dockerTestCtx(t, time.Minute)
	project := dockertest.NewScope(t, d.cli).Prefix
	netA := diff.NetworkName(project)
	name := project + "-web-00000000-1"
	if err := d.EnsureNetwork(ctx, netA); err != nil {
		t.Fatal(err)
	}
	_, err := d.Run(ctx, apply.ContainerConfig{
		Name:   name,
		Spec:   diff.Spec{Image: dockerTestImage, Networks: []string{netA, netA + "-missing"}, RestartPolicy: "no"},
		Labels: map[string]string{apply.LabelManaged: "true", apply.LabelProject: project, apply.LabelService: "web"},
	})
	if err == nil {
		t.Fatal("Run with a missing second network succeeded")
	}
	if !strings.Contains(err.Error(), netA+"-missing") || !strings.Contains(err.Error(), name) {
		t.Errorf("error %q should name the container and the network", err)
	}
	t.Logf("Run error: %v", err)
	if _, err := d.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("container %s after the failed Run: inspect error %v; want not found", name, err)
	}

	// A create failure (no such image locally) leaves nothing either.
	_, err = d.Run(ctx, apply.ContainerConfig{Name: name, Spec: diff.Spec{Image: "orca-test/does-not-exist:0", Networks: []string{netA}}})
	if err == nil || !strings.Contains(err.Error(), "create container "+name) {
		t.Errorf("Run of a missing image: %v; want a create error", err)
	}
}

func TestDockerEnsureNetworkConcurrent(t *testing.T) {
	d := dockerConnect(t)
	ctx := dockerTestCtx(t, time.Minute)
	name := diff.NetworkName(dockertest.NewScope(t, d.cli).Prefix)
	errs := make(chan error, 4)
	for range cap(errs) {
		go func() { errs <- d.EnsureNetwork(ctx, name) }()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Errorf("EnsureNetwork: %v", err)
		}
	}
	nets, err := d.networksNamed(ctx, name)
	if err != nil || len(nets) != 1 {
		t.Errorf("networks named %s after concurrent EnsureNetwork: %d, %v; want exactly 1", name, len(nets), err)
	}
}

// TestDockerEnsureNetworkAcrossProcesses: several engines (as several
// orca-sync processes on one Docker host, each with its own lock) ensure one
// network at once; when EnsureNetwork returns, the name matches exactly one
// network, so a container can attach by it at once.
func TestDockerEnsureNetworkAcrossProcesses(t *testing.T) {
	first := dockerConnect(t)
	ctx := dockerTestCtx(t, time.Minute)
	name := diff.NetworkName(dockertest.NewScope(t, first.cli).Prefix)
	engines := []*Engine{first, dockerConnect(t), dockerConnect(t), dockerConnect(t)}
	errs := make(chan error, len(engines))
	for _, d := range engines {
		go func() {
			if err := d.EnsureNetwork(ctx, name); err != nil {
				errs <- err
				return
			}
			nets, err := d.networksNamed(ctx, name)
			if err == nil && len(nets) != 1 {
				err = fmt.Errorf("%d networks named %s when EnsureNetwork returned", len(nets), name)
			}
			errs <- err
		}()
	}
	for range engines {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestDockerImageIDMissing(t *testing.T) {
	d := dockerConnect(t)
	ctx := dockerTestCtx(t, 30*time.Second)
	ref := "orca-test/" + dockertest.Name("missing") + ":1"
	_, err := d.ImageID(ctx, ref)
	if !errors.Is(err, apply.ErrImageNotFound) {
		t.Fatalf("ImageID(%s) = %v; want apply.ErrImageNotFound", ref, err)
	}
	if !strings.Contains(err.Error(), ref) {
		t.Errorf("error %q does not name the image", err)
	}
}

func TestDockerPullUnreachableRegistry(t *testing.T) {
	d := dockerConnect(t)
	ctx := dockerTestCtx(t, time.Minute)
	const ref = "127.0.0.1:1/nope:1"
	err := d.Pull(ctx, ref, registryauth.Auth{Registry: "127.0.0.1:1"})
	if err == nil {
		t.Fatalf("Pull(%s) succeeded", ref)
	}
	t.Logf("Pull error: %v", err)
	if !strings.Contains(err.Error(), "pull "+ref) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error %q should say what failed", err)
	}
	if errors.Is(err, apply.ErrImageNotFound) {
		t.Errorf("a pull failure is not apply.ErrImageNotFound")
	}
	var pe *apply.PullError
	if !errors.As(err, &pe) || pe.Kind != apply.PullUnreachable || !strings.Contains(err.Error(), "registry 127.0.0.1:1 cannot be reached") {
		t.Errorf("error %q: want an *apply.PullError of kind %q naming the registry", err, apply.PullUnreachable)
	}
}

// TestDockerNewUnreachable needs no engine: it points at a dead socket.
func TestDockerNewUnreachable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no.sock"))
	_, err := New(t.Context(), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "cannot reach the Docker engine") {
		t.Fatalf("New with a dead socket: %v; want \"cannot reach the Docker engine ...\"", err)
	}
	t.Logf("New error: %v", err)
}

// Unit tests of the pure helpers; they run with -short too.

func TestDockerNameIndex(t *testing.T) {
	for name, want := range map[string]int{
		"shop-web-0123abcd-1":  1,
		"shop-web-0123abcd-12": 12,
		"a-b-c-x":              0,
		"noindex":              0,
		"shop-web-0123abcd-":   0,
		"shop-web-0123abcd-+1": 0,
	} {
		if got := dockerNameIndex(name); got != want {
			t.Errorf("dockerNameIndex(%q) = %d; want %d", name, got, want)
		}
	}
}

func TestDockerSummaryHealth(t *testing.T) {
	for _, tc := range []struct {
		s    container.Summary
		want string
	}{
		{container.Summary{Status: "Up 3 minutes (healthy)"}, "healthy"},
		{container.Summary{Status: "Up 3 minutes (unhealthy)"}, "unhealthy"},
		{container.Summary{Status: "Up 2 seconds (health: starting)"}, "starting"},
		{container.Summary{Status: "Up 3 minutes"}, ""},
		{container.Summary{Status: "Up", Health: &container.HealthSummary{Status: container.Unhealthy}}, "unhealthy"},
		{container.Summary{Status: "Up", Health: &container.HealthSummary{Status: container.NoHealthcheck}}, ""},
	} {
		if got := dockerSummaryHealth(tc.s); got != tc.want {
			t.Errorf("health of %+v = %q; want %q", tc.s, got, tc.want)
		}
	}
}

// TestDockerCreateOnFirstNetwork: the create request attaches the container
// to its first network, with its aliases, so a one-network service costs
// one create call and no connect; API 1.41 takes one endpoint at create, so
// the others are connected after it (connectAndStart).
func TestDockerCreateOnFirstNetwork(t *testing.T) {
	spec := diff.Spec{Image: "app:v1", Networks: []string{"orca-p", "orca-internal"}, Aliases: []string{"web", "www"}}
	opts, err := createOptions(apply.ContainerConfig{Name: "p-web-1", Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	if opts.HostConfig.NetworkMode != "orca-p" {
		t.Errorf("network mode %q; want orca-p", opts.HostConfig.NetworkMode)
	}
	eps := opts.NetworkingConfig.EndpointsConfig
	if len(eps) != 1 || eps["orca-p"] == nil || !slices.Equal(eps["orca-p"].Aliases, []string{"web", "www"}) {
		t.Errorf("endpoints at create %+v; want orca-p alone, with aliases web, www", eps)
	}
}

func TestDockerRestartPolicy(t *testing.T) {
	for in, want := range map[string]container.RestartPolicy{
		"":               {Name: "no"},
		"no":             {Name: "no"},
		"always":         {Name: "always"},
		"unless-stopped": {Name: "unless-stopped"},
		"on-failure":     {Name: "on-failure"},
		"on-failure:5":   {Name: "on-failure", MaximumRetryCount: 5},
	} {
		got, err := dockerRestartPolicy(in)
		if err != nil || got != want {
			t.Errorf("dockerRestartPolicy(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"sometimes", "on-failure:x", "on-failure:-1", "always:3"} {
		if _, err := dockerRestartPolicy(bad); err == nil {
			t.Errorf("dockerRestartPolicy(%q) accepted", bad)
		}
	}
}

func TestDockerPorts(t *testing.T) {
	exposed, bindings, err := dockerPorts([]config.PortBinding{
		{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
		{HostIP: "127.0.0.1", HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
		{HostIP: "127.0.0.1", HostPort: 5354, ContainerPort: 53, Protocol: "udp"},
		{ContainerPort: 9000},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(exposed) != 3 || len(bindings) != 3 {
		t.Fatalf("exposed %v bindings %v", exposed, bindings)
	}
	for p, bs := range bindings {
		switch p.String() {
		case "80/tcp":
			if len(bs) != 1 || bs[0].HostPort != "8080" || bs[0].HostIP.IsValid() {
				t.Errorf("80/tcp: %+v", bs)
			}
		case "53/udp":
			if len(bs) != 2 || bs[0].HostIP.String() != "127.0.0.1" || bs[1].HostPort != "5354" {
				t.Errorf("53/udp: %+v", bs)
			}
		case "9000/tcp":
			if len(bs) != 1 || bs[0].HostPort != "" {
				t.Errorf("9000/tcp: %+v", bs)
			}
		default:
			t.Errorf("unexpected port %s", p)
		}
	}
	if _, _, err := dockerPorts([]config.PortBinding{{HostIP: "nope", HostPort: 1, ContainerPort: 1}}); err == nil {
		t.Error("a bad host IP was accepted")
	}
	if _, _, err := dockerPorts([]config.PortBinding{{ContainerPort: 70000}}); err == nil {
		t.Error("an out-of-range port was accepted")
	}
}

func TestDockerIsLayerID(t *testing.T) {
	if !dockerIsLayerID("a3ed95caeb02") || dockerIsLayerID("latest") || dockerIsLayerID("A3ED95CAEB02") {
		t.Error("dockerIsLayerID")
	}
}

// TestDockerPullProgress runs Pull against a fake engine (no Docker needed):
// progress is logged once per layer status, and an error in the stream is
// returned with its message.
func TestDockerPullProgress(t *testing.T) {
	var stream atomic.Value // the /images/create response body
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/images/create") {
			http.Error(w, "unexpected "+r.URL.Path, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, stream.Load().(string))
	}))
	defer srv.Close()
	cli, err := client.New(client.WithHost("tcp://"+strings.TrimPrefix(srv.URL, "http://")), client.WithAPIVersion("1.41"))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	var logs bytes.Buffer
	d := &Engine{cli: cli, log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}

	var b strings.Builder
	b.WriteString(`{"status":"Pulling from library/app","id":"1"}` + "\n")
	for _, layer := range []string{"a3ed95caeb02", "0123456789ab"} {
		b.WriteString(`{"status":"Pulling fs layer","progressDetail":{},"id":"` + layer + `"}` + "\n")
		for i := range 50 {
			fmt.Fprintf(&b, `{"status":"Downloading","progressDetail":{"current":%d,"total":5000},"progress":"[=>  ]","id":"%s"}`+"\n", i*100, layer)
		}
		b.WriteString(`{"status":"Pull complete","progressDetail":{},"id":"` + layer + `"}` + "\n")
	}
	b.WriteString(`{"status":"Digest: sha256:abc"}` + "\n" + `{"status":"Status: Downloaded newer image for app:1"}` + "\n")
	stream.Store(b.String())
	if err := d.Pull(t.Context(), "app:1", registryauth.Auth{}); err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if n := strings.Count(logs.String(), "\n"); n != 9 {
		t.Errorf("%d log lines; want 9 (3 image lines, 3 statuses for each of 2 layers):\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "Downloading"); n != 2 {
		t.Errorf("%d Downloading lines; want one per layer", n)
	}

	stream.Store(`{"status":"Pulling from library/app","id":"1"}` + "\n" +
		`{"errorDetail":{"message":"pull access denied for app, repository does not exist"},"error":"pull access denied for app, repository does not exist"}` + "\n")
	err = d.Pull(t.Context(), "app:1", registryauth.Auth{Registry: "docker.io"})
	if err == nil || !strings.Contains(err.Error(), "pull app:1: unauthorized at docker.io: add a [[registry]] entry for docker.io") ||
		!strings.HasSuffix(err.Error(), ": pull access denied for app, repository does not exist") {
		t.Errorf("Pull with an error in the stream: %v; want the registry, the fix and the engine's message", err)
	}
}
