package apply_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/apply/applytest"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

func withHooks(s *config.Service, pre, post []string) *config.Service {
	s.Hooks = &config.Hooks{}
	if pre != nil {
		s.Hooks.PreDeploy = &config.Hook{Command: pre, Timeout: time.Minute}
	}
	if post != nil {
		s.Hooks.PostDeploy = &config.Hook{Command: post, Timeout: time.Minute}
	}
	return s
}

func oneOffsOf(t *testing.T, f *applytest.Runtime) []diff.Container {
	t.Helper()
	cs, err := f.ListOneOffs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestFailingPreDeployStartsNothing: a pre_deploy that exits 3 leaves the
// old containers as they were, starts no container of the new spec, names
// the exit code and the hook's output, and leaves no hook container.
func TestFailingPreDeployStartsNothing(t *testing.T) {
	f := applytest.NewRuntime()
	syncOnce(t, f, testService("web", "app:v1", 2, config.StrategyRolling))
	before := f.IDs("web")
	r := onlyResult(t, syncOnce(t, f, withHooks(testService("web", "app:v2", 2, config.StrategyRolling), []string{"exit", "3"}, nil)))
	if !r.Failed() || !strings.Contains(r.Error, "pre_deploy hook exited with code 3; output: boom") || len(r.Started) != 0 {
		t.Fatalf("result = %+v, want the hook's exit code and output, nothing started", r)
	}
	if after := f.IDs("web"); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("containers changed: %v -> %v", before, after)
	}
	if left := oneOffsOf(t, f); len(left) > 0 {
		t.Fatalf("hook containers left: %+v", left)
	}
}

// TestHooksRunOnlyForNewSpecs: pre_deploy runs before a create and an
// update, not for a scale; post_deploy's failure keeps the new version.
func TestHooksRunOnlyForNewSpecs(t *testing.T) {
	f := applytest.NewRuntime()
	r := onlyResult(t, syncOnce(t, f, withHooks(testService("web", "app:v1", 1, config.StrategyRolling), []string{"exit", "0"}, nil)))
	if r.Failed() || len(r.Started) != 1 {
		t.Fatalf("create: %+v", r)
	}
	// A scale with a failing pre_deploy: the hook does not run, so it passes.
	r = onlyResult(t, syncOnce(t, f, withHooks(testService("web", "app:v1", 2, config.StrategyRolling), []string{"exit", "3"}, nil)))
	if r.Failed() || r.Action != diff.ActionScale {
		t.Fatalf("scale ran the hook: %+v", r)
	}
	r = onlyResult(t, syncOnce(t, f, withHooks(testService("web", "app:v2", 2, config.StrategyRolling), nil, []string{"exit", "5"})))
	if !r.Failed() || !strings.Contains(r.Error, "post_deploy hook exited with code 5") {
		t.Fatalf("update with a failing post_deploy: %+v", r)
	}
	for _, img := range f.IDs("web") {
		if img != "app:v2" {
			t.Fatalf("post_deploy's failure undid the rollout: %v", f.IDs("web"))
		}
	}
}

// TestSweepRemovesLeftOneOffs: a hook container no run of this process
// owns is removed; a post_deploy one is run again.
func TestSweepRemovesLeftOneOffs(t *testing.T) {
	f := applytest.NewRuntime()
	svc := withHooks(testService("web", "app:v1", 1, config.StrategyRolling), nil, []string{"exit", "0"})
	syncOnce(t, f, svc)
	d := &config.Desired{Root: t.TempDir(), Projects: []*config.Project{{Name: "p", Services: []*config.Service{svc}}}}
	ctx := context.Background()
	services := apply.Desire(ctx, f, d, nil)
	left := apply.ContainerConfig{Name: "p-web-post-deploy-1", Spec: services[0].Spec, Labels: map[string]string{
		apply.LabelManaged: "true", apply.LabelProject: "p", apply.LabelService: "web",
		apply.LabelRole: apply.RoleHook, apply.LabelHook: config.HookPostDeploy, apply.LabelHash: services[0].Hash}}
	if _, err := f.Run(ctx, left); err != nil {
		t.Fatal(err)
	}
	a := apply.New(f, apply.Options{})
	removed, err := a.SweepOneOffs(ctx, "")
	if err != nil || len(removed) != 1 || len(oneOffsOf(t, f)) != 0 {
		t.Fatalf("sweep removed %+v (%v); left %+v", removed, err, oneOffsOf(t, f))
	}
	rs := a.RerunPostDeploy(ctx, d, "rev", services, removed)
	if len(rs) != 1 || rs[0].Failed() || len(oneOffsOf(t, f)) != 0 {
		t.Fatalf("post_deploy run again: %+v", rs)
	}
}

// sweepCounting counts the one-off lists of a fake engine and can fail its
// removals.
type sweepCounting struct {
	*applytest.Runtime
	lists      int
	failRemove bool
}

func (s *sweepCounting) ListOneOffs(ctx context.Context) ([]diff.Container, error) {
	s.lists++
	return s.Runtime.ListOneOffs(ctx)
}

func (s *sweepCounting) Remove(ctx context.Context, id string) error {
	if s.failRemove {
		return errors.New("engine busy")
	}
	return s.Runtime.Remove(ctx, id)
}

// The sweep lists one-off containers only while one may have been left:
// at its first run, and after a failed removal, until a sweep succeeds.
func TestSweepListsOnlyWhenOneMayBeLeft(t *testing.T) {
	f := &sweepCounting{Runtime: applytest.NewRuntime(), failRemove: true}
	ctx := context.Background()
	left := apply.ContainerConfig{Name: "p-web-job-1", Labels: map[string]string{
		apply.LabelManaged: "true", apply.LabelProject: "p", apply.LabelService: "web", apply.LabelRole: apply.RoleJob}}
	if _, err := f.Run(ctx, left); err != nil {
		t.Fatal(err)
	}
	a := apply.New(f, apply.Options{})
	if _, err := a.SweepOneOffs(ctx, ""); err == nil || f.lists != 1 {
		t.Fatalf("first sweep with a failing removal: err %v, %d lists; want an error and 1 list", err, f.lists)
	}
	f.failRemove = false
	removed, err := a.SweepOneOffs(ctx, "")
	if err != nil || len(removed) != 1 || f.lists != 2 {
		t.Fatalf("sweep after the failure: removed %+v (%v), %d lists; want the left one and 2 lists", removed, err, f.lists)
	}
	if removed, err := a.SweepOneOffs(ctx, ""); err != nil || len(removed) != 0 || f.lists != 2 {
		t.Fatalf("sweep after a clean one: removed %+v (%v), %d lists; want no list", removed, err, f.lists)
	}
}
