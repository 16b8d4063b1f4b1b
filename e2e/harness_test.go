package e2e

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/internal/dockertest"
)

// docker is the engine client shared by every e2e test; nil in -short mode.
var docker *client.Client

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	start := time.Now()
	// The Swarm tests (e2e/swarm) make the engine a swarm: never beside them.
	unlock, err := dockertest.LockEngine()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.Exit(1)
	}
	docker, err = dockertest.Connect(context.Background())
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e tests need a Docker engine: %v\n", err)
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
	unlock()
	os.Exit(code)
}

// requireE2E skips the test in -short mode. Every e2e test calls it first
// (newEnv does).
func requireE2E(t testing.TB) {
	t.Helper()
	dockertest.Require(t)
	if docker == nil {
		t.Fatal("e2e: no Docker client (TestMain did not run?)")
	}
}

// Env is one test's view of Docker: a dockertest.Scope (a unique Prefix for
// everything it creates, and a cleanup that removes all of it) and the e2e
// helpers on it. Projects are Prefix+name, so the project network is
// "orca-"+Prefix+name.
type Env struct {
	*dockertest.Scope
	t testing.TB
}

// newEnv calls requireE2E and opens a new scope: also when the test fails,
// its cleanup force-removes every orca-managed container whose orca.project
// starts with the prefix (and every container named <prefix>*), every
// network named orca-<prefix>*, and every volume named <prefix>*. On failure
// it first logs the tail of the logs of those containers.
func newEnv(t testing.TB) *Env {
	t.Helper()
	requireE2E(t)
	return &Env{Scope: dockertest.NewScope(t, docker), t: t}
}

// project returns the project name for name in this test: Prefix+name.
func (e *Env) project(name string) string { return e.Prefix + name }

func (e *Env) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// leftovers names what cleanup would remove (containers, networks, volumes).
func (e *Env) leftovers() ([]string, error) {
	ctx, cancel := e.ctx()
	defer cancel()
	return e.Leftovers(ctx)
}

// containers lists the managed replica containers (running or not; not the
// hook and job ones) of project, and
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
	// The replicas only: hook and job containers are no part of a service's
	// set (oneOffs lists them).
	res.Items = slices.DeleteFunc(res.Items, func(c container.Summary) bool {
		return c.Labels["orca.role"] == "hook" || c.Labels["orca.role"] == "job"
	})
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

func isNotFound(err error) bool { return dockertest.IsNotFound(err) }

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
