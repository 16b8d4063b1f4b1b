package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/reconcile"
)

// liveWeb has readiness on / (always passes) and liveness on /healthz, so
// a container can start fine and then fail liveness; healthzFail is the
// app's HEALTHZ_FAIL ("" leaves it unset).
func liveWeb(healthzFail string) svc {
	s := svc{Name: "web", Image: imageV1, Port: 8080, Keys: []string{`restart_policy = "no"`},
		Readiness: probe{Path: "/", IntervalSecs: 1},
		Liveness:  probe{Path: "/healthz", IntervalSecs: 1, FailureThreshold: 2},
		Deploy:    deploy{TimeoutSecs: 30}}
	if healthzFail != "" {
		s.Env = map[string]string{"HEALTHZ_FAIL": healthzFail}
	}
	return s
}

func (e *Env) onlyWeb(t *testing.T, project string) (container.Summary, bool) {
	cs, err := e.containers(project, "web")
	if err != nil || len(cs) != 1 || cs[0].State != "running" {
		return container.Summary{}, false
	}
	return cs[0], true
}

// TestSelfHealKilledContainer: a container killed with SIGKILL (restart
// policy "no", so Docker does not restart it) is replaced through the event
// stream within 5 s, with the tick at 60 s.
func TestSelfHealKilledContainer(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("kill")
	d, _ := serveRepo(t, env, map[string]string{
		"cluster.toml":                    clusterInterval(60),
		"services/" + p + "/service.toml": driftWeb(1, `restart_policy = "no"`).String(),
	}, nil)
	old := d.waitSynced(t, p, 1)[0]
	ctx, cancel := env.ctx()
	defer cancel()
	killed := time.Now()
	if _, err := env.Docker.ContainerKill(ctx, old.ID, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatal(err)
	}
	env.waitFor(t, 5*time.Second, func() (bool, string) {
		c, ok := env.onlyWeb(t, p)
		return ok && c.ID != old.ID, "waiting for a new running container"
	})
	t.Logf("FIGURE SIGKILL -> replacement running: %v (tick 60 s)", time.Since(killed).Round(time.Millisecond))
}

// TestSelfHealLiveness: a container whose liveness starts failing after boot
// is replaced after failure_threshold probes; a service whose every new
// container fails liveness is marked Degraded after the flap limit, is not
// replaced any more, and recovers when a fixed spec is committed.
func TestSelfHealLiveness(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("live")
	file := "services/" + p + "/service.toml"
	d, repo := serveRepo(t, env, map[string]string{
		"cluster.toml": clusterInterval(3600),
		file:           liveWeb("").String(),
	}, nil)
	old := d.waitSynced(t, p, 1)[0]
	ip, err := env.containerIP(old.ID, "orca-"+p)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+ip+":8080/healthz/fail", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	failing := time.Now()
	env.waitFor(t, 20*time.Second, func() (bool, string) {
		c, ok := env.onlyWeb(t, p)
		return ok && c.ID != old.ID, "waiting for the failing container to be replaced"
	})
	t.Logf("FIGURE liveness failing -> replaced (interval 1 s, threshold 2): %v", time.Since(failing).Round(time.Millisecond))
	// The replacement counts as ready once serve's readiness probe passed.
	env.waitFor(t, 30*time.Second, func() (bool, string) {
		s := serviceOf(d.status(), p, "web")
		return s.Health == reconcile.HealthHealthy && s.Ready == 1, fmt.Sprintf("after the replacement: %+v", s)
	})

	// Every new container fails liveness: Degraded after the flap limit.
	repo.WriteFile(file, liveWeb("1").String())
	repo.Commit("healthz fails")
	repo.Push()
	d.call(http.MethodPost, "/api/v1/sync")
	var st reconcile.ServiceStatus
	env.waitFor(t, 120*time.Second, func() (bool, string) {
		st = serviceOf(d.status(), p, "web")
		return st.Health == reconcile.HealthDegraded && strings.Contains(st.Reason, "replacements"), fmt.Sprintf("status %+v", st)
	})
	if !strings.Contains(st.ProbeError, "status 500") {
		t.Errorf("degraded status: %+v, want the flap reason and the probe error", st)
	}
	held, _ := env.containers(p, "web")
	// A replacement that does not happen has no event to wait for: the
	// liveness probe keeps failing every second, and three times what a
	// replacement took above passes without one.
	time.Sleep(6 * time.Second)
	if now, _ := env.containers(p, "web"); describe(now) != describe(held) {
		t.Fatalf("a Degraded service was replaced again:\n before %s\n after  %s", describe(held), describe(now))
	}
	liveness := 0
	for _, r := range d.history() {
		if r.Trigger == "liveness" {
			liveness++
		}
	}
	if liveness > 6 {
		t.Errorf("%d liveness replacements, want at most the flap limit", liveness)
	}

	// A fixed commit: the service is replaced and Healthy again.
	repo.WriteFile(file, liveWeb("0").String())
	repo.Commit("healthz fixed")
	repo.Push()
	d.call(http.MethodPost, "/api/v1/sync")
	env.waitFor(t, 60*time.Second, func() (bool, string) {
		st = serviceOf(d.status(), p, "web")
		return st.Health == reconcile.HealthHealthy && st.Sync == reconcile.SyncSynced && st.Ready == 1, fmt.Sprintf("status %+v", st)
	})
	stable, _ := env.containers(p, "web")
	time.Sleep(4 * time.Second) // no replacement: nothing to wait for (see above)
	if now, _ := env.containers(p, "web"); describe(now) != describe(stable) {
		t.Errorf("the fixed service is still being replaced:\n %s\n %s", describe(stable), describe(now))
	}
}

// cutProxy is a unix socket in front of a Docker endpoint that the test can
// close and reopen: the Docker API going away and coming back.
type cutProxy struct {
	t      *testing.T
	path   string
	target string // unix socket path

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func newCutProxy(t *testing.T, host string) *cutProxy {
	u, err := url.Parse(host)
	if err != nil || u.Scheme != "unix" {
		t.Fatalf("cut proxy: want a unix:// host, have %q", host)
	}
	dir, err := os.MkdirTemp("", "orca-cut-")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutProxy{t: t, path: filepath.Join(dir, "d.sock"), target: u.Path, conns: map[net.Conn]bool{}}
	c.open()
	t.Cleanup(func() { c.cut(); os.RemoveAll(dir) })
	return c
}

func (c *cutProxy) host() string { return "unix://" + c.path }

func (c *cutProxy) open() {
	ln, err := net.Listen("unix", c.path)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.ln = ln
	c.mu.Unlock()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go c.pipe(conn)
		}
	}()
}

func (c *cutProxy) pipe(conn net.Conn) {
	up, err := net.Dial("unix", c.target)
	if err != nil {
		conn.Close()
		return
	}
	c.mu.Lock()
	c.conns[conn], c.conns[up] = true, true
	c.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, conn); done <- struct{}{} }()
	go func() { io.Copy(conn, up); done <- struct{}{} }()
	<-done
	conn.Close()
	up.Close()
	c.mu.Lock()
	delete(c.conns, conn)
	delete(c.conns, up)
	c.mu.Unlock()
}

// cut closes the socket and every connection through it.
func (c *cutProxy) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ln != nil {
		c.ln.Close()
		c.ln = nil
	}
	for conn := range c.conns {
		conn.Close()
	}
	os.Remove(c.path)
}

// TestSelfHealDockerAway: the Docker API goes away (serve's socket is
// closed): serve keeps running and reports Unknown; when it comes back the
// event stream reconnects and a container stopped meanwhile is repaired.
func TestSelfHealDockerAway(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("away")
	var cut *cutProxy
	d, _ := serveRepo(t, env, map[string]string{
		"cluster.toml":                    clusterInterval(3600),
		"services/" + p + "/service.toml": driftWeb(1, `restart_policy = "no"`).String(),
	}, func(host string) string {
		cut = newCutProxy(t, host)
		return cut.host()
	})
	old := d.waitSynced(t, p, 1)[0]
	cut.cut()
	env.waitFor(t, 20*time.Second, func() (bool, string) {
		s := serviceOf(d.status(), p, "web")
		return s.Health == reconcile.HealthUnknown, fmt.Sprintf("status %+v", s)
	})
	if code, body := d.call(http.MethodGet, "/api/v1/drift"); code != 200 || !strings.Contains(string(body), "Docker") {
		t.Errorf("drift without Docker: %d %s", code, body)
	}
	ctx, cancel := env.ctx()
	defer cancel()
	if _, err := env.Docker.ContainerKill(ctx, old.ID, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatal(err)
	}
	// Serve staying up while Docker is away has no event to wait for: it
	// gets three seconds of retries against a closed socket.
	time.Sleep(3 * time.Second)
	select {
	case <-d.done:
		t.Fatalf("serve exited while Docker was away:\n%s", d.logs.String())
	default:
	}
	cut.open()
	env.waitFor(t, 60*time.Second, func() (bool, string) {
		c, ok := env.onlyWeb(t, p)
		s := serviceOf(d.status(), p, "web")
		return ok && c.ID != old.ID && s.Health == reconcile.HealthHealthy, fmt.Sprintf("status %+v", s)
	})
	// The event stream is back: a crash is repaired within seconds again.
	again := d.waitSynced(t, p, 1)[0]
	if _, err := env.Docker.ContainerKill(ctx, again.ID, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatal(err)
	}
	env.waitFor(t, 10*time.Second, func() (bool, string) {
		c, ok := env.onlyWeb(t, p)
		return ok && c.ID != again.ID, "waiting for the replacement after the reconnect"
	})
}

// TestSelfHealInitialDelay: a slow starter is not killed mid-boot — its
// liveness probe (failing from the start here) waits initial_delay_secs
// before the first check, then failure_threshold = 1 replaces it.
func TestSelfHealInitialDelay(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("delay")
	slow := liveWeb("1")
	slow.Liveness.FailureThreshold, slow.Liveness.InitialDelaySecs = 1, 5
	toml := slow.String()
	d, _ := serveRepo(t, env, map[string]string{
		"cluster.toml":                    clusterInterval(3600),
		"services/" + p + "/service.toml": toml,
	}, nil)
	first := d.waitSynced(t, p, 1)[0]
	synced := time.Now()
	for time.Since(synced) < 3500*time.Millisecond {
		if c, ok := env.onlyWeb(t, p); !ok || c.ID != first.ID {
			t.Fatalf("replaced %v after it was ready, before initial_delay_secs = 5", time.Since(synced).Round(time.Millisecond))
		}
		time.Sleep(200 * time.Millisecond)
	}
	env.waitFor(t, 15*time.Second, func() (bool, string) {
		c, ok := env.onlyWeb(t, p)
		return ok && c.ID != first.ID, "waiting for the replacement once the delay is over"
	})
	t.Logf("FIGURE failing from boot, initial_delay_secs 5: replaced %v after ready", time.Since(synced).Round(time.Millisecond))
}
