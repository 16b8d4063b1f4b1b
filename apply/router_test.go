package apply_test

import (
	"context"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/apply/applytest"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/routing"
)

// recordingRouter keeps the routed set and checks, on every route-out, that
// the container is still running: it must leave the proxy before it stops.
type recordingRouter struct {
	t      *testing.T
	f      *applytest.Runtime
	mu     sync.Mutex
	routed map[string]bool
	// minRouted is the fewest routed targets seen after the first route-in.
	minRouted int
}

func (r *recordingRouter) RouteIn(_ *diff.Service, t routing.Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t.Addr == "" {
		r.t.Errorf("routed in %s without an address", t.ContainerID)
	}
	r.routed[t.ContainerID] = true
}

func (r *recordingRouter) RouteOut(ctx context.Context, _, _ string, t routing.Target) {
	r.mu.Lock()
	wasRouted := r.routed[t.ContainerID]
	r.mu.Unlock()
	live, _ := r.f.List(ctx)
	for _, c := range live {
		if wasRouted && c.ID == t.ContainerID && c.State != "running" {
			r.t.Errorf("%s routed out after it stopped (%s)", c.Name, c.State)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.routed[t.ContainerID] {
		delete(r.routed, t.ContainerID)
		r.minRouted = min(r.minRouted, len(r.routed))
	}
}

func (r *recordingRouter) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for id := range r.routed {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func routedSvc(image string, replicas int, strategy string) *config.Service {
	s := testService("web", image, replicas, strategy)
	s.Port, s.Domains = 8080, []string{"web.test"}
	return s
}

func applyWith(t *testing.T, f *applytest.Runtime, r apply.Router, s *config.Service) []apply.Result {
	t.Helper()
	d := &config.Desired{Root: t.TempDir(), Projects: []*config.Project{{Name: "p", Services: []*config.Service{s}}}}
	ctx := context.Background()
	live, _ := f.List(ctx)
	plan := diff.Compute(apply.Desire(ctx, f, d, nil), live, diff.Options{Prune: true})
	return apply.New(f, apply.Options{Node: "n1", Router: r}).Apply(ctx, d, plan, "rev")
}

func running(t *testing.T, f *applytest.Runtime) []string {
	live, _ := f.List(context.Background())
	var out []string
	for _, c := range live {
		if c.State == "running" {
			out = append(out, c.ID)
		}
	}
	sort.Strings(out)
	return out
}

func TestRollingRoutesInBeforeRoutingOut(t *testing.T) {
	f := applytest.NewRuntime()
	r := &recordingRouter{t: t, f: f, routed: map[string]bool{}, minRouted: 1 << 30}
	applyWith(t, f, r, routedSvc("app:v1", 2, config.StrategyRolling))
	if got := r.ids(); !slices.Equal(got, running(t, f)) || len(got) != 2 {
		t.Fatalf("routed %v, running %v", got, running(t, f))
	}
	if res := onlyResult(t, applyWith(t, f, r, routedSvc("app:v2", 2, config.StrategyRolling))); res.Failed() {
		t.Fatal(res.Error)
	}
	if got := r.ids(); !slices.Equal(got, running(t, f)) {
		t.Fatalf("after rolling: routed %v, running %v", got, running(t, f))
	}
	if r.minRouted < 2 {
		t.Errorf("routed targets fell to %d during a rolling update of 2", r.minRouted)
	}
}

func TestUndoneRecreateRoutesTheRestoredContainers(t *testing.T) {
	f := applytest.NewRuntime()
	r := &recordingRouter{t: t, f: f, routed: map[string]bool{}, minRouted: 1 << 30}
	applyWith(t, f, r, routedSvc("app:v1", 1, config.StrategyRecreate))
	res := onlyResult(t, applyWith(t, f, r, routedSvc("app:broken", 1, config.StrategyRecreate)))
	if !res.Failed() {
		t.Fatal("a broken recreate succeeded")
	}
	if got := r.ids(); len(got) != 1 || !slices.Equal(got, running(t, f)) {
		t.Fatalf("after undo: routed %v, running %v", got, running(t, f))
	}
}
