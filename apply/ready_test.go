package apply_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/apply/applytest"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

// stallingEngine answers the first inspects, then, like an engine under
// load, holds every later one until the caller's deadline; its exec probe
// always fails.
type stallingEngine struct {
	*applytest.Runtime
	inspects atomic.Int32
}

func (e *stallingEngine) Inspect(ctx context.Context, id string) (apply.State, error) {
	if e.inspects.Add(1) > 2 {
		<-ctx.Done()
		return apply.State{}, fmt.Errorf("inspect container %s: %w", id, ctx.Err())
	}
	return e.Runtime.Inspect(ctx, id)
}

func (e *stallingEngine) Exec(context.Context, string, []string) (int, error) { return 3, nil }

// When the rollout's deadline cuts a slow Docker call short, the failure
// names the probe that kept failing, not the call the deadline interrupted.
func TestTimedOutRolloutNamesTheLastProbeFailure(t *testing.T) {
	eng := &stallingEngine{Runtime: applytest.NewRuntime()}
	s := testService("web", "app:v1", 1, config.StrategyRolling)
	s.Deploy.Timeout = 500 * time.Millisecond
	s.Readiness = &config.Probe{Type: config.ProbeExec, Command: []string{"ready"}, Interval: 10 * time.Millisecond, Timeout: time.Second}
	d := &config.Desired{Root: t.TempDir(), Projects: []*config.Project{{Name: "p", Services: []*config.Service{s}}}}
	ctx := context.Background()
	plan := diff.Compute(apply.Desire(ctx, eng, d, nil), nil, diff.Options{})
	r := onlyResult(t, apply.New(eng, apply.Options{}).Apply(ctx, d, plan, "rev"))
	if !r.Failed() || !strings.Contains(r.Error, `not ready within 500ms: readiness probe: exec ["ready"] exited with 3`) {
		t.Errorf("error %q: want the probe's last failure", r.Error)
	}
	if strings.Contains(r.Error, "inspect") {
		t.Errorf("error %q names the interrupted inspect", r.Error)
	}
}

// slowStartEngine is an engine under load: its create-and-start call returns
// only when the caller's deadline has passed.
type slowStartEngine struct{ *applytest.Runtime }

func (e *slowStartEngine) Run(ctx context.Context, cfg apply.ContainerConfig) (string, error) {
	<-ctx.Done()
	return "", fmt.Errorf("start container %s: %w", cfg.Name, ctx.Err())
}

// When the rollout's deadline passes during Docker's create or start, the
// failure says the container was not ready within timeout_secs, not that a
// context was cancelled.
func TestTimedOutStartIsNotReady(t *testing.T) {
	eng := &slowStartEngine{Runtime: applytest.NewRuntime()}
	s := testService("web", "app:v1", 1, config.StrategyRolling)
	s.Deploy.Timeout = 300 * time.Millisecond
	d := &config.Desired{Root: t.TempDir(), Projects: []*config.Project{{Name: "p", Services: []*config.Service{s}}}}
	ctx := context.Background()
	plan := diff.Compute(apply.Desire(ctx, eng, d, nil), nil, diff.Options{})
	r := onlyResult(t, apply.New(eng, apply.Options{}).Apply(ctx, d, plan, "rev"))
	if !r.Failed() || !strings.Contains(r.Error, "not ready within 300ms: Docker had not created and started it yet") {
		t.Errorf("error %q: want not ready within timeout_secs", r.Error)
	}
	if strings.Contains(r.Error, "context deadline exceeded") {
		t.Errorf("error %q names the cancelled call", r.Error)
	}
}
