package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/internal/dockertest"
)

// appSpec describes a test-app container for Env.startApp: a stand-in for a
// container orca-sync would run, or one made "by hand" (Unmanaged).
type appSpec struct {
	Project   string            // full project name (Env.project(...)); required
	Service   string            // required
	Name      string            // default <project>-<service>-<random4>
	Image     string            // default imageV1
	Network   string            // joined, created if missing; default "orca-"+Project
	Aliases   []string          // DNS names on Network; default [Service]
	Env       []string          // KEY=VALUE
	Binds     []string          // "volume:/path" or "/host:/path"
	Labels    map[string]string // extra labels
	Unmanaged bool              // no orca.* labels (still cleaned up: the name has the prefix)
	HostPort  int               // publishes 127.0.0.1:HostPort to the app's port
}

// startApp creates and starts a container from s and returns its ID.
func (e *Env) startApp(t testing.TB, s appSpec) string {
	t.Helper()
	if s.Project == "" || s.Service == "" {
		t.Fatal("startApp: Project and Service are required")
	}
	if s.Image == "" {
		s.Image = imageV1
	}
	if s.Network == "" {
		s.Network = "orca-" + s.Project
	}
	if s.Aliases == nil {
		s.Aliases = []string{s.Service}
	}
	if s.Name == "" {
		s.Name = fmt.Sprintf("%s-%s-%s", s.Project, s.Service, dockertest.Name("")[:4])
	}
	labels := map[string]string{}
	if !s.Unmanaged {
		labels["orca.managed"] = "true"
		labels["orca.project"] = s.Project
		labels["orca.service"] = s.Service
	}
	for k, v := range s.Labels {
		labels[k] = v
	}
	e.ensureNetwork(t, s.Network)

	ctx, cancel := e.ctx()
	defer cancel()
	res, err := e.Docker.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:   s.Name,
		Image:  s.Image,
		Config: &container.Config{Env: s.Env, Labels: labels},
		HostConfig: &container.HostConfig{
			NetworkMode:  container.NetworkMode(s.Network),
			Binds:        s.Binds,
			PortBindings: hostPort(s.HostPort),
		},
		NetworkingConfig: &network.NetworkingConfig{
			EndpointsConfig: map[string]*network.EndpointSettings{s.Network: {Aliases: s.Aliases}},
		},
	})
	if err != nil {
		t.Fatalf("create %s: %v", s.Name, err)
	}
	if _, err := e.Docker.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start %s: %v", s.Name, err)
	}
	return res.ID
}

// ensureNetwork creates the bridge network name unless one exists, and
// returns its ID. (Against API < 1.44 the engine does not refuse duplicate
// network names, hence the look-up first.)
func (e *Env) ensureNetwork(t testing.TB, name string) string {
	t.Helper()
	ctx, cancel := e.ctx()
	defer cancel()
	nets, err := e.Docker.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", name)})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nets.Items {
		if n.Name == name { // the name filter also matches substrings
			return n.ID
		}
	}
	res, err := e.Docker.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge"})
	if err != nil {
		t.Fatalf("create network %s: %v", name, err)
	}
	return res.ID
}

// appURL waits (up to 20 s) until the test app in container id answers
// GET /healthz on network, and returns its base URL http://IP:8080.
func (e *Env) appURL(t testing.TB, id, network string) string {
	t.Helper()
	var base string
	e.waitFor(t, 20*time.Second, func() (bool, string) {
		ip, err := e.containerIP(id, network)
		if err != nil {
			return false, err.Error()
		}
		base = fmt.Sprintf("http://%s:%d", ip, testAppPort)
		code, body, err := e.httpGet(base + "/healthz")
		return err == nil && code == 200, fmt.Sprintf("GET %s/healthz: %d %q %v", base, code, body, err)
	})
	return base
}

// waitExit waits until container id is no longer running and returns its
// exit code.
func (e *Env) waitExit(t testing.TB, id string, timeout time.Duration) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	w := e.Docker.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case r := <-w.Result:
		return int(r.StatusCode)
	case err := <-w.Error:
		t.Fatalf("wait %s: %v", id, err)
	}
	return -1
}

// hostPort publishes 127.0.0.1:port to the test app's port (none for 0).
func hostPort(port int) network.PortMap {
	if port == 0 {
		return nil
	}
	p, _ := network.PortFrom(testAppPort, network.TCP)
	return network.PortMap{p: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(port)}}}
}
