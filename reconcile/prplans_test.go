package reconcile

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/apply/applytest"
	"github.com/orca-sync/orca-sync/source"
	"github.com/orca-sync/orca-sync/state"
)

// prSource is a refSource whose missing refs are gone from the remote;
// during, if set, runs in the middle of each fetch.
type prSource struct {
	*refSource
	during func(ref string)
}

func (s *prSource) FetchRef(ctx context.Context, ref, dir string) (source.Commit, error) {
	if s.during != nil {
		s.during(ref)
	}
	if _, ok := s.refs[ref]; !ok {
		return source.Commit{}, fmt.Errorf("%s does not exist on the remote: %w", ref, source.ErrNoSuchRef)
	}
	return s.refSource.FetchRef(ctx, ref, dir)
}

// newPRLoop is a loop on the state file at path that plans the pull
// requests of refs.
func newPRLoop(t *testing.T, path string, refs map[string]string) (*Loop, *prSource) {
	t.Helper()
	db, err := state.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rs := &prSource{refSource: &refSource{dirSource: &dirSource{dir: t.TempDir()}, refs: refs}}
	return New(Options{Source: rs, Runtime: applytest.NewRuntime(), Store: db, Node: "n1", RefDir: t.TempDir()}), rs
}

func numbers(recs []PRPlanRecord) []int {
	out := make([]int, len(recs))
	for i, r := range recs {
		out[i] = r.Number
	}
	return out
}

func keptPlans(t *testing.T, l *Loop) []PRPlanRecord {
	t.Helper()
	recs, err := l.PRPlans()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestPlanPRKeepsTheLatestPlanOfEachPR(t *testing.T) {
	ctx := context.Background()
	refs := map[string]string{PRRef(1): web("app:v2"), PRRef(2): web("app:v3")}
	l, _ := newPRLoop(t, filepath.Join(t.TempDir(), "state.db"), refs)

	if recs := keptPlans(t, l); len(recs) != 0 {
		t.Fatalf("a new state file keeps plans: %+v", recs)
	}
	p1, err := l.PlanPR(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.PlanPR(ctx, 2); err != nil {
		t.Fatal(err)
	}
	recs := keptPlans(t, l)
	if fmt.Sprint(numbers(recs)) != "[2 1]" {
		t.Fatalf("kept plans = %v, want #2 then #1 (newest first)", numbers(recs))
	}
	r1 := recs[1]
	// The kept text is the text the API serves (PlanRef's, secrets as in a plan).
	if r1.Commit != p1.Commit || r1.Text != p1.Text || !r1.Valid || r1.Changes != p1.Changes || r1.Planned.IsZero() ||
		!strings.Contains(r1.Text, "app:v2") {
		t.Fatalf("kept plan of #1 = %+v, planned %+v", r1, p1)
	}

	// A push to #1 makes it invalid: its new plan replaces the old and
	// comes first.
	refs[PRRef(1)] = web("app:v2") + "replica = 2\n"
	p1, err = l.PlanPR(ctx, 1)
	if err != nil || p1.Valid {
		t.Fatalf("re-plan of #1: %+v, %v", p1, err)
	}
	recs = keptPlans(t, l)
	if fmt.Sprint(numbers(recs)) != "[1 2]" || recs[0].Valid || recs[0].Text != p1.Text || !strings.Contains(recs[0].Text, "unknown key") ||
		recs[0].Planned.Before(recs[1].Planned) {
		t.Fatalf("after re-planning #1: %+v", recs)
	}

	if err := l.ForgetPR(1); err != nil {
		t.Fatal(err)
	}
	if err := l.ForgetPR(99); err != nil {
		t.Fatalf("forgetting a PR never planned: %v", err)
	}
	if recs := keptPlans(t, l); fmt.Sprint(numbers(recs)) != "[2]" {
		t.Fatalf("after forgetting #1: %v", numbers(recs))
	}

	// A head gone from the remote is forgotten too.
	delete(refs, PRRef(2))
	if _, err := l.PlanPR(ctx, 2); !errors.Is(err, source.ErrNoSuchRef) {
		t.Fatalf("plan of a gone head: %v", err)
	}
	if recs := keptPlans(t, l); len(recs) != 0 {
		t.Fatalf("a gone head is still kept: %+v", recs)
	}
}

func TestPRPlansSurviveARestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	refs := map[string]string{PRRef(5): web("app:v2")}
	l, _ := newPRLoop(t, path, refs)
	p, err := l.PlanPR(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	before := keptPlans(t, l)
	if err := l.opts.Store.(*state.DB).Close(); err != nil {
		t.Fatal(err)
	}

	l, _ = newPRLoop(t, path, refs)
	after := keptPlans(t, l)
	if len(after) != 1 || after[0].Number != 5 || after[0].Text != p.Text || after[0].Commit != p.Commit || !after[0].Planned.Equal(before[0].Planned) {
		t.Fatalf("after a restart: %+v, before %+v", after, before)
	}
}

func TestAPRClosedWhileItIsPlannedIsNotKept(t *testing.T) {
	ctx := context.Background()
	l, rs := newPRLoop(t, filepath.Join(t.TempDir(), "state.db"), map[string]string{PRRef(3): web("app:v2")})
	rs.during = func(string) {
		if err := l.ForgetPR(3); err != nil { // the closed webhook, mid-plan
			t.Error(err)
		}
	}
	if p, err := l.PlanPR(ctx, 3); err != nil || !p.Valid {
		t.Fatalf("plan of #3: %+v, %v", p, err)
	}
	if recs := keptPlans(t, l); len(recs) != 0 {
		t.Fatalf("a PR closed while it was planned is kept: %+v", recs)
	}
	rs.during = nil // reopened and planned again: kept
	if _, err := l.PlanPR(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if recs := keptPlans(t, l); fmt.Sprint(numbers(recs)) != "[3]" {
		t.Fatalf("a plan after the close: %v", numbers(recs))
	}
}
