package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

// recordingScheduler fails every change it is handed, as a Swarm rollback.
type recordingScheduler struct{ plans []diff.Plan }

func (r *recordingScheduler) Schedule(_ context.Context, _ *config.Desired, plan diff.Plan, _ string, watch func([]diff.Container)) []apply.Result {
	r.plans = append(r.plans, plan)
	watch(nil)
	var out []apply.Result
	for _, c := range plan.Changes {
		if c.Action != diff.ActionNone {
			out = append(out, apply.Result{Project: c.Project, Service: c.Service, Action: c.Action, Error: "swarm rolled the update back: boom"})
		}
	}
	return out
}

// TestSchedulerCarriesOutThePlan: with a Scheduler the plan goes to it, not
// to the container runtime, and what it fails is a failed, pinned rollout.
func TestSchedulerCarriesOutThePlan(t *testing.T) {
	sch := &recordingScheduler{}
	l, src, rt, db := newTestLoop(t, func(o *Options) { o.Scheduler, o.Engine = sch, config.EngineSwarm })
	os.WriteFile(filepath.Join(src.dir, "cluster.toml"), []byte("[cluster]\nengine = \"swarm\"\n"), 0o644)
	src.write(t, "c1", web("app:v1"))
	rec := l.SyncOnce(context.Background(), "test")
	if len(sch.plans) != 1 || sch.plans[0].Count(diff.ActionCreate) != 1 {
		t.Fatalf("scheduler got %+v", sch.plans)
	}
	if ids := rt.IDs("web"); len(ids) != 0 {
		t.Fatalf("the container runtime ran %v", ids)
	}
	if rec.Result != ResultFailed || !strings.Contains(rec.Error, "rolled the update back") {
		t.Fatalf("record %+v", rec)
	}
	if pins, _ := db.Pins(); pins["p/web"].Hash == "" {
		t.Fatalf("no pin: %v", pins)
	}
}

// TestEngineChangeIsRefused: a commit naming another engine than the one
// this process runs is invalid until a restart.
func TestEngineChangeIsRefused(t *testing.T) {
	l, src, rt, _ := newTestLoop(t)
	os.WriteFile(filepath.Join(src.dir, "cluster.toml"), []byte("[cluster]\nengine = \"swarm\"\n"), 0o644)
	src.write(t, "c1", web("app:v1"))
	rec := l.SyncOnce(context.Background(), "test")
	if rec.Result != ResultInvalid || !strings.Contains(rec.Error, "restart orca-sync serve") {
		t.Fatalf("record %+v", rec)
	}
	if ids := rt.IDs("web"); len(ids) != 0 {
		t.Fatalf("containers started: %v", ids)
	}
}
