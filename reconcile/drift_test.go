package reconcile

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/apply/applytest"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/notify"
)

func webN(replicas int, extra string) string {
	return fmt.Sprintf("[[service]]\nname = \"web\"\nimage = \"app:v1\"\nreplicas = %d\n%s\n[service.env]\nMODE = \"prod\"\n[service.deploy]\nmin_ready_secs = 0\ntimeout_secs = 2\n", replicas, extra)
}

func only(t *testing.T, m map[string]string) string {
	t.Helper()
	if len(m) != 1 {
		t.Fatalf("want one container, have %v", m)
	}
	return firstKey(m)
}

// TestDriftInspectsOncePerContainer: a drift check inspects each container
// once; later ticks answer from the cache, and only new containers cost an
// inspect.
func TestDriftInspectsOncePerContainer(t *testing.T) {
	l, src, rt, _ := newTestLoop(t)
	src.write(t, "c1", webN(3, ""))
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if rec := l.SyncOnce(ctx, "tick"); rec.Result != ResultSucceeded {
			t.Fatalf("sync %d: %+v", i, rec)
		}
	}
	if _, err := l.Drift(ctx); err != nil {
		t.Fatal(err)
	}
	if rt.Inspects != 3 {
		t.Fatalf("%d inspects for 3 containers over 5 syncs and a report, want 3", rt.Inspects)
	}
	// A hand-made copy is a new ID: one more inspect, and it is found.
	id := firstKey(rt.IDs("web"))
	src.write(t, "c1", webN(3, `drift = "warn"`))
	l.SyncOnce(ctx, "tick")
	before := rt.Inspects
	rt.HandCopy(id, "MODE", "debug")
	rep, _ := l.Drift(ctx)
	if rt.Inspects != before+1 {
		t.Fatalf("%d inspects after one new container, want %d", rt.Inspects, before+1)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].Kind != diff.KindModified || rep.Findings[0].Field != "env.MODE" {
		t.Fatalf("findings %+v", rep.Findings)
	}
}

// TestDriftWarnHoldsCorrectRepairs: warn reports a hand-made change and
// changes nothing; correct replaces the container and records the repair.
func TestDriftWarnHoldsCorrectRepairs(t *testing.T) {
	l, src, rt, _ := newTestLoop(t)
	ctx := context.Background()
	src.write(t, "c1", webN(1, `drift = "warn"`))
	l.SyncOnce(ctx, "tick")
	copyID := rt.HandCopy(only(t, rt.IDs("web")), "MODE", "debug")
	for i := 0; i < 3; i++ {
		if rec := l.SyncOnce(ctx, "tick"); len(rec.Services) != 0 {
			t.Fatalf("warn changed something: %+v", rec.Services)
		}
	}
	if got := only(t, rt.IDs("web")); got != copyID {
		t.Fatalf("warn replaced the copy")
	}
	st, _ := l.Status(ctx)
	if s := st.Services[0]; s.Sync != SyncOutOfSync || s.Drift != 1 || !strings.Contains(s.Reason, "env.MODE") {
		t.Fatalf("warn status %+v", s)
	}

	// The same spec with drift = "correct": the copy is replaced.
	src.write(t, "c2", webN(1, `drift = "correct"`))
	rec := l.SyncOnce(ctx, "tick")
	if len(rec.Services) != 1 || len(rec.Services[0].Repaired) != 1 || !strings.HasPrefix(rec.Services[0].Repaired[0], "modified ") {
		t.Fatalf("correct: %+v", rec.Services)
	}
	if got := only(t, rt.IDs("web")); got == copyID {
		t.Fatalf("correct kept the hand-made copy")
	}
	if rep, _ := l.Drift(ctx); len(rep.Findings) != 0 {
		t.Fatalf("after the repair: %+v", rep.Findings)
	}
}

// TestDriftWarnRemovedAndStopped: warn leaves a stopped and a removed
// replica alone, and a git change still rolls the service.
func TestDriftWarnRemovedAndStopped(t *testing.T) {
	l, src, rt, _ := newTestLoop(t)
	ctx := context.Background()
	src.write(t, "c1", webN(2, `drift = "warn"`))
	l.SyncOnce(ctx, "tick")
	ids := rt.IDs("web")
	var first string
	for id := range ids {
		if first == "" {
			first = id
			rt.SetState(id, "exited")
		} else {
			rt.Remove(ctx, id)
		}
	}
	rec := l.SyncOnce(ctx, "tick")
	if len(rec.Services) != 0 {
		t.Fatalf("warn changed something: %+v", rec.Services)
	}
	rep, _ := l.Drift(ctx)
	kinds := map[diff.Kind]bool{}
	for _, f := range rep.Findings {
		kinds[f.Kind] = true
	}
	if !kinds[diff.KindStopped] || !kinds[diff.KindRemoved] || len(rep.Findings) != 2 {
		t.Fatalf("findings %+v", rep.Findings)
	}
	src.write(t, "c2", strings.Replace(webN(2, `drift = "warn"`), "app:v1", "app:v2", 1))
	if rec := l.SyncOnce(ctx, "tick"); rec.Result != ResultSucceeded || len(rec.Services) != 1 {
		t.Fatalf("git change under warn: %+v", rec)
	}
	if got := rt.IDs("web"); len(got) != 2 {
		t.Fatalf("after the git change: %v", got)
	}
}

// TestFlapLimit: five replacements within the window are allowed, the sixth
// marks the service Degraded once; a new spec starts afresh.
func TestFlapLimit(t *testing.T) {
	h := newHealer(nil, nil, nil, nil, nil)
	now := time.Unix(1000, 0)
	for i := 0; i < flapLimit; i++ {
		if ok, _ := h.allow("p/web", "h1", "liveness", now.Add(time.Duration(i)*time.Second)); !ok {
			t.Fatalf("replacement %d refused", i+1)
		}
	}
	ok, degraded := h.allow("p/web", "h1", "liveness", now.Add(10*time.Second))
	if ok || !degraded {
		t.Fatalf("sixth replacement: ok %v degraded %v, want refused and degraded", ok, degraded)
	}
	if ok, again := h.allow("p/web", "h1", "liveness", now.Add(11*time.Second)); ok || again {
		t.Fatalf("while degraded: ok %v, announced again %v", ok, again)
	}
	if _, isDeg := h.degradedAt("p/web", "h1"); !isDeg {
		t.Fatal("not Degraded")
	}
	if ok, _ := h.allow("p/web", "h2", "liveness", now.Add(12*time.Second)); !ok {
		t.Fatal("a new spec is still held")
	}
	// Outside the window old replacements no longer count.
	h2 := newHealer(nil, nil, nil, nil, nil)
	for i := 0; i < 20; i++ {
		if ok, _ := h2.allow("p/web", "h1", "crash", now.Add(time.Duration(i)*time.Minute)); !ok {
			t.Fatalf("one replacement a minute refused at %d", i)
		}
	}
}

// TestDriftWarnFollowsGitScale: under warn, git changing the replica count
// scales the service; neither the new replica nor the dropped one is drift.
func TestDriftWarnFollowsGitScale(t *testing.T) {
	l, src, rt, _ := newTestLoop(t)
	ctx := context.Background()
	src.write(t, "c1", webN(2, `drift = "warn"`))
	l.SyncOnce(ctx, "tick")
	for _, n := range []int{3, 1} {
		src.write(t, fmt.Sprintf("c%d", n), webN(n, `drift = "warn"`))
		if rec := l.SyncOnce(ctx, "tick"); rec.Result != ResultSucceeded || len(rec.Services) != 1 || rec.Services[0].Action != "scale" {
			t.Fatalf("scale to %d under warn: %+v", n, rec)
		}
		if got := rt.IDs("web"); len(got) != n {
			t.Fatalf("scaled to %d: %v", n, got)
		}
		if rep, _ := l.Drift(ctx); len(rep.Findings) != 0 {
			t.Fatalf("after scaling to %d: %+v", n, rep.Findings)
		}
	}
}

func kinds(events []notify.Event, k notify.Kind) []notify.Event {
	var out []notify.Event
	for _, e := range events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// TestDriftAndDegradedEvents: drift_detected goes out once per distinct set
// of findings, with no secret value; degraded once when the flap limit is
// reached, and the service is then left alone.
func TestDriftAndDegradedEvents(t *testing.T) {
	ctx := context.Background()
	l, src, rec := newReportingLoop(t)
	rt := l.opts.Runtime.(*applytest.Runtime)
	src.write(t, "c1", webN(2, `drift = "warn"`))
	l.SyncOnce(ctx, "tick")
	ids := rt.IDs("web")
	var a, b string
	for id := range ids {
		if a == "" {
			a = id
		} else {
			b = id
		}
	}
	rt.HandCopy(a, "MODE", "debug")
	l.SyncOnce(ctx, "tick")
	l.SyncOnce(ctx, "tick")
	events, _ := rec.take()
	if d := kinds(events, notify.DriftDetected); len(d) != 1 || d[0].Services[0] != "p/web" || !strings.Contains(d[0].Reason, "env.MODE") {
		t.Fatalf("drift_detected after one change and two ticks: %+v", d)
	}
	rt.SetState(b, "exited")
	l.SyncOnce(ctx, "tick")
	if events, _ := rec.take(); len(kinds(events, notify.DriftDetected)) != 1 {
		t.Fatalf("a new finding set: %+v", events)
	}

	// drift = "correct": each crash is healed, the sixth is not.
	src.write(t, "c2", webN(1, ""))
	l.SyncOnce(ctx, "tick")
	for i := 0; i < flapLimit+2; i++ {
		rt.SetState(only(t, rt.IDs("web")), "exited")
		l.SyncOnce(ctx, "tick")
	}
	events, _ = rec.take()
	if d := kinds(events, notify.Degraded); len(d) != 1 || !strings.Contains(d[0].Reason, "replacements") {
		t.Fatalf("degraded events: %+v", d)
	}
	st, _ := l.Status(ctx)
	if s := st.Services[0]; s.Health != HealthDegraded || !strings.Contains(s.Reason, "replacements") {
		t.Fatalf("status %+v", s)
	}
}

// TestDriftRepairsCountTowardsTheFlapLimit: something that keeps changing a
// container by hand (another tool, or a field the drift check misreads) is
// not fought forever: repairs of modified containers count like crash
// replacements, and the sixth within the window marks the service Degraded.
func TestDriftRepairsCountTowardsTheFlapLimit(t *testing.T) {
	ctx := context.Background()
	l, src, rec := newReportingLoop(t)
	rt := l.opts.Runtime.(*applytest.Runtime)
	src.write(t, "c1", webN(1, ""))
	l.SyncOnce(ctx, "tick")
	repairs := 0
	for i := 0; i < flapLimit+2; i++ {
		rt.HandCopy(only(t, rt.IDs("web")), "MODE", fmt.Sprintf("hand-%d", i))
		if r := l.SyncOnce(ctx, "tick"); len(r.Services) == 1 && len(r.Services[0].Repaired) > 0 {
			repairs++
		}
	}
	if repairs != flapLimit {
		t.Fatalf("%d repairs of a container changed by hand %d times, want %d", repairs, flapLimit+2, flapLimit)
	}
	events, _ := rec.take()
	if d := kinds(events, notify.Degraded); len(d) != 1 {
		t.Fatalf("degraded events: %+v", d)
	}
	st, _ := l.Status(ctx)
	if s := st.Services[0]; s.Health != HealthDegraded {
		t.Fatalf("status %+v", s)
	}
}
