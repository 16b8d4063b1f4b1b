package e2e

// Helpers for the tests that drive the orca-sync binary (apply_test.go,
// bench_test.go): build it once, run it against a Docker view scoped to one
// test, write infra checkouts and look at what it made.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
)

// orcaBinary builds ./cmd/orca-sync once per test run and returns its path.
// Each run builds into a directory of its own (runs from other checkouts may
// go on at the same time); those of runs more than a day old are removed.
var orcaBinary = sync.OnceValues(func() (string, error) {
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), "orca-sync-e2e-bin-*"))
	for _, d := range old {
		if fi, err := os.Stat(d); err == nil && time.Since(fi.ModTime()) > 24*time.Hour {
			os.RemoveAll(d)
		}
	}
	dir, err := os.MkdirTemp("", "orca-sync-e2e-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "orca-sync")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/orca-sync")
	cmd.Dir = ".." // the module root; tests run in the package directory
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/orca-sync: %v\n%s", err, out)
	}
	return bin, nil
})

// scopedDocker is a proxy in front of the Docker engine for one test. The
// engine is shared by every test running in parallel (and maybe by people
// working on the same host), while orca-sync rightly treats every container
// labelled orca.managed=true as its own: a test's apply would prune the
// containers of the other tests. So the proxy hides, in the answer to the
// container list call, the managed containers whose orca.project does not
// start with the test's prefix. Everything else, unmanaged containers
// included, passes unchanged. It also counts the requests it forwards.
type scopedDocker struct {
	prefix string
	host   string // DOCKER_HOST value for clients: unix://<socket>

	mu       sync.Mutex
	requests map[string]int // "GET /containers/json" → count
}

var containerListPath = regexp.MustCompile(`^(/v[0-9.]+)?/containers/json$`)
var apiVersionPrefix = regexp.MustCompile(`^/v[0-9.]+/`)

// newScopedDocker starts the proxy; t's cleanup stops it.
func newScopedDocker(t testing.TB, prefix string) *scopedDocker {
	t.Helper()
	up, err := url.Parse(docker.DaemonHost())
	if err != nil {
		t.Fatalf("docker host %q: %v", docker.DaemonHost(), err)
	}
	target := &url.URL{Scheme: "http", Host: "docker"}
	transport := &http.Transport{MaxIdleConnsPerHost: 16}
	switch up.Scheme {
	case "unix":
		sock := up.Path
		transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}
	case "tcp", "http":
		if os.Getenv("DOCKER_TLS_VERIFY") != "" {
			t.Fatal("e2e: the scoped Docker proxy does not speak TLS to the engine; point DOCKER_HOST at a unix socket or a plain tcp:// engine")
		}
		target.Host = up.Host
	default:
		t.Fatalf("e2e: the scoped Docker proxy cannot reach %s; point DOCKER_HOST at a unix socket or a plain tcp:// engine", docker.DaemonHost())
	}
	s := &scopedDocker{prefix: prefix, requests: map[string]int{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		Transport:      transport,
		FlushInterval:  -1, // pull progress, logs and events stream through
		ModifyResponse: s.filter,
		ErrorLog:       nil,
	}
	// A short path: unix socket paths are limited to ~108 bytes.
	dir, err := os.MkdirTemp("", "orca-dock-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.count(r)
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		transport.CloseIdleConnections()
		os.RemoveAll(dir)
	})
	s.host = "unix://" + sock
	return s
}

func (s *scopedDocker) count(r *http.Request) {
	p := apiVersionPrefix.ReplaceAllString(r.URL.Path, "/")
	s.mu.Lock()
	s.requests[r.Method+" "+p]++
	s.mu.Unlock()
}

// takeRequests returns the requests counted since the last call and resets.
func (s *scopedDocker) takeRequests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.requests
	s.requests = map[string]int{}
	return out
}

func (s *scopedDocker) filter(resp *http.Response) error {
	if resp.Request.Method != http.MethodGet || resp.StatusCode != http.StatusOK ||
		!containerListPath.MatchString(resp.Request.URL.Path) {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return fmt.Errorf("scoped docker: container list: %w", err)
	}
	// Byte matches rather than a decode of each item: the list of a
	// thousand containers goes through here at every sync of the scale
	// benchmark. Inside a JSON string a quote is escaped, so these
	// key-value texts can only be the labels themselves.
	managed := []byte(`"orca.managed":"true"`)
	ours := []byte(`"orca.project":"` + s.prefix)
	out := []byte{'['}
	n := 0
	for _, it := range items {
		if bytes.Contains(it, managed) && !bytes.Contains(it, ours) {
			continue // another test's, or someone else's
		}
		if n > 0 {
			out = append(out, ',')
		}
		out, n = append(out, it...), n+1
	}
	out = append(out, ']')
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}

// orcaCLI runs the orca-sync binary on one infra checkout, against the
// test's scoped Docker view.
type orcaCLI struct {
	t       testing.TB
	dir     string
	dataDir string // ORCA_SYNC_DATA_DIR: each test's apply takes its own data dir's lock
	docker  *scopedDocker
}

// newOrca returns a runner for the checkout dir of env's test.
func newOrca(t testing.TB, env *Env, dir string) *orcaCLI {
	t.Helper()
	if _, err := orcaBinary(); err != nil {
		t.Fatal(err)
	}
	return &orcaCLI{t: t, dir: dir, dataDir: t.TempDir(), docker: newScopedDocker(t, env.Prefix)}
}

// cliResult is what one run of the binary printed and its exit status.
type cliResult struct {
	args           []string
	Stdout, Stderr string
	Code           int
	Took           time.Duration
}

func (r cliResult) String() string {
	return fmt.Sprintf("orca-sync %s: exit %d after %v\n--- stdout:\n%s--- stderr:\n%s",
		strings.Join(r.args, " "), r.Code, r.Took.Round(time.Millisecond), r.Stdout, r.Stderr)
}

// run runs orca-sync with args (at most 3 minutes) and returns what it did;
// it fails the test only when the binary cannot be run at all.
func (o *orcaCLI) run(args ...string) cliResult {
	o.t.Helper()
	return o.runIn("", args...)
}

// runIn is run with the working directory cwd ("" is the test's).
func (o *orcaCLI) runIn(cwd string, args ...string) cliResult {
	o.t.Helper()
	bin, err := orcaBinary()
	if err != nil {
		o.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = cwd
	var env []string
	for _, kv := range os.Environ() {
		// Only the scoped engine, and no flag from ORCA_SYNC_* variables.
		if !strings.HasPrefix(kv, "DOCKER_") && !strings.HasPrefix(kv, "ORCA_SYNC_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "DOCKER_HOST="+o.docker.host, "ORCA_SYNC_DATA_DIR="+o.dataDir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Run()
	r := cliResult{args: args, Stdout: stdout.String(), Stderr: stderr.String(), Took: time.Since(start)}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.Code = exit.ExitCode()
	case err != nil:
		o.t.Fatalf("orca-sync %s: %v\n%s", strings.Join(args, " "), err, r)
	}
	if ctx.Err() != nil {
		o.t.Fatalf("orca-sync %s: timed out\n%s", strings.Join(args, " "), r)
	}
	return r
}

// apply runs `orca-sync apply DIR args...`.
func (o *orcaCLI) apply(args ...string) cliResult {
	o.t.Helper()
	return o.run(append([]string{"apply", o.dir}, args...)...)
}

// mustApply runs apply and fails the test unless it exits 0.
func (o *orcaCLI) mustApply(args ...string) cliResult {
	o.t.Helper()
	r := o.apply(args...)
	if r.Code != 0 {
		o.t.Fatalf("apply failed:\n%s", r)
	}
	return r
}

// plan runs `orca-sync plan DIR args...`.
func (o *orcaCLI) plan(args ...string) cliResult {
	o.t.Helper()
	return o.run(append([]string{"plan", o.dir}, args...)...)
}

// applyLine is one service's line of apply's text output:
// "project/service  action: started N, removed M in T; ok|FAILED: reason".
type applyLine struct {
	Action           string
	Started, Removed int
	Status           string // "ok" or "FAILED: ..."
}

var applyLineRE = regexp.MustCompile(`^(\S+/\S+)  (\w+): started (\d+), removed (\d+) in \S+; (.*)$`)

// applyLines parses apply's text output by "project/service". A reason that
// spans lines (say with a container's last log lines) continues until the
// next service line.
func applyLines(stdout string) map[string]applyLine {
	out := map[string]applyLine{}
	last := ""
	for _, line := range strings.Split(stdout, "\n") {
		m := applyLineRE.FindStringSubmatch(line)
		if m == nil {
			if l, ok := out[last]; ok && line != "" {
				l.Status += "\n" + line
				out[last] = l
			}
			continue
		}
		started, _ := strconv.Atoi(m[3])
		removed, _ := strconv.Atoi(m[4])
		out[m[1]] = applyLine{Action: m[2], Started: started, Removed: removed, Status: m[5]}
		last = m[1]
	}
	return out
}

// writeFiles writes each slash-separated path of files under dir, creating
// directories.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeProject writes services/<project>/service.toml.
func writeProject(t testing.TB, dir, project, toml string) {
	t.Helper()
	writeFiles(t, dir, map[string]string{"services/" + project + "/service.toml": toml})
}

// idsOf returns the container IDs of cs, sorted.
func idsOf(cs []container.Summary) []string {
	ids := make([]string, 0, len(cs))
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	slices.Sort(ids)
	return ids
}

func shortIDs(ids []string) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id[:min(12, len(id))]
	}
	return strings.Join(s, ",")
}

func nameOf(c container.Summary) string {
	if len(c.Names) == 0 {
		return c.ID[:12]
	}
	return strings.TrimPrefix(c.Names[0], "/")
}

// describe lists containers as name(state,image) for failure messages.
func describe(cs []container.Summary) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s(%s,%s,%s)", nameOf(c), c.ID[:12], c.State, c.Image))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// mustContainers is Env.containers that fails the test on error.
func (e *Env) mustContainers(t testing.TB, project, service string) []container.Summary {
	t.Helper()
	cs, err := e.containers(project, service)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// inspect returns the full inspect of a container.
func (e *Env) inspect(t testing.TB, id string) container.InspectResponse {
	t.Helper()
	ctx, cancel := e.ctx()
	defer cancel()
	res, err := e.Docker.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect %s: %v", id, err)
	}
	return res.Container
}

// get GETs url and fails the test unless it answers 200; it returns the body.
func (e *Env) get(t testing.TB, url string) string {
	t.Helper()
	code, body, err := e.httpGet(url)
	if err != nil || code != 200 {
		t.Fatalf("GET %s: %d %q %v", url, code, body, err)
	}
	return body
}

// fetchFrom asks the test app at base to GET url (from inside its container,
// so DNS and routing are the container's) and returns the status and body.
func (e *Env) fetchFrom(base, target string) (int, string, error) {
	return e.httpGet(base + "/fetch?url=" + url.QueryEscape(target))
}

// freePort returns a TCP port that was free on the host a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// allRunning reports whether every container of cs is running.
func allRunning(cs []container.Summary) bool {
	for _, c := range cs {
		if c.State != container.StateRunning {
			return false
		}
	}
	return true
}

// readySample is one look at a service: how many of its running containers
// answered GET /healthz with 200, at about the same moment.
type readySample struct {
	at     time.Time
	ready  int // -1: the list call failed
	detail string
}

func (s readySample) String() string {
	return fmt.Sprintf("%s ready=%d %s", s.at.Format("15:04:05.000"), s.ready, s.detail)
}

// sampleReady lists the running containers of project/service and probes
// each one's /healthz on the project network, all at once.
func (e *Env) sampleReady(project, service string) readySample {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	at := time.Now()
	f := make(client.Filters).Add("label", "orca.managed=true", "orca.project="+project, "orca.service="+service)
	res, err := e.Docker.ContainerList(ctx, client.ContainerListOptions{Filters: f})
	if err != nil {
		return readySample{at: at, ready: -1, detail: err.Error()}
	}
	netName := "orca-" + project
	details := make([]string, len(res.Items))
	ok := make([]bool, len(res.Items))
	var wg sync.WaitGroup
	for i, c := range res.Items {
		wg.Go(func() {
			name := nameOf(c)
			var ip string
			if c.NetworkSettings != nil {
				if ep := c.NetworkSettings.Networks[netName]; ep != nil && ep.IPAddress.IsValid() {
					ip = ep.IPAddress.String()
				}
			}
			if ip == "" {
				details[i] = name + ": no address yet"
				return
			}
			code, _, err := e.httpGet(fmt.Sprintf("http://%s:%d/healthz", ip, testAppPort))
			ok[i] = err == nil && code == 200
			if err != nil {
				details[i] = fmt.Sprintf("%s(%s): %v", name, c.Image, err)
			} else {
				details[i] = fmt.Sprintf("%s(%s): %d", name, c.Image, code)
			}
		})
	}
	wg.Wait()
	s := readySample{at: at, detail: "[" + strings.Join(details, "; ") + "]"}
	for _, b := range ok {
		if b {
			s.ready++
		}
	}
	return s
}

// readyMonitor samples a service every 100 ms in the background. Samples
// run concurrently, so a slow probe (say of a container that is shutting
// down) does not leave a gap in the record.
type readyMonitor struct {
	stopc   chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples []readySample
}

func (e *Env) watchReady(project, service string) *readyMonitor {
	m := &readyMonitor{stopc: make(chan struct{}), done: make(chan struct{})}
	sample := func() {
		s := e.sampleReady(project, service)
		m.mu.Lock()
		m.samples = append(m.samples, s)
		m.mu.Unlock()
	}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			m.wg.Go(sample)
			select {
			case <-m.stopc:
				m.wg.Wait()
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

// stop ends the sampling and returns every sample taken, in time order.
func (m *readyMonitor) stop() []readySample {
	close(m.stopc)
	<-m.done
	slices.SortFunc(m.samples, func(a, b readySample) int { return a.at.Compare(b.at) })
	return m.samples
}

// eventLog records the Docker container events of one project.
type eventLog struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	events []events.Message
	err    error
}

// watchEvents subscribes to the container events of project; the
// subscription is live when it returns.
func (e *Env) watchEvents(t testing.TB, project string) *eventLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &eventLog{cancel: cancel, done: make(chan struct{})}
	res := e.Docker.Events(ctx, client.EventsListOptions{
		Filters: make(client.Filters).Add("type", "container").Add("label", "orca.project="+project),
	})
	go func() {
		defer close(l.done)
		for {
			select {
			case m := <-res.Messages:
				l.mu.Lock()
				l.events = append(l.events, m)
				l.mu.Unlock()
			case err := <-res.Err:
				if ctx.Err() == nil && err != nil {
					l.mu.Lock()
					l.err = err
					l.mu.Unlock()
				}
				return
			}
		}
	}()
	t.Cleanup(l.stop)
	return l
}

// snapshot returns the events so far and the stream's error, if it broke.
func (l *eventLog) snapshot() ([]events.Message, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events), l.err
}

func (l *eventLog) stop() {
	l.cancel()
	<-l.done
}
