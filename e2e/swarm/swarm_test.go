package swarm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/api/wire"
	"github.com/orca-sync/orca-sync/internal/dockertest"
	"github.com/orca-sync/orca-sync/internal/gittest"
	"github.com/orca-sync/orca-sync/state"
)

const gitUser, gitPass = "deploy", "s3cret-git-password"

// svc writes one [[service]] of the test app: a readiness probe in the
// exec form (the task's healthcheck), a second's shutdown delay so that a
// stopping task still answers while the proxy drops it.
func svc(name, image string, replicas int, domain string) string {
	s := fmt.Sprintf("[[service]]\nname = %q\nimage = %q\nreplicas = %d\nport = 8080\nstop_grace_secs = 5\n", name, image, replicas)
	if domain != "" {
		s += fmt.Sprintf("domains = [%q]\n", domain)
	}
	return s + `env = { SHUTDOWN_DELAY_MS = "1500" }
[service.readiness]
type = "exec"
command = ["/app", "healthcheck"]
interval_secs = 1
timeout_secs = 2
[service.deploy]
strategy = "rolling"
max_surge = 1
min_ready_secs = 1
timeout_secs = 60
`
}

type env struct {
	t      testing.TB
	repo   *gittest.Repo
	api    string
	proxy  string
	data   string
	logs   *bytes.Buffer
	mu     sync.Mutex
	events []string
	sink   string
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (e *env) cluster() string {
	return fmt.Sprintf("[cluster]\nengine = \"swarm\"\n[proxy]\nenabled = true\n[acme]\ntls = \"off\"\n[[notify]]\ntype = \"webhook\"\nurl = %q\n", e.sink)
}

func (e *env) push(msg string, services ...string) string {
	e.repo.WriteFile("cluster.toml", e.cluster())
	e.repo.WriteFile("services/web/service.toml", strings.Join(services, "\n"))
	return e.repo.CommitPush(msg)
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func startServe(t testing.TB, e *env, url string, extra ...string) {
	e.api, e.proxy, e.data = freeAddr(t), freeAddr(t), t.TempDir()
	cmd := exec.Command(binary, append([]string{"serve", "--repo", url, "--data-dir", e.data, "--listen", e.api, "--http-addr", e.proxy}, extra...)...)
	cmd.Env = append(os.Environ(), "ORCA_SYNC_GIT_USERNAME="+gitUser, "ORCA_SYNC_GIT_PASSWORD="+gitPass)
	logs := &lockedBuf{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("serve logs:\n%s", logs.String())
		}
	})
	waitFor(t, 60*time.Second, func() (bool, string) {
		code, _, err := get("http://"+e.api+"/api/v1/health", "", "")
		return err == nil && code == 200, fmt.Sprintf("health %d %v\n%s", code, err, logs.String())
	})
}

func get(url, host, token string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if host != "" {
		req.Host = host
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func (e *env) token() string {
	b, err := os.ReadFile(e.data + "/admin.token")
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (e *env) status() wire.Status {
	code, body, err := get("http://"+e.api+"/api/v1/status", "", e.token())
	var st wire.Status
	if err != nil || code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		e.t.Fatalf("status: %d %v %s", code, err, body)
	}
	return st
}

func (e *env) history() []state.SyncRecord {
	code, body, err := get("http://"+e.api+"/api/v1/history?limit=50", "", e.token())
	var recs []state.SyncRecord
	if err != nil || code != 200 || json.Unmarshal([]byte(body), &recs) != nil {
		e.t.Fatalf("history: %d %v %s", code, err, body)
	}
	return recs
}

// sync asks for a sync and waits until one that started after the ask
// ended; it returns that status.
func (e *env) sync() wire.Status {
	e.t.Helper()
	asked := time.Now()
	req, _ := http.NewRequest(http.MethodPost, "http://"+e.api+"/api/v1/sync", nil)
	req.Header.Set("Authorization", "Bearer "+e.token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		e.t.Fatalf("sync: %v %v", resp, err)
	}
	resp.Body.Close()
	var st wire.Status
	waitFor(e.t, 3*time.Minute, func() (bool, string) {
		st = e.status()
		return st.LastSync != nil && st.LastSync.Started.After(asked) && !st.Syncing, fmt.Sprintf("last sync %+v", st.LastSync)
	})
	return st
}

func service(st wire.Status, name string) wire.ServiceStatus { return serviceIn(st, "web", name) }

func serviceIn(st wire.Status, project, name string) wire.ServiceStatus {
	for _, s := range st.Services {
		if s.Project == project && s.Name == name {
			return s
		}
	}
	return wire.ServiceStatus{}
}

func waitFor(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", timeout, why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// runningTasks counts the running tasks of a Swarm service.
func runningTasks(t testing.TB, name string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := docker.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", name).Add("desired-state", "running")})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range res.Items {
		if task.Status.State == "running" {
			n++
		}
	}
	return n
}

func serviceExists(t testing.TB, name string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := docker.ServiceInspect(ctx, name, client.ServiceInspectOptions{})
	if err != nil && !dockertest.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// load sends GET / to host through the proxy from 4 connections, ~200 req/s.
type load struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	total    atomic.Int64
	mu       sync.Mutex
	bodies   map[string]int
	failures []string
}

func startLoad(addr, host string) *load {
	l := &load{stop: make(chan struct{}), bodies: map[string]int{}}
	for range 4 {
		l.wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			for {
				select {
				case <-l.stop:
					return
				case <-time.After(15 * time.Millisecond): // ~200 req/s on 4 connections
				}
				code, body, err := getWith(c, "http://"+addr+"/", host)
				l.total.Add(1)
				l.mu.Lock()
				if err != nil || code != 200 {
					l.failures = append(l.failures, fmt.Sprintf("%d %q %v", code, body, err))
				} else {
					l.bodies[body]++
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

func getWith(c *http.Client, url, host string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func (l *load) finish() (int64, map[string]int, []string) {
	close(l.stop)
	l.wg.Wait()
	return l.total.Load(), l.bodies, l.failures
}

// rate is requests per second since start.
func rate(total int64, start time.Time) float64 { return float64(total) / time.Since(start).Seconds() }

func (e *env) answers(host, want string) {
	e.t.Helper()
	waitFor(e.t, 90*time.Second, func() (bool, string) {
		code, body, err := get("http://"+e.proxy+"/", host, "")
		return err == nil && code == 200 && body == want, fmt.Sprintf("%s: %d %q %v", host, code, body, err)
	})
}

func (e *env) sawEvent(kind string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range e.events {
		if k == kind {
			return true
		}
	}
	return false
}

// TestSwarmEngine drives `orca-sync serve` with engine = "swarm" on the
// single-node swarm TestMain made: deploy, a rolling update under load
// through the proxy, a bad image Swarm rolls back, a revert, drift by hand,
// prune and the prune guard.
func TestSwarmEngine(t *testing.T) {
	dockertest.Require(t)
	e := &env{t: t}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			Kind string `json:"kind"`
		}
		json.NewDecoder(r.Body).Decode(&ev)
		e.mu.Lock()
		e.events = append(e.events, ev.Kind)
		e.mu.Unlock()
	}))
	t.Cleanup(sink.Close)
	e.sink = sink.URL
	repo, srv := gittest.Served(t, "infra.git", gitUser, gitPass)
	e.repo = repo
	a1, b1, c1 := svc("a", imageV1, 2, "a.test"), svc("b", imageV1, 2, "b.test"), svc("c", imageV1, 1, "")
	e.push("deploy a, b and c", a1, b1, c1)
	startServe(t, e, srv.URL("infra.git"))

	t.Run("deploy", func(t *testing.T) {
		e.answers("a.test", "v1")
		e.answers("b.test", "v1")
		waitFor(t, 60*time.Second, func() (bool, string) {
			st := e.status()
			ok := true
			for _, n := range []string{"a", "b", "c"} {
				s := service(st, n)
				ok = ok && s.Sync == wire.SyncSynced && s.Ready == s.Replicas && s.Replicas > 0
			}
			return ok, fmt.Sprintf("%+v", st.Services)
		})
		if n := runningTasks(t, "web_a"); n != 2 {
			t.Fatalf("web_a runs %d tasks, want 2", n)
		}
	})

	a2 := svc("a", imageV2, 2, "a.test")
	t.Run("rolling update loses no request", func(t *testing.T) {
		started := time.Now()
		l := startLoad(e.proxy, "a.test")
		e.push("a to v2", a2, b1, c1)
		st := e.sync()
		e.answers("a.test", "v2")
		waitFor(t, 30*time.Second, func() (bool, string) { n := runningTasks(t, "web_a"); return n == 2, fmt.Sprint(n, " tasks") })
		total, bodies, failures := l.finish()
		t.Logf("%d requests through the proxy during the rolling update, %.0f req/s, %d failed", total, rate(total, started), len(failures))
		if len(failures) > 0 {
			t.Fatalf("%d of %d requests failed during the rolling update, first: %s", len(failures), total, failures[0])
		}
		if bodies["v1"] == 0 || bodies["v2"] == 0 {
			t.Fatalf("answers %v: want both v1 and v2 seen", bodies)
		}
		if r := st.LastSync.Result; r != "succeeded" {
			t.Fatalf("sync %s: %s", r, st.LastSync.Error)
		}
	})

	var bad string
	t.Run("bad image is rolled back and Failed", func(t *testing.T) {
		l := startLoad(e.proxy, "a.test")
		bad = e.push("a to a missing image", svc("a", imageMissing, 2, "a.test"), b1, c1)
		st := e.sync()
		total, bodies, failures := l.finish()
		if len(failures) > 0 || bodies["v2"] == 0 {
			t.Fatalf("the old tasks did not serve throughout: %d of %d failed (%v), answers %v", len(failures), total, failures, bodies)
		}
		s := service(st, "a")
		if s.Sync != wire.SyncFailed || s.Reason == "" {
			t.Fatalf("service a: %+v, want Failed with a reason", s)
		}
		// An event may trigger one more sync after it: look for the record.
		failed := false
		for _, rec := range e.history() {
			failed = failed || rec.Commit == bad && rec.Result == "failed" && strings.Contains(rec.Error, "rolled the update back")
		}
		if !failed {
			t.Fatalf("history %+v: want a failed record of %s naming Swarm's rollback", e.history(), bad)
		}
		waitFor(t, 20*time.Second, func() (bool, string) { return e.sawEvent("rollout_failed"), fmt.Sprint(e.events) })
		e.answers("a.test", "v2")
	})

	t.Run("revert of the failed change is a no-op", func(t *testing.T) {
		e.repo.Revert(bad)
		e.repo.Push()
		st := e.sync()
		if st.LastSync.Result != "succeeded" || service(st, "a").Sync != wire.SyncSynced {
			t.Fatalf("after the revert: %s %q, a %+v", st.LastSync.Result, st.LastSync.Error, service(st, "a"))
		}
		for _, r := range st.LastSync.Services {
			if r.Service == "a" {
				t.Fatalf("the revert changed a: %+v", r)
			}
		}
	})

	t.Run("scale by hand is drift, corrected", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cur, err := docker.ServiceInspect(ctx, "web_b", client.ServiceInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		spec := cur.Service.Spec
		four := uint64(4)
		spec.Mode.Replicated.Replicas = &four
		if _, err := docker.ServiceUpdate(ctx, cur.Service.ID, client.ServiceUpdateOptions{Version: cur.Service.Version, Spec: spec}); err != nil {
			t.Fatal(err)
		}
		// The task poll sees the new tasks and syncs at once; the explicit
		// sync makes the test independent of that.
		e.sync()
		waitFor(t, 60*time.Second, func() (bool, string) {
			cur, err := docker.ServiceInspect(ctx, "web_b", client.ServiceInspectOptions{})
			if err != nil {
				return false, err.Error()
			}
			n, want := runningTasks(t, "web_b"), *cur.Service.Spec.Mode.Replicated.Replicas
			return n == 2 && want == 2, fmt.Sprintf("%d tasks, replicas %d", n, want)
		})
		scaled := false
		for _, rec := range e.history() {
			for _, r := range rec.Services {
				// A scale, or a heal while the extra tasks still start.
				scaled = scaled || r.Service == "b" && r.Error == "" && strings.Contains(strings.Join(r.Repaired, " "), "replicas")
			}
		}
		if !scaled {
			t.Fatalf("no sync in history scaled b back: %+v", e.history())
		}
	})

	t.Run("service update by hand is drift, corrected", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cur, err := docker.ServiceInspect(ctx, "web_b", client.ServiceInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var before uint64
		for _, rec := range e.history() {
			before = max(before, rec.ID)
		}
		spec := cur.Service.Spec
		spec.TaskTemplate.ContainerSpec.Env = append(spec.TaskTemplate.ContainerSpec.Env, "BY_HAND=1")
		if _, err := docker.ServiceUpdate(ctx, cur.Service.ID, client.ServiceUpdateOptions{Version: cur.Service.Version, Spec: spec}); err != nil {
			t.Fatal(err)
		}
		e.sync()
		waitFor(t, 60*time.Second, func() (bool, string) {
			cur, err := docker.ServiceInspect(ctx, "web_b", client.ServiceInspectOptions{})
			if err != nil {
				return false, err.Error()
			}
			for _, kv := range cur.Service.Spec.TaskTemplate.ContainerSpec.Env {
				if kv == "BY_HAND=1" {
					return false, "web_b still has BY_HAND=1"
				}
			}
			return runningTasks(t, "web_b") == 2, "tasks"
		})
		repaired := false
		for _, rec := range e.history() {
			for _, r := range rec.Services {
				// Found as the changed env, or, while Swarm still rolls the
				// hand-made spec, as the extra task it started.
				repaired = repaired || rec.ID > before && r.Service == "b" && r.Error == "" && len(r.Repaired) > 0
			}
		}
		if !repaired {
			t.Fatalf("no sync in history repaired b: %+v", e.history())
		}
		e.answers("b.test", "v1")
		if code, _, err := get("http://"+e.proxy+"/env?name=BY_HAND", "b.test", ""); err != nil || code != 404 {
			t.Fatalf("BY_HAND through the proxy: %d %v, want 404 (the hand-made env removed)", code, err)
		}
	})

	t.Run("prune removes a service gone from git", func(t *testing.T) {
		e.push("drop c", a2, b1)
		st := e.sync()
		if st.LastSync.Result != "succeeded" {
			t.Fatalf("sync %s: %s", st.LastSync.Result, st.LastSync.Error)
		}
		waitFor(t, 30*time.Second, func() (bool, string) { return !serviceExists(t, "web_c"), "web_c still exists" })
	})

	t.Run("prune guard refuses a mass removal", func(t *testing.T) {
		e.repo.WriteFile("services/other/service.toml", svc("z", imageV1, 1, ""))
		e.repo.Remove("services/web/service.toml")
		e.repo.CommitPush("drop every service of web")
		st := e.sync()
		if st.Stalled == nil || !strings.Contains(st.Stalled.Reason, "prune guard") {
			t.Fatalf("want the prune guard to stall the sync, got %+v / %+v", st.Stalled, st.LastSync)
		}
		if !serviceExists(t, "web_a") || !serviceExists(t, "web_b") {
			t.Fatal("the refused plan removed services")
		}
	})
}

// BenchmarkSwarmRolling prints commit-to-ready of a 2-replica rolling
// update (v1 to v2; readiness every 1 s, min_ready_secs 1, max_surge 1) on
// Swarm and the same shape on plain Docker: from the push of the commit to
// the end of the sync that rolled it, every replica on v2 and serving. It
// is no part of the suite:
//
//	go test -run '^$' -bench BenchmarkSwarmRolling -benchtime 1x ./e2e/swarm
//
// The plain Docker serve runs with its own --node and prune = false, so it
// never touches the containers of anyone else on the shared engine.
func BenchmarkSwarmRolling(b *testing.B) {
	dockertest.Require(b)
	for _, engine := range []string{"swarm", "docker"} {
		b.Run(engine, func(b *testing.B) {
			var total time.Duration
			for range b.N {
				total += rollOnce(b, engine)
			}
			b.ReportMetric((total / time.Duration(b.N)).Seconds(), "s/commit-to-ready")
		})
	}
}

func rollOnce(b *testing.B, engine string) time.Duration {
	sink := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer sink.Close()
	repo, srv := gittest.Served(b, "infra.git", gitUser, gitPass)
	e := &env{t: b, repo: repo, sink: sink.URL}
	project := fmt.Sprintf("bench%s%d", engine, time.Now().UnixNano()%1e6)
	node := "orca-swarm-bench-" + project
	cluster := fmt.Sprintf("[cluster]\nengine = %q\n[reconcile]\nprune = false\n", engine)
	write := func(image, msg string) {
		repo.WriteFile("cluster.toml", cluster)
		repo.WriteFile("services/"+project+"/service.toml", svc("r", image, 2, ""))
		repo.CommitPush(msg)
	}
	write(imageV1, "v1")
	// Registered first, so it runs after serve has stopped (cleanups run
	// last-in first-out) and serve cannot put anything back.
	b.Cleanup(func() { cleanup(b, engine, project) })
	startServe(b, e, srv.URL("infra.git"), "--node", node)
	ready := func(image string) func() (bool, string) {
		return func() (bool, string) {
			st := e.status()
			s := serviceIn(st, project, "r")
			return !st.Syncing && s.Sync == wire.SyncSynced && s.Ready == 2 && s.Image == image, fmt.Sprintf("%+v", s)
		}
	}
	waitFor(b, 2*time.Minute, ready(imageV1))
	pushed := time.Now()
	write(imageV2, "v2")
	e.sync()
	waitFor(b, 2*time.Minute, ready(imageV2))
	took := time.Since(pushed)
	b.Logf("%s: commit-to-ready of a 2-replica rolling update: %v", engine, took.Round(10*time.Millisecond))
	return took
}

// cleanup removes what a benchmark round made: the Swarm service, or the
// containers labelled with its project.
func cleanup(b testing.TB, engine, project string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if engine == "swarm" {
		docker.ServiceRemove(ctx, project+"_r", client.ServiceRemoveOptions{})
		return
	}
	res, err := docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", "orca.project="+project)})
	if err != nil {
		b.Log(err)
		return
	}
	for _, c := range res.Items {
		docker.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
	}
	docker.NetworkRemove(ctx, "orca-"+project, client.NetworkRemoveOptions{})
}
