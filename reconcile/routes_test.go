package reconcile

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/orca-sync/orca-sync/apply/applytest"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/state"
)

// tableRecorder records each whole-table Sync: the running containers it was
// shown.
type tableRecorder struct{ calls [][]string }

func (r *tableRecorder) Sync(_ context.Context, d *config.Desired, live []diff.Container, node string) error {
	var ids []string
	for _, c := range live {
		if c.State == "running" {
			ids = append(ids, c.ID)
		}
	}
	r.calls = append(r.calls, ids)
	return nil
}

// TestRoutesRebuiltAroundApply: the table is rebuilt from what runs before
// the apply (so a restart routes at once) and again after it; a quiet sync
// rebuilds it once; an invalid commit keeps the last valid checkout's routes.
func TestRoutesRebuiltAroundApply(t *testing.T) {
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	src := &dirSource{dir: t.TempDir()}
	rt := applytest.NewRuntime()
	rec := &tableRecorder{}
	l := New(Options{Source: src, Runtime: rt, Store: db, Node: "n1", Routes: rec})
	src.write(t, "c1", web("app:v1"))
	l.SyncOnce(context.Background(), "test")
	if len(rec.calls) != 2 || len(rec.calls[0]) != 0 || len(rec.calls[1]) != 1 {
		t.Fatalf("first sync: table syncs %v, want before (nothing) and after (one container)", rec.calls)
	}
	l.SyncOnce(context.Background(), "test")
	if len(rec.calls) != 3 || len(rec.calls[2]) != 1 {
		t.Fatalf("quiet sync: table syncs %v", rec.calls)
	}
	src.write(t, "c2", web("app:v2")+"replica = 2\n")
	l.SyncOnce(context.Background(), "test")
	if len(rec.calls) != 4 || len(rec.calls[3]) != 1 {
		t.Fatalf("invalid commit: table syncs %v, want one more from the last valid checkout", rec.calls)
	}
}
