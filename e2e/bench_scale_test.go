package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	dockerrt "github.com/orca-sync/orca-sync/docker"
	"github.com/orca-sync/orca-sync/internal/dockertest"
	"github.com/orca-sync/orca-sync/internal/gittest"
	"github.com/orca-sync/orca-sync/proxy"
	"github.com/orca-sync/orca-sync/reconcile"
	"github.com/orca-sync/orca-sync/source"
	"github.com/orca-sync/orca-sync/state"
)

// scaleImage is the tiny FROM scratch image of BenchmarkScale's services:
// Debian's static busybox serving an empty directory over HTTP (a few
// hundred KiB of memory each).
const scaleImage = "orca-bench/scale:v1"

// scaleSize is the benchmark's shape: projects × services, from
// SCALE_PROJECTS and SCALE_SERVICES (default 20 × 50 = 1,000 services,
// which takes 20 of the ~31 bridge networks of Docker's default address
// pools), and SCALE_SYNCS no-change syncs and API calls to take the median of.
type scaleSize struct{ projects, services, syncs int }

func scaleSizeFromEnv(b *testing.B) scaleSize {
	get := func(name string, def int) int {
		v := os.Getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want a positive number", name, v)
		}
		return n
	}
	return scaleSize{projects: get("SCALE_PROJECTS", 20), services: get("SCALE_SERVICES", 50), syncs: get("SCALE_SYNCS", 10)}
}

// BenchmarkScale deploys projects × services tiny containers with
// `orca-sync serve` from a git smart-HTTP remote, as a user would, then
// prints what a no-change sync costs (time, Docker calls), what the first
// sync after a restart of serve costs (an inspect per container), the idle
// resident memory of serve, and the answer times of the status and drift
// API. It is not part of the suite (a benchmark runs only with -bench);
// bench/scale.sh runs it:
//
//	SCALE_PROJECTS=5 SCALE_SERVICES=50 go test ./e2e/ -run XXX -bench Scale -benchtime 1x -timeout 60m
//
// With SCALE_PROFILE_DIR set it also runs the same syncs in-process and
// writes CPU profiles of the no-change sync (nochange.pprof) and of the
// first sync of a fresh loop (restart.pprof) there.
func BenchmarkScale(b *testing.B) {
	size := scaleSizeFromEnv(b)
	env := newEnv(b)
	// Registered after newEnv's cleanup, so it runs first: the scope's own
	// sweep removes one container at a time, too slow for a thousand.
	b.Cleanup(func() { scaleTeardown(b, env) })
	if f := os.Getenv("SCALE_PREFIX_FILE"); f != "" { // the script's own sweep, should this process die
		os.WriteFile(f, []byte(env.Prefix), 0o644)
	}
	buildScaleImage(b)
	repo, srv := newServedRepo(b)
	repo.WriteFile("cluster.toml", "[cluster]\nnode = \""+env.Prefix+"\"\n[reconcile]\ninterval_secs = 3600\n[acme]\ntls = \"off\"\n")
	for p := range size.projects {
		repo.WriteFile("services/"+env.project(fmt.Sprintf("p%02d", p))+"/service.toml", scaleProject(p, size.services))
	}
	repo.Commit(fmt.Sprintf("%d × %d services", size.projects, size.services))
	repo.Push()
	total := size.projects * size.services
	fig := &scaleFigures{size: size}

	ps := newProxyPortsB(b)
	start := time.Now()
	d := startServe(b, env, srv.URL("infra.git"), "--http-addr", ps.http, "--https-addr", ps.https)
	first := d.waitSync(b, 0, 30*time.Minute)
	fig.deploy = time.Since(start)
	if first.result != reconcile.ResultSucceeded {
		b.Fatalf("deploy of %d services: %s\n%s", total, first.result, d.logs.String())
	}
	if n := scaleRunning(b, env); n != total {
		b.Fatalf("after the deploy %d of %d containers run", n, total)
	}
	b.Logf("deployed %d services in %v (%s)", total, fig.deploy.Round(time.Second), first.plan)

	d.noChangeSyncs(b, d.quiet(b), fig)
	fig.status = d.apiTimes(b, "/api/v1/status", size.syncs, &fig.statusCalls)
	fig.drift = d.apiTimes(b, "/api/v1/drift", size.syncs, &fig.driftCalls)
	// Idle: the syncs are over, the next tick is an hour away; the pause
	// lets the memory they used settle, which has no event.
	time.Sleep(3 * time.Second)
	fig.rss = statusMiB(b, d.cmd.Process.Pid, "VmRSS", "RssAnon", "RssFile")

	d.stop()
	d.docker.takeRequests()
	restarted := time.Now()
	d.start()
	rec := d.waitSync(b, 0, 10*time.Minute)
	fig.restartWall = time.Since(restarted)
	fig.restartSync = rec.took
	reqs := d.docker.takeRequests()
	fig.restartCalls, fig.restartInspects = countCalls(reqs)
	fig.restartKinds = callKinds(reqs, 1)
	if rec.result != reconcile.ResultSucceeded || !strings.HasPrefix(rec.plan, noChangePlan) {
		b.Fatalf("first sync after the restart: %s plan %q\n%s", rec.result, rec.plan, d.logs.String())
	}
	if dir := os.Getenv("SCALE_PROFILE_DIR"); dir != "" {
		d.stop()
		profileInProcess(b, env, srv, dir, size.syncs)
	}
	for b.Loop() { // the figures above are one run; -benchtime 1x
	}
	fig.print(b)
}

// noChangePlan starts the plan line of a sync with nothing to do.
const noChangePlan = "0 to create, 0 to update, 0 to scale, 0 to heal, 0 to remove"

// scaleProject is the service.toml of project p: n tiny services, each
// routed by the proxy and ready once its port accepts.
func scaleProject(p, n int) string {
	var b strings.Builder
	for s := range n {
		fmt.Fprintf(&b, `[[service]]
name = "s%02d"
image = %q
pull_policy = "never"
port = 8080
domain = "s%02d.p%02d.scale.test"
resources = { memory = "8Mi" }
[service.env]
N = "%d"
[service.readiness]
type = "tcp"
[service.deploy]
min_ready_secs = 0
timeout_secs = 900

`, s, scaleImage, s, p, p*n+s)
	}
	return b.String()
}

func buildScaleImage(b *testing.B) {
	dir := b.TempDir()
	bb, err := os.ReadFile(dockertest.Busybox.Host)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "busybox"), bb, 0o755); err != nil {
		b.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "www"), 0o755)
	df := "FROM scratch\nCOPY busybox /bin/busybox\nEXPOSE 8080\nENTRYPOINT [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := dockertest.BuildDir(ctx, docker, scaleImage, dir); err != nil {
		b.Fatal(err)
	}
}

// newProxyPortsB is newProxyPorts for a benchmark.
func newProxyPortsB(b *testing.B) *proxyServe {
	return &proxyServe{http: fmt.Sprintf("127.0.0.1:%d", freePort(b)), https: fmt.Sprintf("127.0.0.1:%d", freePort(b))}
}

// scaleRunning counts the scope's running managed containers.
func scaleRunning(b *testing.B, env *Env) int {
	ctx, cancel := env.ctx()
	defer cancel()
	res, err := env.Docker.ContainerList(ctx, client.ContainerListOptions{Filters: make(client.Filters).Add("label", "orca.managed=true")})
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, c := range res.Items {
		if strings.HasPrefix(c.Labels["orca.project"], env.Prefix) {
			n++
		}
	}
	return n
}

// scaleTeardown removes the scope's containers 4 at a time, then lets the
// scope's cleanup sweep the networks and whatever is left.
func scaleTeardown(b *testing.B, env *Env) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cs, err := env.Containers(ctx)
	if err != nil {
		b.Logf("teardown: %v", err)
		return
	}
	start := time.Now()
	work := make(chan string)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for id := range work {
				env.Docker.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
			}
		})
	}
	for _, c := range cs {
		work <- c.ID
	}
	close(work)
	wg.Wait()
	b.Logf("teardown: removed %d containers in %v", len(cs), time.Since(start).Round(time.Second))
}

// syncLine is what serve logs at the end of each sync (reconcile's
// record step). No-change syncs are not written to history, so the log is
// where each one's time is.
var syncLine = regexp.MustCompile(`msg=sync trigger=(\S+) .*result=(\S+) plan="([^"]*)" duration=(\S+)`)

// loggedSync is one sync as serve logged it.
type loggedSync struct {
	trigger, result, plan string
	took                  time.Duration
}

// waitSync waits until serve has logged more than n syncs since it started
// and returns sync n+1 (counting from 1).
func (d *daemon) waitSync(b *testing.B, n int, timeout time.Duration) loggedSync {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := syncLine.FindAllStringSubmatch(d.logs.String(), -1); len(m) > n {
			took, err := time.ParseDuration(m[n][4])
			if err != nil {
				b.Fatalf("sync line %q: %v", m[n][0], err)
			}
			return loggedSync{trigger: m[n][1], result: m[n][2], plan: m[n][3], took: took}
		}
		if time.Now().After(deadline) {
			b.Fatalf("sync %d not done within %v\n%s", n+1, timeout, d.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// noChangeSyncs asks serve for size.syncs syncs one after another and
// records each one's time (as history has it) and the Docker calls they
// made. done is how many syncs serve has logged so far.
func (d *daemon) noChangeSyncs(b *testing.B, done int, fig *scaleFigures) {
	// The first sync after a deploy inspects the new containers for its
	// drift check (untimed); the ones after answer from the cache.
	if code, body := d.call(http.MethodPost, "/api/v1/sync"); code != http.StatusAccepted {
		b.Fatalf("sync: %d %s", code, body)
	}
	d.waitSync(b, done, 5*time.Minute)
	done++
	d.docker.takeRequests()
	for range fig.size.syncs {
		if code, body := d.call(http.MethodPost, "/api/v1/sync"); code != http.StatusAccepted {
			b.Fatalf("sync: %d %s", code, body)
		}
		rec := d.waitSync(b, done, 5*time.Minute)
		done++
		if rec.trigger != "api" || rec.result != reconcile.ResultSucceeded || !strings.HasPrefix(rec.plan, noChangePlan) {
			b.Fatalf("no-change sync: %+v", rec)
		}
		fig.noChange = append(fig.noChange, rec.took)
	}
	reqs := d.docker.takeRequests()
	calls, inspects := countCalls(reqs)
	fig.noChangeCalls = float64(calls) / float64(fig.size.syncs)
	fig.noChangeInspects = float64(inspects) / float64(fig.size.syncs)
	fig.noChangeKinds = callKinds(reqs, fig.size.syncs)
}

// quiet waits until serve has logged no sync for 3 s (the container
// events of a deploy signal syncs of their own) and returns how many it
// logged.
func (d *daemon) quiet(b *testing.B) int {
	n, since := -1, time.Now()
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if m := len(syncLine.FindAllString(d.logs.String(), -1)); m != n {
			n, since = m, time.Now()
		} else if time.Since(since) > 3*time.Second {
			return n
		}
	}
	b.Fatalf("serve kept syncing for 5 minutes after the deploy\n%s", d.logs.String())
	return 0
}

// apiTimes GETs path n times and returns the answer times; calls gets the
// Docker calls per answer.
func (d *daemon) apiTimes(b *testing.B, path string, n int, calls *string) []time.Duration {
	d.docker.takeRequests()
	var out []time.Duration
	for range n {
		t0 := time.Now()
		if code, body := d.call(http.MethodGet, path); code != http.StatusOK {
			b.Fatalf("GET %s: %d %s", path, code, body)
		}
		out = append(out, time.Since(t0))
	}
	reqs := d.docker.takeRequests()
	c, _ := countCalls(reqs)
	*calls = fmt.Sprintf("%.1f Docker calls: %s", float64(c)/float64(n), strings.Join(callKinds(reqs, n), ", "))
	return out
}

// idPart is a container or image ID in a request path.
var idPart = regexp.MustCompile(`(sha256:)?[0-9a-f]{64}`)

// callKinds names the kinds of Docker requests made, IDs left out, each with
// its count per op.
func callKinds(reqs map[string]int, ops int) []string {
	kinds := map[string]int{}
	for k, n := range reqs {
		kinds[idPart.ReplaceAllString(k, "{id}")] += n
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		out = append(out, fmt.Sprintf("%s ×%.1f", k, float64(kinds[k])/float64(ops)))
	}
	return out
}

// countCalls sums Docker requests and the container inspects among them.
func countCalls(reqs map[string]int) (calls, inspects int) {
	for k, n := range reqs {
		calls += n
		if strings.HasPrefix(k, "GET /containers/") && strings.HasSuffix(k, "/json") && k != "GET /containers/json" {
			inspects += n
		}
	}
	return calls, inspects
}

// profileInProcess runs the no-change sync and a fresh loop's first sync in
// this process, against the same remote and containers, under the CPU
// profiler.
func profileInProcess(b *testing.B, env *Env, srv *gittest.Server, dir string, n int) {
	ctx := context.Background()
	scoped := newScopedDocker(b, env.Prefix)
	b.Setenv("DOCKER_HOST", scoped.host)
	rt, err := dockerrt.New(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	git, err := source.New(source.Options{URL: srv.URL("infra.git"), Dir: b.TempDir() + "/repo", Username: gitUser, Password: gitPass})
	if err != nil {
		b.Fatal(err)
	}
	newLoop := func() *reconcile.Loop {
		db, err := state.Open(b.TempDir() + "/state.db")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		// As serve wires it: the proxy follows the routes.
		px := proxy.New(proxy.Options{HTTPAddr: fmt.Sprintf("127.0.0.1:%d", freePort(b)), HTTPSAddr: fmt.Sprintf("127.0.0.1:%d", freePort(b)),
			DataDir: b.TempDir(), IPs: engineIPs{rt}})
		b.Cleanup(func() { px.Shutdown(context.Background()) })
		return reconcile.New(reconcile.Options{Source: git, Runtime: rt, Store: db, Node: env.Prefix,
			Router: px, Routes: px, Canary: px})
	}
	profile := func(name string, f func()) {
		out, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			b.Fatal(err)
		}
		defer out.Close()
		pprof.StartCPUProfile(out)
		defer pprof.StopCPUProfile()
		f()
	}
	check := func(rec state.SyncRecord) {
		if rec.Result != reconcile.ResultSucceeded || !strings.HasPrefix(rec.Plan, noChangePlan) {
			b.Fatalf("in-process sync: %s %s plan %q", rec.Result, rec.Error, rec.Plan)
		}
	}
	var fresh []time.Duration
	profile("restart.pprof", func() {
		for range max(n/3, 1) {
			t0 := time.Now()
			check(newLoop().SyncOnce(ctx, "bench"))
			fresh = append(fresh, time.Since(t0))
		}
	})
	loop := newLoop()
	check(loop.SyncOnce(ctx, "warm-up"))
	var warm []time.Duration
	profile("nochange.pprof", func() {
		for range n * 3 {
			t0 := time.Now()
			check(loop.SyncOnce(ctx, "bench"))
			warm = append(warm, time.Since(t0))
		}
	})
	var status, drift []time.Duration
	profile("api.pprof", func() {
		for range n * 3 {
			t0 := time.Now()
			if _, err := loop.Status(ctx); err != nil {
				b.Fatal(err)
			}
			status = append(status, time.Since(t0))
			t0 = time.Now()
			if _, err := loop.Drift(ctx); err != nil {
				b.Fatal(err)
			}
			drift = append(drift, time.Since(t0))
		}
	})
	fmt.Printf("scale: in-process (profiles in %s): first sync of a fresh loop median %v; no-change sync median %v; status %v; drift %v\n",
		dir, median(fresh).Round(time.Millisecond), median(warm).Round(time.Millisecond), median(status).Round(time.Millisecond), median(drift).Round(time.Millisecond))
}

// engineIPs reads a container's addresses with an inspect, as serve's
// proxy does for a container the list gave none.
type engineIPs struct{ rt *dockerrt.Engine }

var _ proxy.ContainerIPs = engineIPs{}

func (e engineIPs) ContainerIP(ctx context.Context, id, network string) (string, error) {
	st, err := e.rt.Inspect(ctx, id)
	if err != nil {
		return "", err
	}
	return st.IPs[network], nil
}

// scaleFigures are what BenchmarkScale prints.
type scaleFigures struct {
	size                          scaleSize
	deploy                        time.Duration
	noChange                      []time.Duration
	noChangeCalls                 float64
	noChangeInspects              float64
	noChangeKinds                 []string
	status, drift                 []time.Duration
	statusCalls, driftCalls       string
	rss                           map[string]float64
	restartWall, restartSync      time.Duration
	restartCalls, restartInspects int
	restartKinds                  []string
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func (f *scaleFigures) print(b *testing.B) {
	total := f.size.projects * f.size.services
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
	rows := [][2]string{
		{"services (projects × services)", fmt.Sprintf("%d (%d × %d)", total, f.size.projects, f.size.services)},
		{"deploy from git (first sync)", f.deploy.Round(100 * time.Millisecond).String()},
		{fmt.Sprintf("no-change sync, median of %d (with fetch)", len(f.noChange)), ms(median(f.noChange)) + fmt.Sprintf(" (min %s, max %s)", ms(slices.Min(f.noChange)), ms(slices.Max(f.noChange)))},
		{"Docker calls per no-change sync", fmt.Sprintf("%.1f (%.1f inspects; %s)", f.noChangeCalls, f.noChangeInspects, strings.Join(f.noChangeKinds, ", "))},
		{"first sync after restart", ms(f.restartSync) + fmt.Sprintf(" (%d Docker calls, %d inspects: %s)", f.restartCalls, f.restartInspects, strings.Join(f.restartKinds, ", "))},
		{"restart to first sync done", ms(f.restartWall)},
		{"idle serve RSS", fmt.Sprintf("%.1f MiB (anonymous %.1f, file-backed %.1f)", f.rss["VmRSS"], f.rss["RssAnon"], f.rss["RssFile"])},
		{"GET /api/v1/status, median", ms(median(f.status)) + " (" + f.statusCalls + ")"},
		{"GET /api/v1/drift, median", ms(median(f.drift)) + " (" + f.driftCalls + ")"},
	}
	var sb strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&sb, "scale: | %-44s | %s |\n", r[0], r[1])
	}
	fmt.Print(sb.String())
	b.ReportMetric(float64(median(f.noChange).Microseconds())/1000, "nochange-ms")
	b.ReportMetric(f.noChangeCalls, "docker-calls/sync")
	b.ReportMetric(float64(f.restartSync.Milliseconds()), "restart-sync-ms")
	b.ReportMetric(f.rss["RssAnon"], "rss-anon-MiB")
}
