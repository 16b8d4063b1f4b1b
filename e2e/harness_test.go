package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// docker is the engine client shared by every e2e test; nil in -short mode.
var docker *client.Client

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	start := time.Now()
	var err error
	docker, err = connectDocker()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e tests need a Docker engine: %v\n"+
			"set DOCKER_HOST or start dockerd; run `go test -short ./...` for unit tests only\n", err)
		os.Exit(1)
	}
	if err := buildTestImages(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building test images: %v\n", err)
		os.Exit(1)
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "e2e: docker API %s, test images ready in %v\n",
			docker.ClientVersion(), time.Since(start).Round(time.Millisecond))
	}
	code := m.Run()
	docker.Close()
	os.Exit(code)
}

func connectDocker() (*client.Client, error) {
	// API version negotiation is the default in moby/moby/client (it happens on
	// the first request; the Ping below forces it).
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("cannot reach %s: %w", cli.DaemonHost(), err)
	}
	return cli, nil
}

// requireE2E skips the test in -short mode. Every e2e test calls it first
// (newEnv does).
func requireE2E(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: -short")
	}
	if docker == nil {
		t.Fatal("e2e: no Docker client (TestMain did not run?)")
	}
}

// Env is one test's view of Docker: a unique prefix for everything it
// creates, and a cleanup that removes all of it.
type Env struct {
	// Prefix is "t" + 6 random [a-z0-9]. Projects are Prefix+name, so the
	// project network is "orca-"+Prefix+name.
	Prefix string
	Docker *client.Client
	t      testing.TB
}

// newEnv calls requireE2E, picks a fresh prefix and registers a cleanup that
// (also when the test fails) force-removes every orca-managed container whose
// orca.project starts with the prefix (and every container named <prefix>*),
// every network named orca-<prefix>*, and every volume named <prefix>*. On
// failure it first logs the tail of the logs of those containers.
func newEnv(t testing.TB) *Env {
	t.Helper()
	requireE2E(t)
	e := &Env{Prefix: randomPrefix(), Docker: docker, t: t}
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpLogs()
		}
		if err := e.cleanup(); err != nil {
			t.Errorf("e2e cleanup: %v", err)
		}
	})
	return e
}

func randomPrefix() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 6)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "t" + string(b)
}

// project returns the project name for name in this test: Prefix+name.
func (e *Env) project(name string) string { return e.Prefix + name }

func (e *Env) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// prefixContainers lists all (also stopped) containers of this env: managed
// ones whose orca.project starts with the prefix, and any container whose
// name starts with it (hand-made "out-of-band" ones included).
func (e *Env) prefixContainers(ctx context.Context) ([]container.Summary, error) {
	res, err := e.Docker.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, err
	}
	var out []container.Summary
	for _, c := range res.Items {
		managed := c.Labels["orca.managed"] == "true" && strings.HasPrefix(c.Labels["orca.project"], e.Prefix)
		named := slices.ContainsFunc(c.Names, func(n string) bool { return strings.HasPrefix(strings.TrimPrefix(n, "/"), e.Prefix) })
		if managed || named {
			out = append(out, c)
		}
	}
	return out, nil
}

// cleanup removes everything this env owns. It can run more than once. A
// failed sweep (say a container another process is still removing keeps a
// network busy) is retried a few times.
func (e *Env) cleanup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if err = e.sweep(ctx); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
	}
	return err
}

func (e *Env) sweep(ctx context.Context) error {
	var errs []error
	cs, err := e.prefixContainers(ctx)
	errs = append(errs, err)
	for _, c := range cs {
		_, err := e.Docker.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID[:12], err))
		}
	}
	nets, err := e.Docker.NetworkList(ctx, client.NetworkListOptions{})
	errs = append(errs, err)
	for _, n := range nets.Items {
		if strings.HasPrefix(n.Name, "orca-"+e.Prefix) {
			_, err := e.Docker.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
			if err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
			}
		}
	}
	vols, err := e.Docker.VolumeList(ctx, client.VolumeListOptions{})
	errs = append(errs, err)
	for _, v := range vols.Items {
		if strings.HasPrefix(v.Name, e.Prefix) {
			_, err := e.Docker.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true})
			if err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// leftovers names what cleanup would remove (containers, networks, volumes).
func (e *Env) leftovers() ([]string, error) {
	ctx, cancel := e.ctx()
	defer cancel()
	var out []string
	cs, err := e.prefixContainers(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		out = append(out, "container "+strings.Join(c.Names, ","))
	}
	nets, err := e.Docker.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		return nil, err
	}
	for _, n := range nets.Items {
		if strings.HasPrefix(n.Name, "orca-"+e.Prefix) {
			out = append(out, "network "+n.Name)
		}
	}
	vols, err := e.Docker.VolumeList(ctx, client.VolumeListOptions{})
	if err != nil {
		return nil, err
	}
	for _, v := range vols.Items {
		if strings.HasPrefix(v.Name, e.Prefix) {
			out = append(out, "volume "+v.Name)
		}
	}
	return out, nil
}

func (e *Env) dumpLogs() {
	ctx, cancel := e.ctx()
	defer cancel()
	cs, err := e.prefixContainers(ctx)
	if err != nil {
		e.t.Logf("e2e: listing containers for logs: %v", err)
		return
	}
	for _, c := range cs {
		rc, err := e.Docker.ContainerLogs(ctx, c.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "30"})
		if err != nil {
			e.t.Logf("e2e: logs of %v: %v", c.Names, err)
			continue
		}
		var buf strings.Builder
		_, _ = stdcopy.StdCopy(&buf, &buf, rc)
		rc.Close()
		e.t.Logf("e2e: container %v (%s, %s) last logs:\n%s", c.Names, c.State, c.Status, buf.String())
	}
}

// containers lists the managed containers (running or not) of project, and
// of service in it unless service is "". project is the full name (see
// Env.project). Sorted by name.
func (e *Env) containers(project, service string) ([]container.Summary, error) {
	ctx, cancel := e.ctx()
	defer cancel()
	f := make(client.Filters).Add("label", "orca.managed=true", "orca.project="+project)
	if service != "" {
		f.Add("label", "orca.service="+service)
	}
	res, err := e.Docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(res.Items, func(a, b container.Summary) int {
		return strings.Compare(strings.Join(a.Names, ","), strings.Join(b.Names, ","))
	})
	return res.Items, nil
}

// containerIP returns the IPv4 address of container id on network (by name).
func (e *Env) containerIP(id, network string) (string, error) {
	ctx, cancel := e.ctx()
	defer cancel()
	res, err := e.Docker.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return "", err
	}
	if res.Container.NetworkSettings == nil {
		return "", fmt.Errorf("container %s has no network settings", id)
	}
	ep, ok := res.Container.NetworkSettings.Networks[network]
	if !ok || ep == nil {
		return "", fmt.Errorf("container %s is not on network %s", id, network)
	}
	if !ep.IPAddress.IsValid() {
		return "", fmt.Errorf("container %s has no address on network %s (state %v)", id, network, res.Container.State.Status)
	}
	return ep.IPAddress.String(), nil
}

func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

var httpClient = &http.Client{
	Timeout: 3 * time.Second,
	// Tests look at redirects themselves.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
}

// httpGet GETs url with a 3 s timeout and no keep-alive; it returns the status
// and the body (at most 1 MiB).
func (e *Env) httpGet(url string) (int, string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), err
}

// waitFor polls cond every 100 ms until it returns true, and fails the test
// with cond's last message when timeout passes first.
func (e *Env) waitFor(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	waitFor(t, timeout, cond)
}

// waitFor is Env.waitFor for code without an Env.
func waitFor(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", timeout, msg)
		}
		<-tick.C
	}
}
