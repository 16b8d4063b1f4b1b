package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	dockerrt "github.com/orca-sync/orca-sync/docker"
	"github.com/orca-sync/orca-sync/registryauth"
)

// countingRuntime counts every call that reaches the Docker engine.
type countingRuntime struct {
	apply.Runtime
	calls atomic.Int64
}

func (c *countingRuntime) List(ctx context.Context) ([]diff.Container, error) {
	c.calls.Add(1)
	return c.Runtime.List(ctx)
}

func (c *countingRuntime) ImageID(ctx context.Context, ref string) (string, error) {
	c.calls.Add(1)
	return c.Runtime.ImageID(ctx, ref)
}

func (c *countingRuntime) Inspect(ctx context.Context, id string) (apply.State, error) {
	c.calls.Add(1)
	return c.Runtime.Inspect(ctx, id)
}

func (c *countingRuntime) Pull(ctx context.Context, ref string, auth registryauth.Auth) error {
	c.calls.Add(1)
	return c.Runtime.Pull(ctx, ref, auth)
}

func (c *countingRuntime) EnsureNetwork(ctx context.Context, name string) error {
	c.calls.Add(1)
	return c.Runtime.EnsureNetwork(ctx, name)
}

func (c *countingRuntime) EnsureVolume(ctx context.Context, name string) error {
	c.calls.Add(1)
	return c.Runtime.EnsureVolume(ctx, name)
}

func (c *countingRuntime) Run(ctx context.Context, cfg apply.ContainerConfig) (string, error) {
	c.calls.Add(1)
	return c.Runtime.Run(ctx, cfg)
}

func (c *countingRuntime) Stop(ctx context.Context, id string, grace time.Duration) error {
	c.calls.Add(1)
	return c.Runtime.Stop(ctx, id, grace)
}

func (c *countingRuntime) Remove(ctx context.Context, id string) error {
	c.calls.Add(1)
	return c.Runtime.Remove(ctx, id)
}

func (c *countingRuntime) Logs(ctx context.Context, id string, tail int) (string, error) {
	c.calls.Add(1)
	return c.Runtime.Logs(ctx, id, tail)
}

func (c *countingRuntime) Rename(ctx context.Context, id, name string) error {
	c.calls.Add(1)
	return c.Runtime.Rename(ctx, id, name)
}

func (c *countingRuntime) Exec(ctx context.Context, id string, cmd []string) (int, error) {
	c.calls.Add(1)
	return c.Runtime.Exec(ctx, id, cmd)
}

// planTimes accumulates the time of each step of planOnce.
type planTimes struct{ load, desire, list, compute time.Duration }

// planOnce is what `orca-sync plan` does: load the checkout, derive the
// desired services, list the live containers, compute the plan. times, if
// not nil, gets the time of each step added.
func planOnce(ctx context.Context, rt apply.Runtime, dir string, times *planTimes) (diff.Plan, int, error) {
	if times == nil {
		times = &planTimes{}
	}
	t0 := time.Now()
	d, err := config.Load(dir)
	if err != nil {
		return diff.Plan{}, 0, err
	}
	t1 := time.Now()
	desired := apply.Desire(ctx, rt, d, nil)
	t2 := time.Now()
	live, err := rt.List(ctx)
	if err != nil {
		return diff.Plan{}, 0, err
	}
	t3 := time.Now()
	plan := diff.Compute(desired, live, diff.Options{Prune: d.Cluster.Reconcile.Prune, Node: apply.NodeName("", d)})
	t4 := time.Now()
	times.load += t1.Sub(t0)
	times.desire += t2.Sub(t1)
	times.list += t3.Sub(t2)
	times.compute += t4.Sub(t3)
	return plan, len(live), nil
}

// BenchmarkPlanNoChange100 plans a checkout of 100 services (10 projects of
// 10) against the 100 containers an apply made of it: nothing to change. The
// apply is setup, not measured. Reported: the time of one plan (load,
// desire, list, compute) against the engine's own socket, docker-calls/op
// (Runtime calls: the target is the one list call), and engine-requests/op,
// the HTTP requests one plan sends to the engine, counted by a proxy.
func BenchmarkPlanNoChange100(b *testing.B) {
	env := newEnv(b)
	dir := b.TempDir()
	// prune = false: the plan must not count other people's containers on
	// this engine as removals.
	writeFiles(b, dir, map[string]string{"cluster.toml": "[reconcile]\nprune = false\n"})
	var projects []string
	for i := range 10 {
		p := env.project(fmt.Sprintf("bench%02d", i))
		projects = append(projects, p)
		var ten []svc
		for j := range 10 {
			ten = append(ten, svc{Name: fmt.Sprintf("svc%02d", j), Image: imageV1, Env: map[string]string{"N": fmt.Sprint(i*10 + j)},
				Deploy: deploy{TimeoutSecs: 120, Keys: []string{"min_ready_secs = 0"}}})
		}
		writeProject(b, dir, p, services(ten...))
	}
	// The project networks are made beforehand: apply lets every service of
	// a project create the network at once and removes the duplicates after,
	// which for 100 services runs the engine out of address pools ("could not
	// find an available, non-overlapping IPv4 address pool").
	for _, p := range projects {
		env.ensureNetwork(b, "orca-"+p)
	}
	orca := newOrca(b, env, dir)
	start := time.Now()
	if r := orca.run("apply", dir); r.Code != 0 {
		b.Fatalf("setup apply failed:\n%s", r)
	}
	n := 0
	for _, p := range projects {
		for _, c := range env.mustContainers(b, p, "") {
			if c.State == "running" {
				n++
			}
		}
	}
	if n != 100 {
		b.Fatalf("setup: %d running containers, want 100", n)
	}
	b.Logf("setup: 100 services applied in %v", time.Since(start).Round(time.Millisecond))

	ctx := context.Background()
	rt, err := dockerrt.New(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	crt := &countingRuntime{Runtime: rt}
	var (
		plan  diff.Plan
		live  int
		times planTimes
	)
	for b.Loop() {
		plan, live, err = planOnce(ctx, crt, dir, &times)
		if err != nil {
			b.Fatal(err)
		}
	}
	calls := float64(crt.calls.Load()) / float64(b.N)
	b.ReportMetric(calls, "docker-calls/op")
	b.ReportMetric(float64(live), "live-containers")
	perOp := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N) }
	b.ReportMetric(perOp(times.load), "load-ns/op")
	b.ReportMetric(perOp(times.list), "list-ns/op")
	b.ReportMetric(perOp(times.desire+times.compute), "desire+compute-ns/op")

	mine := 0
	for _, c := range plan.Changes {
		if !slices.Contains(projects, c.Project) {
			continue // someone else's, left alone with prune off
		}
		mine++
		if c.Action != diff.ActionNone {
			b.Errorf("plan: %s %s (%s), want no change", c.Key(), c.Action, c.Reason)
		}
	}
	if mine != 100 {
		b.Errorf("plan covers %d of the 100 services", mine)
	}
	if calls != 1 {
		b.Errorf("%.1f Docker calls per plan, want the one list call", calls)
	}

	// The same plan once more through a counting proxy, untimed: the HTTP
	// requests that reach the engine.
	b.Setenv("DOCKER_HOST", orca.docker.host)
	prt, err := dockerrt.New(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer prt.Close()
	orca.docker.takeRequests() // the ping of dockerrt.New is connection setup
	if _, _, err := planOnce(ctx, prt, dir, nil); err != nil {
		b.Fatal(err)
	}
	reqs := orca.docker.takeRequests()
	total := 0
	for _, k := range slices.Sorted(maps.Keys(reqs)) {
		total += reqs[k]
	}
	b.ReportMetric(float64(total), "engine-requests/op")
	b.Logf("engine requests of one plan: %v", reqs)
	if perOp := b.Elapsed() / time.Duration(b.N); perOp > 50*time.Millisecond {
		b.Logf("%v per plan: over the 50 ms target", perOp)
	}
}
