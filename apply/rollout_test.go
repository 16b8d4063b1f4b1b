package apply

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

// fakeRuntime keeps containers in memory. An image whose name contains
// "broken" starts containers that exit at once. It records the fewest
// serving containers per service seen after any change once that service
// first reached its full count.
type fakeRuntime struct {
	mu         sync.Mutex
	seq        int
	containers map[string]*fakeContainer
	minServing map[string]int
	watch      map[string]int // service key -> replicas to watch for
}

type fakeContainer struct {
	c   diff.Container
	cfg ContainerConfig
}

func newFake() *fakeRuntime {
	return &fakeRuntime{containers: map[string]*fakeContainer{}, minServing: map[string]int{}, watch: map[string]int{}}
}

var _ Runtime = (*fakeRuntime)(nil)

func (f *fakeRuntime) List(context.Context) ([]diff.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []diff.Container
	for _, c := range f.containers {
		out = append(out, c.c)
	}
	return out, nil
}

func (f *fakeRuntime) EnsureNetwork(context.Context, string) error { return nil }
func (f *fakeRuntime) EnsureVolume(context.Context, string) error  { return nil }
func (f *fakeRuntime) ImageID(context.Context, string) (string, error) {
	return "sha256:fake", nil
}
func (f *fakeRuntime) Pull(context.Context, string) error { return nil }

func (f *fakeRuntime) Run(_ context.Context, cfg ContainerConfig) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.c.Name == cfg.Name {
			return "", fmt.Errorf("name %s in use", cfg.Name)
		}
	}
	f.seq++
	id := fmt.Sprintf("c%d", f.seq)
	state := "running"
	if strings.Contains(cfg.Spec.Image, "broken") {
		state = "exited"
	}
	spec := cfg.Spec
	var idx int
	fmt.Sscanf(cfg.Name[strings.LastIndex(cfg.Name, "-")+1:], "%d", &idx)
	f.containers[id] = &fakeContainer{cfg: cfg, c: diff.Container{
		ID: id, Name: cfg.Name, Project: cfg.Labels[LabelProject], Service: cfg.Labels[LabelService],
		Index: idx, Hash: cfg.Labels[LabelHash], State: state, Spec: &spec,
	}}
	f.observe()
	return id, nil
}

func (f *fakeRuntime) Stop(_ context.Context, id string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.containers[id]; c != nil {
		c.c.State = "exited"
	}
	f.observe()
	return nil
}

func (f *fakeRuntime) Remove(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.containers, id)
	return nil
}

func (f *fakeRuntime) Rename(_ context.Context, id, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.containers[id]; c != nil {
		c.c.Name = name
		return nil
	}
	return fmt.Errorf("no such container %s", id)
}

func (f *fakeRuntime) Inspect(_ context.Context, id string) (State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[id]
	if c == nil {
		return State{}, fmt.Errorf("no such container %s", id)
	}
	return State{Running: c.c.State == "running", Status: c.c.State, ExitCode: map[bool]int{true: 0, false: 1}[c.c.State == "running"],
		IPs: map[string]string{diff.NetworkName(c.c.Project): "10.0.0.1"}, StartedAt: time.Now().Add(-time.Hour)}, nil
}

func (f *fakeRuntime) Logs(context.Context, string, int) (string, error) { return "boom", nil }
func (f *fakeRuntime) Exec(context.Context, string, []string) (int, error) {
	return 0, nil
}

// observe records the serving count of watched services (caller holds mu).
func (f *fakeRuntime) observe() {
	counts := map[string]int{}
	for _, c := range f.containers {
		if c.c.Serving() {
			counts[c.c.Project+"/"+c.c.Service]++
		}
	}
	for k := range f.watch {
		if m, ok := f.minServing[k]; !ok || counts[k] < m {
			f.minServing[k] = counts[k]
		}
	}
}

func (f *fakeRuntime) ids(service string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for id, c := range f.containers {
		if c.c.Service == service {
			out[id] = c.cfg.Spec.Image
		}
	}
	return out
}

func testService(name, image string, replicas int, strategy string) *config.Service {
	return &config.Service{
		Project: "p", Name: name, Image: image, Replicas: replicas, Routes: []string{"/"},
		Env: map[string]string{}, Labels: map[string]string{}, RestartPolicy: "no",
		PullPolicy: config.PullIfNotPresent,
		Deploy:     config.Deploy{Strategy: strategy, MaxSurge: 1, Timeout: 2 * time.Second},
	}
}

// sync plans services against the fake and applies the plan.
func syncOnce(t *testing.T, f *fakeRuntime, services ...*config.Service) []Result {
	t.Helper()
	d := &config.Desired{Root: t.TempDir(), Projects: []*config.Project{{Name: "p", Services: services}}}
	ctx := context.Background()
	live, _ := f.List(ctx)
	plan := diff.Compute(Desire(ctx, f, d, false, nil), live, diff.Options{Prune: true})
	return New(f, Options{Node: "n1"}).Apply(ctx, d, plan, "rev")
}

func onlyResult(t *testing.T, rs []Result) Result {
	t.Helper()
	if len(rs) != 1 {
		t.Fatalf("results = %+v", rs)
	}
	return rs[0]
}

func TestRollingNeverDropsBelowReplicas(t *testing.T) {
	f := newFake()
	syncOnce(t, f, testService("web", "app:v1", 3, config.StrategyRolling))
	f.watch["p/web"] = 3
	f.minServing = map[string]int{}
	r := onlyResult(t, syncOnce(t, f, testService("web", "app:v2", 3, config.StrategyRolling)))
	if r.Failed() || len(r.Started) != 3 || len(r.Removed) != 3 {
		t.Fatalf("result = %+v", r)
	}
	if m := f.minServing["p/web"]; m < 3 {
		t.Fatalf("serving containers fell to %d during the rollout", m)
	}
	for _, img := range f.ids("web") {
		if img != "app:v2" {
			t.Fatalf("left %s running", img)
		}
	}
}

func TestFailedRollingKeepsOldContainers(t *testing.T) {
	f := newFake()
	syncOnce(t, f, testService("web", "app:v1", 2, config.StrategyRolling))
	before := f.ids("web")
	r := onlyResult(t, syncOnce(t, f, testService("web", "app:broken", 2, config.StrategyRolling)))
	if !r.Failed() || !strings.Contains(r.Error, "exit code 1") || !strings.Contains(r.Error, "boom") {
		t.Fatalf("error %q should give the exit code and the last log lines", r.Error)
	}
	after := f.ids("web")
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("containers changed: %v -> %v", before, after)
	}
}

func TestFailedRecreateRestoresOldSpec(t *testing.T) {
	f := newFake()
	syncOnce(t, f, testService("db", "app:v1", 1, config.StrategyRecreate))
	r := onlyResult(t, syncOnce(t, f, testService("db", "app:broken", 1, config.StrategyRecreate)))
	if !r.Failed() || !strings.Contains(r.Error, "undone") {
		t.Fatalf("result = %+v", r)
	}
	after := f.ids("db")
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
	f := newFake()
	syncOnce(t, f, testService("web", "app:v1", 3, config.StrategyRolling))
	before := f.ids("web")
	syncOnce(t, f, testService("web", "app:v1", 1, config.StrategyRolling))
	one := f.ids("web")
	if len(one) != 1 {
		t.Fatalf("after scale to 1: %v", one)
	}
	for id := range one {
		if _, ok := before[id]; !ok {
			t.Fatalf("survivor %s was recreated", id)
		}
	}
	syncOnce(t, f, testService("web", "app:v1", 2, config.StrategyRolling))
	two := f.ids("web")
	for id := range one {
		if _, ok := two[id]; !ok || len(two) != 2 {
			t.Fatalf("scale up lost %s: %v", id, two)
		}
	}
}

func TestHealReplacesExited(t *testing.T) {
	f := newFake()
	syncOnce(t, f, testService("web", "app:v1", 2, config.StrategyRolling))
	var victim string
	for id := range f.ids("web") {
		victim = id
		break
	}
	f.containers[victim].c.State = "exited"
	r := onlyResult(t, syncOnce(t, f, testService("web", "app:v1", 2, config.StrategyRolling)))
	if r.Action != diff.ActionHeal || len(r.Started) != 1 || len(r.Removed) != 1 {
		t.Fatalf("result = %+v", r)
	}
	if _, ok := f.ids("web")[victim]; ok {
		t.Fatal("the exited container is still there")
	}
}

func TestDependentsOfAFailedServiceAreNotTouched(t *testing.T) {
	f := newFake()
	db := testService("db", "app:broken", 1, config.StrategyRecreate)
	web := testService("web", "app:v1", 1, config.StrategyRolling)
	web.DependsOn = []string{"db"}
	rs := syncOnce(t, f, db, web)
	var webResult Result
	for _, r := range rs {
		if r.Service == "web" {
			webResult = r
		}
	}
	if webResult.Error != "not applied: dependency db failed" || len(f.ids("web")) != 0 {
		t.Fatalf("web = %+v, containers %v", webResult, f.ids("web"))
	}
}

func TestSecretsRefusedWithoutResolver(t *testing.T) {
	f := newFake()
	s := testService("web", "app:v1", 1, config.StrategyRolling)
	s.Env["PASSWORD"] = "${secrets.DB}"
	r := onlyResult(t, syncOnce(t, f, s))
	if !r.Failed() || !strings.Contains(r.Error, "secrets are not configured") {
		t.Fatalf("result = %+v", r)
	}
	if len(f.ids("web")) != 0 {
		t.Fatal("a container was started with an unresolved secret")
	}
}

// TestForcedReplaceOfUnchangedSpec is a redeploy: the spec is unchanged, so
// the new containers take the names the old ones hold.
func TestForcedReplaceOfUnchangedSpec(t *testing.T) {
	f := newFake()
	web := testService("web", "app:v1", 2, config.StrategyRolling)
	syncOnce(t, f, web)
	before := f.ids("web")
	d := &config.Desired{Root: t.TempDir(), Projects: []*config.Project{{Name: "p", Services: []*config.Service{web}}}}
	ctx := context.Background()
	live, _ := f.List(ctx)
	plan := diff.Compute(Desire(ctx, f, d, false, nil), live, diff.Options{})
	c := &plan.Changes[0]
	for i := range c.Containers {
		c.Containers[i].Replace = true // what a redeploy asks for
	}
	c.Action = diff.ActionUpdate
	r := onlyResult(t, New(f, Options{}).Apply(ctx, d, plan, "rev"))
	if r.Failed() || len(r.Started) != 2 || len(r.Removed) != 2 {
		t.Fatalf("result = %+v", r)
	}
	after := f.ids("web")
	for id := range after {
		if _, ok := before[id]; ok || len(after) != 2 {
			t.Fatalf("containers %v -> %v: want two new ones", before, after)
		}
	}
}
