package apply_test

import (
	"context"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/apply/applytest"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

// stopWatch records, at each Stop, whether the Applier still counted the
// container as not through readiness.
type stopWatch struct {
	*applytest.Runtime
	a        *apply.Applier
	awaiting map[string]bool
}

func (s *stopWatch) Stop(ctx context.Context, id string, grace time.Duration) error {
	s.awaiting[id] = s.a.AwaitingReadiness(id)
	return s.Runtime.Stop(ctx, id, grace)
}

// TestAwaitingReadinessUntilRetired: a container that passed readiness is
// ready at once; one that failed it stays not ready until the undo has
// removed it, so status never counts a failed container as ready.
func TestAwaitingReadinessUntilRetired(t *testing.T) {
	rt := &stopWatch{Runtime: applytest.NewRuntime(), awaiting: map[string]bool{}}
	rt.a = apply.New(rt, apply.Options{Node: "n1"})
	ctx := context.Background()
	apply1 := func(image string) apply.Result {
		t.Helper()
		d := &config.Desired{Root: t.TempDir(), Projects: []*config.Project{{Name: "p",
			Services: []*config.Service{testService("web", image, 1, config.StrategyRolling)}}}}
		live, _ := rt.List(ctx)
		rs := rt.a.Apply(ctx, d, diff.Compute(apply.Desire(ctx, rt, d, nil), live, diff.Options{Prune: true}), "rev")
		return onlyResult(t, rs)
	}
	if r := apply1("app:v1"); r.Failed() {
		t.Fatalf("v1: %+v", r)
	}
	for id := range rt.IDs("web") {
		if rt.a.AwaitingReadiness(id) {
			t.Fatalf("%s passed readiness but still counts as awaiting it", id)
		}
	}
	v1 := rt.IDs("web")
	if r := apply1("app:broken"); !r.Failed() {
		t.Fatalf("the broken rollout succeeded: %+v", r)
	}
	var failed []string
	for id, was := range rt.awaiting {
		if _, old := v1[id]; !old {
			failed = append(failed, id)
			if !was {
				t.Errorf("failed container %s counted as through readiness when the undo stopped it", id)
			}
			if rt.a.AwaitingReadiness(id) {
				t.Errorf("failed container %s still tracked after the undo removed it", id)
			}
		}
	}
	if len(failed) == 0 {
		t.Fatalf("the undo stopped no new container: %v", rt.awaiting)
	}
}
