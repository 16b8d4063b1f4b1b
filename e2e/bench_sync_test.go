package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dockerrt "github.com/orca-sync/orca-sync/docker"
	"github.com/orca-sync/orca-sync/internal/gittest"
	"github.com/orca-sync/orca-sync/reconcile"
	"github.com/orca-sync/orca-sync/source"
	"github.com/orca-sync/orca-sync/state"
)

// cachedSource is a Source whose Sync does no I/O: it measures a sync
// without the fetch.
type cachedSource struct {
	dir    string
	commit source.Commit
}

func (c cachedSource) Sync(context.Context) (source.Commit, error) { return c.commit, nil }
func (c cachedSource) Dir() string                                 { return c.dir }

// BenchmarkSyncNoChange100 measures the serve loop's no-change sync of 100
// running services, with the git fetch and without it, and the resident
// memory of an idle `orca-sync serve` that manages them. Run it with
//
//	go test ./e2e/ -run XXX -bench SyncNoChange100 -benchtime 20x
func BenchmarkSyncNoChange100(b *testing.B) {
	env := newEnv(b)
	repo := gittest.NewRepo(b)
	repo.WriteFile("cluster.toml", "[cluster]\nnode = \""+env.Prefix+"\"\n[reconcile]\ninterval_secs = 3600\n")
	for i := range 10 {
		p := env.project(fmt.Sprintf("sync%02d", i))
		var ten []svc
		for j := range 10 {
			ten = append(ten, svc{Name: fmt.Sprintf("svc%02d", j), Image: imageV1, Env: map[string]string{"N": fmt.Sprint(i*10 + j)},
				Deploy: deploy{TimeoutSecs: 120, Keys: []string{"min_ready_secs = 0"}}})
		}
		repo.WriteFile("services/"+p+"/service.toml", services(ten...))
	}
	repo.Commit("100 services")
	repo.Push()

	// A first serve --once deploys them (untimed).
	orca := newOrca(b, env, repo.Dir())
	if r := orca.run("serve", "--once", "--repo", repo.FileURL(), "--data-dir", b.TempDir()); r.Code != 0 {
		b.Fatalf("setup sync failed:\n%s", r)
	}
	b.Setenv("DOCKER_HOST", orca.docker.host)
	ctx := context.Background()
	rt, err := dockerrt.New(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()

	newLoop := func(b *testing.B, src reconcile.Source) *reconcile.Loop {
		db, err := state.Open(b.TempDir() + "/state.db")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		return reconcile.New(reconcile.Options{Source: src, Runtime: rt, Store: db})
	}
	git, err := source.New(source.Options{URL: repo.FileURL(), Dir: b.TempDir() + "/repo"})
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, loop *reconcile.Loop) {
		// The first sync of a loop inspects every container for its drift
		// check (untimed); every later one answers from the cache.
		loop.SyncOnce(ctx, "warm-up")
		first := loop.Inspects()
		orca.docker.takeRequests()
		for b.Loop() {
			rec := loop.SyncOnce(ctx, "bench")
			if rec.Result != reconcile.ResultSucceeded || !strings.HasPrefix(rec.Plan, "0 to create, 0 to update, 0 to scale, 0 to heal, 0 to remove") {
				b.Fatalf("sync: %s %s plan %q", rec.Result, rec.Error, rec.Plan)
			}
		}
		calls, inspects := 0, 0
		for k, n := range orca.docker.takeRequests() {
			calls += n
			if strings.HasPrefix(k, "GET /containers/") && strings.HasSuffix(k, "/json") && k != "GET /containers/json" {
				inspects += n
			}
		}
		b.ReportMetric(float64(calls)/float64(b.N), "docker-calls/op")
		b.ReportMetric(float64(inspects)/float64(b.N), "inspects/op")
		b.Logf("first drift check: %d container inspects for 100 services; then %d Docker calls (%d inspects) in %d syncs",
			first, calls, inspects, b.N)
	}
	b.Run("with-fetch", func(b *testing.B) { run(b, newLoop(b, git)) })
	commit, err := git.Sync(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("without-fetch", func(b *testing.B) { run(b, newLoop(b, cachedSource{dir: git.Dir(), commit: commit})) })
	b.Run("serve-idle-rss", func(b *testing.B) {
		d := startServe(b, env, repo.FileURL())
		env.waitFor(b, 60*time.Second, func() (bool, string) {
			h := d.history()
			return len(h) > 0 && h[0].Result == reconcile.ResultSucceeded, fmt.Sprintf("history %+v", h)
		})
		// Idle: the sync is over, the next tick is an hour away; the pause
		// lets the memory the sync used settle, which has no event.
		time.Sleep(3 * time.Second)
		mem := statusMiB(b, d.cmd.Process.Pid, "VmRSS", "RssAnon", "RssFile")
		for b.Loop() {
		}
		b.ReportMetric(mem["VmRSS"], "rss-MiB")
		b.ReportMetric(mem["RssAnon"], "rss-anon-MiB")
		// RssFile is the binary's clean, shared, reclaimable pages; RssAnon is
		// what serve itself holds (heap, stacks).
		b.Logf("idle serve with 100 services: VmRSS %.1f MiB (anonymous %.1f, file-backed %.1f)",
			mem["VmRSS"], mem["RssAnon"], mem["RssFile"])
	})
}

// statusMiB reads the named kB fields of a process's /proc/<pid>/status.
func statusMiB(b *testing.B, pid int, fields ...string) map[string]float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	got := map[string]float64{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && slices.Contains(fields, strings.TrimSuffix(f[0], ":")) {
			kb, _ := strconv.Atoi(f[1])
			got[strings.TrimSuffix(f[0], ":")] = float64(kb) / 1024
		}
	}
	if len(got) != len(fields) {
		b.Fatalf("/proc/%d/status: want %v, got %v", pid, fields, got)
	}
	return got
}
