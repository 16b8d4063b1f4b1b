package apply_test

import (
	"context"
	"fmt"
	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/apply/applytest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

func testService(name, image string, replicas int, strategy string) *config.Service {
	return &config.Service{
		Project: "p", Name: name, Image: image, Replicas: replicas, Routes: []string{"/"},
		Env: map[string]string{}, Labels: map[string]string{}, RestartPolicy: "no",
		PullPolicy: config.PullIfNotPresent,
		Deploy:     config.Deploy{Strategy: strategy, MaxSurge: 1, Timeout: 2 * time.Second},
	}
}

// sync plans services against the fake and applies the plan.
func syncOnce(t *testing.T, f *applytest.Runtime, services ...*config.Service) []apply.Result {
	t.Helper()
	d := &config.Desired{Root: t.TempDir(), Projects: []*config.Project{{Name: "p", Services: services}}}
	ctx := context.Background()
	live, _ := f.List(ctx)
	plan := diff.Compute(apply.Desire(ctx, f, d, nil), live, diff.Options{Prune: true})
	return apply.New(f, apply.Options{Node: "n1"}).Apply(ctx, d, plan, "rev")
}

func onlyResult(t *testing.T, rs []apply.Result) apply.Result {
	t.Helper()
	if len(rs) != 1 {
		t.Fatalf("results = %+v", rs)
	}
	return rs[0]
}

func TestRollingNeverDropsBelowReplicas(t *testing.T) {
	f := applytest.NewRuntime()
	syncOnce(t, f, testService("web", "app:v1", 3, config.StrategyRolling))
	f.Watch["p/web"] = true
	f.MinServing = map[string]int{}
	r := onlyResult(t, syncOnce(t, f, testService("web", "app:v2", 3, config.StrategyRolling)))
	if r.Failed() || len(r.Started) != 3 || len(r.Removed) != 3 {
		t.Fatalf("result = %+v", r)
	}
	if m := f.MinServing["p/web"]; m < 3 {
		t.Fatalf("serving containers fell to %d during the rollout", m)
	}
	for _, img := range f.IDs("web") {
		if img != "app:v2" {
			t.Fatalf("left %s running", img)
		}
	}
}

func TestFailedRollingKeepsOldContainers(t *testing.T) {
	f := applytest.NewRuntime()
	syncOnce(t, f, testService("web", "app:v1", 2, config.StrategyRolling))
	before := f.IDs("web")
	r := onlyResult(t, syncOnce(t, f, testService("web", "app:broken", 2, config.StrategyRolling)))
	if !r.Failed() || !strings.Contains(r.Error, "exit code 1") || !strings.Contains(r.Error, "boom") {
		t.Fatalf("error %q should give the exit code and the last log lines", r.Error)
	}
	after := f.IDs("web")
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("containers changed: %v -> %v", before, after)
	}
}

func TestFailedRecreateRestoresOldSpec(t *testing.T) {
	f := applytest.NewRuntime()
	syncOnce(t, f, testService("db", "app:v1", 1, config.StrategyRecreate))
	r := onlyResult(t, syncOnce(t, f, testService("db", "app:broken", 1, config.StrategyRecreate)))
	if !r.Failed() || !strings.Contains(r.Error, "undone") {
		t.Fatalf("result = %+v", r)
	}
	after := f.IDs("db")
	if len(after) != 1 {
		t.Fatalf("containers after undo = %v", after)
	}
	for _, img := range after {
		if img != "app:v1" {
			t.Fatalf("undo started %s, want the old app:v1", img)
		}
	}
}

func TestScaleKeepsSurvivors(t *testing.T) {
	f := applytest.NewRuntime()
	syncOnce(t, f, testService("web", "app:v1", 3, config.StrategyRolling))
	before := f.IDs("web")
	syncOnce(t, f, testService("web", "app:v1", 1, config.StrategyRolling))
	one := f.IDs("web")
	if len(one) != 1 {
		t.Fatalf("after scale to 1: %v", one)
	}
	for id := range one {
		if _, ok := before[id]; !ok {
			t.Fatalf("survivor %s was recreated", id)
		}
	}
	syncOnce(t, f, testService("web", "app:v1", 2, config.StrategyRolling))
	two := f.IDs("web")
	for id := range one {
		if _, ok := two[id]; !ok || len(two) != 2 {
			t.Fatalf("scale up lost %s: %v", id, two)
		}
	}
}

func TestHealReplacesExited(t *testing.T) {
	f := applytest.NewRuntime()
	syncOnce(t, f, testService("web", "app:v1", 2, config.StrategyRolling))
	var victim string
	for id := range f.IDs("web") {
		victim = id
		break
	}
	f.SetState(victim, "exited")
	r := onlyResult(t, syncOnce(t, f, testService("web", "app:v1", 2, config.StrategyRolling)))
	if r.Action != diff.ActionHeal || len(r.Started) != 1 || len(r.Removed) != 1 {
		t.Fatalf("result = %+v", r)
	}
	if _, ok := f.IDs("web")[victim]; ok {
		t.Fatal("the exited container is still there")
	}
}

func TestDependentsOfAFailedServiceAreNotTouched(t *testing.T) {
	f := applytest.NewRuntime()
	db := testService("db", "app:broken", 1, config.StrategyRecreate)
	web := testService("web", "app:v1", 1, config.StrategyRolling)
	web.DependsOn = []string{"db"}
	rs := syncOnce(t, f, db, web)
	var webResult apply.Result
	for _, r := range rs {
		if r.Service == "web" {
			webResult = r
		}
	}
	if webResult.Error != "not applied: dependency db failed" || len(f.IDs("web")) != 0 {
		t.Fatalf("web = %+v, containers %v", webResult, f.IDs("web"))
	}
}

func TestSecretsRefusedWithoutResolver(t *testing.T) {
	f := applytest.NewRuntime()
	s := testService("web", "app:v1", 1, config.StrategyRolling)
	s.Env["PASSWORD"] = "${secrets.DB}"
	r := onlyResult(t, syncOnce(t, f, s))
	if !r.Failed() || !strings.Contains(r.Error, "${secrets.DB}: the secrets of this checkout were not resolved") {
		t.Fatalf("result = %+v", r)
	}
	if len(f.IDs("web")) != 0 {
		t.Fatal("a container was started with an unresolved secret")
	}
}

// TestForcedReplaceOfUnchangedSpec is a redeploy: the spec is unchanged, so
// the new containers take the names the old ones hold.
func TestForcedReplaceOfUnchangedSpec(t *testing.T) {
	f := applytest.NewRuntime()
	web := testService("web", "app:v1", 2, config.StrategyRolling)
	syncOnce(t, f, web)
	before := f.IDs("web")
	d := &config.Desired{Root: t.TempDir(), Projects: []*config.Project{{Name: "p", Services: []*config.Service{web}}}}
	ctx := context.Background()
	live, _ := f.List(ctx)
	plan := diff.Compute(apply.Desire(ctx, f, d, nil), live, diff.Options{})
	c := &plan.Changes[0]
	for i := range c.Containers {
		c.Containers[i].Replace = true // what a redeploy asks for
	}
	c.Action = diff.ActionUpdate
	r := onlyResult(t, apply.New(f, apply.Options{}).Apply(ctx, d, plan, "rev"))
	if r.Failed() || len(r.Started) != 2 || len(r.Removed) != 2 {
		t.Fatalf("result = %+v", r)
	}
	after := f.IDs("web")
	for id := range after {
		if _, ok := before[id]; ok || len(after) != 2 {
			t.Fatalf("containers %v -> %v: want two new ones", before, after)
		}
	}
}

// gate counts the calls in flight at once: each call waits at the gate
// until want calls are inside, or until patience runs out (a rollout that
// makes its calls one after another then still ends, with a peak of 1).
type gate struct {
	want     int
	patience time.Duration
	mu       sync.Mutex
	in, peak int
	full     chan struct{}
}

func newGate(want int) *gate {
	return &gate{want: want, patience: 2 * time.Second, full: make(chan struct{})}
}

func (g *gate) pass() {
	g.mu.Lock()
	g.in++
	g.peak = max(g.peak, g.in)
	full := g.full
	if g.in == g.want {
		close(full)
		g.full = make(chan struct{}) // for the next batch
	}
	g.mu.Unlock()
	select {
	case <-full:
	case <-time.After(g.patience):
	}
	g.mu.Lock()
	g.in--
	g.mu.Unlock()
}

// surgeRuntime holds every Run and Stop at a gate, and records the order
// of the runs and stops.
type surgeRuntime struct {
	*applytest.Runtime
	runs, stops *gate
	mu          sync.Mutex
	trail       []string
}

func (s *surgeRuntime) note(what string) {
	s.mu.Lock()
	s.trail = append(s.trail, what)
	s.mu.Unlock()
}

func (s *surgeRuntime) Run(ctx context.Context, cfg apply.ContainerConfig) (string, error) {
	s.runs.pass()
	s.note("run " + cfg.Spec.Image)
	return s.Runtime.Run(ctx, cfg)
}

func (s *surgeRuntime) Stop(ctx context.Context, id string, grace time.Duration) error {
	s.stops.pass()
	s.note("stop")
	return s.Runtime.Stop(ctx, id, grace)
}

// TestRollingStartsMaxSurgeAtOnce: with max_surge = 2, a rolling update of
// 4 replicas creates and starts 2 new containers side by side, stops 2 old
// ones side by side once those are ready, and never starts a batch before
// the previous batch's old ones are gone; capacity never drops below 4.
func TestRollingStartsMaxSurgeAtOnce(t *testing.T) {
	f := applytest.NewRuntime()
	syncOnce(t, f, testService("web", "app:v1", 4, config.StrategyRolling))
	f.Watch["p/web"] = true
	sr := &surgeRuntime{Runtime: f, runs: newGate(2), stops: newGate(2)}
	v2 := testService("web", "app:v2", 4, config.StrategyRolling)
	v2.Deploy.MaxSurge = 2
	v2.Deploy.Timeout = time.Minute
	d := &config.Desired{Root: t.TempDir(), Projects: []*config.Project{{Name: "p", Services: []*config.Service{v2}}}}
	ctx := context.Background()
	live, _ := f.List(ctx)
	plan := diff.Compute(apply.Desire(ctx, sr, d, nil), live, diff.Options{Prune: true})
	r := onlyResult(t, apply.New(sr, apply.Options{Node: "n1"}).Apply(ctx, d, plan, "rev"))
	if r.Failed() || len(r.Started) != 4 || len(r.Removed) != 4 {
		t.Fatalf("result = %+v", r)
	}
	if sr.runs.peak != 2 || sr.stops.peak != 2 {
		t.Errorf("at most %d creates and %d stops at once, want 2 and 2 (max_surge); order: %v", sr.runs.peak, sr.stops.peak, sr.trail)
	}
	want := []string{"run app:v2", "run app:v2", "stop", "stop", "run app:v2", "run app:v2", "stop", "stop"}
	if !slices.Equal(sr.trail, want) {
		t.Errorf("order %v, want %v", sr.trail, want)
	}
	if m := f.MinServing["p/web"]; m < 4 {
		t.Errorf("serving containers fell to %d during the rollout", m)
	}
}
