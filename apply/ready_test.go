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
	plan := diff.Compute(apply.Desire(ctx, eng, d, false), nil, diff.Options{})
	r := onlyResult(t, apply.New(eng, apply.Options{}).Apply(ctx, d, plan, "rev"))
	if !r.Failed() || !strings.Contains(r.Error, `not ready within 500ms: readiness probe: exec ["ready"] exited with 3`) {
		t.Errorf("error %q: want the probe's last failure", r.Error)
	}
	if strings.Contains(r.Error, "inspect") {
		t.Errorf("error %q names the interrupted inspect", r.Error)
	}
}
