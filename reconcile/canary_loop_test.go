package reconcile

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/orca-sync/orca-sync/apply/applytest"
	"github.com/orca-sync/orca-sync/notify"
	"github.com/orca-sync/orca-sync/proxy"
	"github.com/orca-sync/orca-sync/state"
)

// fakeCanaryProxy records weights and serves figures the test sets.
type fakeCanaryProxy struct {
	mu      sync.Mutex
	weights map[string]int
	stats   map[string]proxy.RoleStats
}

func (f *fakeCanaryProxy) SetCanaryWeight(project, service string, percent int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.weights[project+"/"+service] = percent
}

func (f *fakeCanaryProxy) Stats(string, string) map[string]proxy.RoleStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]proxy.RoleStats{}
	for k, v := range f.stats {
		out[k] = v
	}
	return out
}

// serve adds requests (and errors) to a role's cumulative figures.
func (f *fakeCanaryProxy) serve(role string, requests, errors uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats[role]
	s.Requests += requests
	s.Errors += errors
	f.stats[role] = s
}

func (f *fakeCanaryProxy) weight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.weights["p/web"]
}

type eventLog struct {
	mu     sync.Mutex
	events []notify.Event
}

func (e *eventLog) Notify(ev notify.Event) {
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.mu.Unlock()
}

func (e *eventLog) kinds() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.events {
		if strings.HasPrefix(string(ev.Kind), "canary_") {
			out = append(out, string(ev.Kind))
		}
	}
	return out
}

func canaryWeb(image, deploy string) string {
	return "[[service]]\nname = \"web\"\nimage = \"" + image + "\"\nreplicas = 2\n[service.deploy]\nstrategy = \"canary\"\nmin_ready_secs = 0\ntimeout_secs = 2\n" + deploy + "\n"
}

func newCanaryLoop(t *testing.T, db *state.DB, src *dirSource, rt *applytest.Runtime) (*Loop, *fakeCanaryProxy, *eventLog) {
	px := &fakeCanaryProxy{weights: map[string]int{}, stats: map[string]proxy.RoleStats{}}
	ev := &eventLog{}
	return New(Options{Source: src, Runtime: rt, Store: db, Node: "n1", Canary: px, Notifier: ev}), px, ev
}

func images(rt *applytest.Runtime) (stable, canary int) {
	cs, _ := rt.List(context.Background())
	for _, c := range cs {
		if c.Role == "canary" {
			canary++
		} else {
			stable++
		}
	}
	return stable, canary
}

// TestCanaryStepsAbortFigures: a canary starts beside the stable set, passes
// a step on min_requests, and a breach at the next aborts it: removed,
// pinned, Failed with the figures; events for each.
func TestCanaryStepsAbortFigures(t *testing.T) {
	ctx := context.Background()
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	src, rt := &dirSource{dir: t.TempDir()}, applytest.NewRuntime()
	l, px, ev := newCanaryLoop(t, db, src, rt)
	deploy := "steps = [{weight = 20, pause_secs = 0}, {weight = 50, pause_secs = 0}]\nanalysis = {min_requests = 20, max_error_rate = 0.1}"
	src.write(t, "c1", canaryWeb("app:v1", deploy))
	l.SyncOnce(ctx, "test")
	stableIDs := rt.IDs("web")
	src.write(t, "c2", canaryWeb("app:v2", deploy))
	if rec := l.SyncOnce(ctx, "test"); rec.Result != ResultSucceeded {
		t.Fatalf("canary start: %+v", rec)
	}
	if s, c := images(rt); s != 2 || c != 1 || px.weight() != 20 {
		t.Fatalf("after start: %d stable, %d canary, weight %d", s, c, px.weight())
	}
	st, _ := l.Status(ctx)
	if s := st.Services[0]; s.Sync != SyncProgressing || s.Canary == nil || s.Canary.Step != 1 || s.Ready != 2 || s.Health != HealthHealthy {
		t.Fatalf("status during canary: %+v %+v", s, s.Canary)
	}
	px.serve("canary", 19, 0)
	l.canaries.tick(ctx)
	if px.weight() != 20 {
		t.Fatalf("passed a step on 19 of min 20 requests")
	}
	px.serve("canary", 1, 0)
	px.serve("stable", 80, 0)
	l.canaries.tick(ctx)
	if px.weight() != 50 {
		t.Fatalf("step 1 not passed at 20 requests: weight %d", px.weight())
	}
	// A sync in between holds the canary: no rollout of the stable set.
	if rec := l.SyncOnce(ctx, "interval"); len(rec.Services) != 0 {
		t.Fatalf("sync during canary changed %+v", rec.Services)
	}
	px.serve("canary", 30, 10)
	l.canaries.tick(ctx)
	if s, c := images(rt); s != 2 || c != 0 || px.weight() != 0 {
		t.Fatalf("after abort: %d stable, %d canary, weight %d", s, c, px.weight())
	}
	st, _ = l.Status(ctx)
	want := "canary aborted at step 2 (50%): error rate 33.3% (10 of 30 requests) is above max_error_rate 10.0%"
	if s := st.Services[0]; s.Sync != SyncFailed || s.Reason != want || s.Canary != nil {
		t.Fatalf("status after abort: %+v, want reason %q", s, want)
	}
	if got := strings.Join(ev.kinds(), ","); got != "canary_started,canary_step,canary_aborted" {
		t.Fatalf("events %s", got)
	}
	for _, e := range ev.events {
		if e.Kind != notify.CanaryAborted {
			continue
		}
		if f, _ := e.Details["canary"].(RoleFigures); f.Requests != 30 || f.Errors != 10 || e.Reason != want {
			t.Fatalf("aborted event: figures %+v, reason %q", f, e.Reason)
		}
	}
	if h, _ := db.History(1); len(h) != 1 || h[0].Trigger != "canary" || h[0].Result != ResultFailed || !strings.Contains(h[0].Error, want) {
		t.Fatalf("history after abort: %+v", h)
	}
	l.SyncOnce(ctx, "interval") // pinned: nothing starts again
	if _, c := images(rt); c != 0 || len(rt.IDs("web")) != 2 || !sameKeys(rt.IDs("web"), stableIDs) {
		t.Fatalf("pin did not hold or stable changed: %v vs %v", rt.IDs("web"), stableIDs)
	}
}

func sameKeys(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// TestCanaryPromoteAndResume: a restarted loop gives the proxy the saved
// weight; passing the last step promotes at the next sync (stable rolled to
// v2, canary removed).
func TestCanaryPromoteAndResume(t *testing.T) {
	ctx := context.Background()
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	src, rt := &dirSource{dir: t.TempDir()}, applytest.NewRuntime()
	l, _, _ := newCanaryLoop(t, db, src, rt)
	deploy := "steps = [{weight = 30, pause_secs = 0}]\nanalysis = {min_requests = 5}"
	src.write(t, "c1", canaryWeb("app:v1", deploy))
	l.SyncOnce(ctx, "test")
	src.write(t, "c2", canaryWeb("app:v2", deploy))
	l.SyncOnce(ctx, "test")
	before, _ := l.Status(ctx)

	l2, px, ev := newCanaryLoop(t, db, src, rt) // a new process on the same state.db
	l2.canaries.restoreWeights()
	if px.weight() != 30 {
		t.Fatalf("restarted loop restored weight %d, want 30", px.weight())
	}
	l2.SyncOnce(ctx, "start")
	after, _ := l2.Status(ctx)
	if b, a := before.Services[0].Canary, after.Services[0].Canary; a == nil || a.Containers[0] != b.Containers[0] || !a.StepStarted.Equal(b.StepStarted) {
		t.Fatalf("resumed canary %+v, before %+v", a, b)
	}
	px.serve("canary", 5, 0)
	l2.canaries.tick(ctx)
	l2.SyncOnce(ctx, "canary")
	if s, c := images(rt); s != 2 || c != 0 {
		t.Fatalf("after promotion: %d stable, %d canary", s, c)
	}
	for _, img := range rt.IDs("web") {
		if img != "app:v2" {
			t.Fatalf("after promotion running %s", img)
		}
	}
	st, _ := l2.Status(ctx)
	if s := st.Services[0]; s.Sync != SyncSynced || s.Canary != nil {
		t.Fatalf("status after promotion: %+v", s)
	}
	if got := strings.Join(ev.kinds(), ","); got != "canary_step,canary_promoted" {
		t.Fatalf("events %s", got)
	}
}
