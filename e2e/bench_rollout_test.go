package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	dockerrt "github.com/orca-sync/orca-sync/docker"
	"github.com/orca-sync/orca-sync/internal/gittest"
	"github.com/orca-sync/orca-sync/proxy"
	"github.com/orca-sync/orca-sync/reconcile"
	"github.com/orca-sync/orca-sync/secrets"
	"github.com/orca-sync/orca-sync/source"
	"github.com/orca-sync/orca-sync/state"
)

// BenchmarkRollout measures commit-to-ready of a rolling update on the real
// engine: a commit changes the spec of one service of N replicas (readiness
// GET /healthz every 1 s, drain_secs = 2, behind the real proxy's router,
// no traffic), and the reconcile loop's sync — fetch from a file:// remote,
// load, plan, apply, record — rolls every replica. Run it with
//
//	go test ./e2e/ -run '^$' -bench BenchmarkRollout -benchtime 3x
//
// Each op is one such sync; the breakdown is per op, in ms:
//
//   - fetch, load (to the end of secret resolution), plan (to the commit
//     status going pending, right before Apply), apply (to the proxy's table
//     sync after it), record (the rest);
//   - create-start (wall time inside Docker's create+start calls), ready
//     (containers started and not yet routed in: the readiness waits),
//     drain (route out waiting for in-flight requests), stop (stop and
//     remove calls), docker-other (list, inspect, image, network calls);
//     each counts the wall time during which at least one such runs, so
//     side-by-side starts count once;
//   - own: total minus the wall time inside any Docker call, readiness wait
//     or drain — what orca-sync itself spends (fetch included: it is
//     git work in this process and its children).
//
// The times come from decorators around the runtime, router, source,
// secrets and commit statuses the loop is given (bench_timing_test.go), not
// from guesses. Targets (issue 22): own ≤ 250 ms for 2 replicas, ≤ 500 ms
// for 10. The figures are printed, never asserted.
func BenchmarkRollout(b *testing.B) {
	for _, c := range []struct{ replicas, surge int }{{1, 1}, {2, 1}, {2, 2}, {10, 1}, {10, 10}} {
		b.Run(fmt.Sprintf("replicas=%d/surge=%d", c.replicas, c.surge), func(b *testing.B) {
			benchRollout(b, c.replicas, c.surge)
		})
	}
}

func benchRollout(b *testing.B, replicas, surge int) {
	env := newEnv(b)
	p := env.project("roll")
	env.ensureNetwork(b, "orca-"+p)
	repo := gittest.NewRepo(b)
	repo.WriteFile("cluster.toml", "[cluster]\nnode = \""+env.Prefix+"\"\n[reconcile]\ninterval_secs = 3600\n")
	web := func(round int) string {
		s := svc{Name: "web", Image: imageV1, Replicas: count(replicas), Port: testAppPort, Domain: p + ".bench.test",
			Env: map[string]string{"ROUND": fmt.Sprint(round)}, Readiness: healthz,
			Deploy: deploy{Strategy: "rolling", MaxSurge: surge, TimeoutSecs: passingRolloutSecs, DrainSecs: 2}}
		return s.String()
	}
	repo.WriteFile("services/"+p+"/service.toml", web(0))
	repo.CommitPush("round 0")

	ctx := context.Background()
	rt, err := dockerrt.New(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	db, err := state.Open(b.TempDir() + "/state.db")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	git, err := source.New(source.Options{URL: repo.FileURL(), Dir: b.TempDir() + "/repo"})
	if err != nil {
		b.Fatal(err)
	}
	tl := newTimeline()
	// DataDir: the proxy keeps its certificates there (none are issued here).
	router := &timedRouter{r: proxy.New(proxy.Options{DataDir: b.TempDir()}), tl: tl}
	loop := reconcile.New(reconcile.Options{
		Source: &timedSource{src: git, tl: tl}, Runtime: &timedRuntime{rt: rt, tl: tl}, Store: db,
		Router: router, Routes: router, Secrets: &timedSecrets{s: secrets.NewKeyring(nil), tl: tl},
		Statuses: &timedStatuses{tl: tl},
	})
	// The first sync deploys round 0 (untimed).
	if rec := loop.SyncOnce(ctx, "setup"); rec.Result != reconcile.ResultSucceeded {
		b.Fatalf("setup sync: %s %s", rec.Result, rec.Error)
	}

	var sum breakdown
	round := 0
	for b.Loop() {
		b.StopTimer()
		round++
		repo.WriteFile("services/"+p+"/service.toml", web(round))
		repo.CommitPush(fmt.Sprintf("round %d", round))
		tl.take()
		b.StartTimer()
		start := time.Now()
		rec := loop.SyncOnce(ctx, "bench")
		end := time.Now()
		b.StopTimer()
		if rec.Result != reconcile.ResultSucceeded || !strings.Contains(rec.Plan, "1 to update") {
			b.Fatalf("round %d: %s %s, plan %q", round, rec.Result, rec.Error, rec.Plan)
		}
		if n := len(rec.Services); n != 1 || len(rec.Services[0].Started) != replicas || len(rec.Services[0].Removed) != replicas {
			b.Fatalf("round %d: services %+v, want %d started and %d removed", round, rec.Services, replicas, replicas)
		}
		br := measure(tl.take(), start, end)
		b.Logf("round %d: %s", round, br)
		sum.add(br)
		b.StartTimer()
	}
	sum.report(b, round)
}

// breakdown is one sync's times (see BenchmarkRollout).
type breakdown struct {
	total, fetch, load, plan, apply, record   time.Duration
	createStart, ready, drain, stop, dockerEl time.Duration
	own                                       time.Duration
	calls                                     int
}

func measure(spans []span, start, end time.Time) breakdown {
	br := breakdown{total: end.Sub(start)}
	fetched, loaded, applying, routed := start, start, start, end
	for _, s := range spans {
		if s.kind == "fetch" {
			fetched = s.end
		}
		if strings.HasPrefix(s.kind, "docker:") {
			br.calls++
		}
	}
	if t, ok := first(spans, "load"); ok {
		loaded = t
	}
	if t, ok := first(spans, "pending"); ok {
		applying = t
	}
	if t, ok := last(spans, "routes"); ok && t.After(applying) {
		routed = t
	}
	br.fetch, br.load, br.plan = fetched.Sub(start), loaded.Sub(fetched), applying.Sub(loaded)
	br.apply, br.record = routed.Sub(applying), end.Sub(routed)
	br.createStart = union(only(spans, "docker:Run"), start, end)
	br.ready = union(only(spans, "ready"), start, end)
	br.drain = union(only(spans, "drain"), start, end)
	br.stop = union(only(spans, "docker:Stop", "docker:Remove"), start, end)
	var other, external []span
	for _, s := range spans {
		switch {
		case strings.HasPrefix(s.kind, "docker:"):
			external = append(external, s)
			if s.kind != "docker:Run" && s.kind != "docker:Stop" && s.kind != "docker:Remove" {
				other = append(other, s)
			}
		case s.kind == "ready" || s.kind == "drain":
			external = append(external, s)
		}
	}
	br.dockerEl = union(other, start, end)
	br.own = br.total - union(external, start, end)
	return br
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (br breakdown) String() string {
	return fmt.Sprintf("total %.0f ms = fetch %.0f + load %.0f + plan %.0f + apply %.0f + record %.0f; "+
		"create+start %.0f, ready %.0f, drain %.0f, stop+remove %.0f, other Docker %.0f (%d calls); own %.0f ms",
		ms(br.total), ms(br.fetch), ms(br.load), ms(br.plan), ms(br.apply), ms(br.record),
		ms(br.createStart), ms(br.ready), ms(br.drain), ms(br.stop), ms(br.dockerEl), br.calls, ms(br.own))
}

func (br *breakdown) add(o breakdown) {
	br.total += o.total
	br.fetch += o.fetch
	br.load += o.load
	br.plan += o.plan
	br.apply += o.apply
	br.record += o.record
	br.createStart += o.createStart
	br.ready += o.ready
	br.drain += o.drain
	br.stop += o.stop
	br.dockerEl += o.dockerEl
	br.own += o.own
	br.calls += o.calls
}

// report puts the mean of n syncs in the benchmark's metrics.
func (br breakdown) report(b *testing.B, n int) {
	if n == 0 {
		return
	}
	per := func(d time.Duration) float64 { return ms(d) / float64(n) }
	for _, m := range []struct {
		v    time.Duration
		unit string
	}{
		{br.total, "total-ms"}, {br.fetch, "fetch-ms"}, {br.load, "load-ms"}, {br.plan, "plan-ms"},
		{br.apply, "apply-ms"}, {br.record, "record-ms"}, {br.createStart, "create+start-ms"},
		{br.ready, "ready-ms"}, {br.drain, "drain-ms"}, {br.stop, "stop-ms"}, {br.dockerEl, "docker-other-ms"},
		{br.own, "own-ms"},
	} {
		b.ReportMetric(per(m.v), m.unit)
	}
	b.ReportMetric(float64(br.calls)/float64(n), "docker-calls/op")
}
