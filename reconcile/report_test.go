package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/orca-sync/orca-sync/notify"
	"github.com/orca-sync/orca-sync/source"
)

// recorder is a Notifier and CommitStatuses that keeps what it is told.
type recorder struct {
	mu       sync.Mutex
	events   []notify.Event
	statuses []string // "sha state description"
}

func (r *recorder) Notify(e notify.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) CommitStatus(sha, state, desc string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = append(r.statuses, sha+" "+state+" "+desc)
}

func (r *recorder) take() ([]notify.Event, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, s := r.events, r.statuses
	r.events, r.statuses = nil, nil
	return e, s
}

func newReportingLoop(t *testing.T) (*Loop, *dirSource, *recorder) {
	rec := &recorder{}
	l, src, _, _ := newTestLoop(t, func(o *Options) { o.Notifier, o.Statuses = rec, rec })
	return l, src, rec
}

func TestSyncEventsAndCommitStatuses(t *testing.T) {
	ctx := context.Background()
	l, src, rec := newReportingLoop(t)

	src.write(t, "c1", web("app:v1"))
	l.SyncOnce(ctx, "test")
	events, statuses := rec.take()
	if len(events) != 1 || events[0].Kind != notify.SyncSucceeded || events[0].Commit != "c1" || events[0].Node != "n1" ||
		strings.Join(events[0].Services, ",") != "p/web" || events[0].Subject != "commit c1" {
		t.Fatalf("events of a deploy = %+v", events)
	}
	if want := []string{"c1 pending applying: 1 to create, 0 to update, 0 to scale, 0 to heal, 0 to remove",
		"c1 success deployed: 1 to create, 0 to update, 0 to scale, 0 to heal, 0 to remove"}; strings.Join(statuses, "\n") != strings.Join(want, "\n") {
		t.Fatalf("statuses = %q", statuses)
	}

	l.SyncOnce(ctx, "interval")
	if events, statuses := rec.take(); len(events)+len(statuses) != 0 {
		t.Fatalf("a quiet tick reported %v %v", events, statuses)
	}

	src.write(t, "c2", web("app:broken"))
	l.SyncOnce(ctx, "test")
	events, statuses = rec.take()
	if len(events) != 1 || events[0].Kind != notify.RolloutFailed || events[0].Services[0] != "p/web" || !strings.Contains(events[0].Reason, "exit code") ||
		!strings.HasPrefix(events[0].Key, "update ") || len(events[0].Key) < len("update ")+8 {
		t.Fatalf("events of a failed rollout = %+v", events)
	}
	if len(statuses) != 2 || !strings.HasPrefix(statuses[1], "c2 failure p/web: ") || !strings.Contains(statuses[1], "exit code") {
		t.Fatalf("statuses of a failed rollout = %q", statuses)
	}
	l.SyncOnce(ctx, "interval") // the failed spec is held: nothing new to say
	if events, statuses := rec.take(); len(events)+len(statuses) != 0 {
		t.Fatalf("the held commit reported again: %v %v", events, statuses)
	}

	// An invalid commit stalls: the interval tick leaves it alone, an
	// explicit sync evaluates it again (the notifier de-duplicates).
	src.write(t, "c3", web("app:v2")+"replica = 2\n")
	l.SyncOnce(ctx, "test")
	l.SyncOnce(ctx, "interval")
	events, statuses = rec.take()
	if len(events) != 1 || events[0].Kind != notify.SyncFailed || events[0].Commit != "c3" ||
		!strings.HasPrefix(events[0].Reason, "invalid: services/p/service.toml:") || !strings.Contains(events[0].Reason, "unknown key") {
		t.Fatalf("events of an invalid commit and a held tick = %+v", events)
	}
	if len(statuses) != 1 || !strings.HasPrefix(statuses[0], "c3 failure invalid: services/p/service.toml:") {
		t.Fatalf("statuses of an invalid commit (set once) = %q", statuses)
	}
	l.SyncOnce(ctx, "api")
	if events, statuses := rec.take(); len(events) != 1 || events[0].Kind != notify.SyncFailed || events[0].Commit != "c3" || len(statuses) != 0 {
		t.Fatalf("an explicit sync of the invalid commit: events %+v, statuses %q; want sync_failed again, no status", events, statuses)
	}

	src.write(t, "c4", web("app:v1")+"# comment only\n")
	l.SyncOnce(ctx, "test") // v1 is what runs: nothing to apply, still a status
	if _, statuses := rec.take(); len(statuses) == 0 || !strings.HasPrefix(statuses[len(statuses)-1], "c4 success") {
		t.Fatalf("statuses of a commit = %q", statuses)
	}
}

// refSource is a dirSource that can also check out other refs, from
// directories the test fills.
type refSource struct {
	*dirSource
	refs map[string]string // ref -> service.toml
}

func (s *refSource) FetchRef(_ context.Context, ref, dir string) (source.Commit, error) {
	file := filepath.Join(dir, "services", "p", "service.toml")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return source.Commit{}, err
	}
	return source.Commit{SHA: "head-" + ref, Message: "pr"}, os.WriteFile(file, []byte(s.refs[ref]), 0o644)
}

func TestPlanRefAppliesNothing(t *testing.T) {
	ctx := context.Background()
	rs := &refSource{refs: map[string]string{
		"refs/pull/1/head": web("app:v2"),
		"refs/pull/2/head": web("app:v2") + "replica = 2\n",
	}}
	l, src, rt, _ := newTestLoop(t, func(o *Options) {
		rs.dirSource = o.Source.(*dirSource)
		o.Source, o.RefDir = rs, t.TempDir()
	})
	src.write(t, "c1", web("app:v1"))
	l.SyncOnce(ctx, "test")
	before := rt.IDs("web")

	p, err := l.PlanRef(ctx, "refs/pull/1/head")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Valid || p.Changes != 1 || p.Commit != "head-refs/pull/1/head" || !strings.Contains(p.Text, "~ p/web") || !strings.Contains(p.Text, "app:v1 -> app:v2") {
		t.Fatalf("plan = %+v\n%s", p, p.Text)
	}
	p, err = l.PlanRef(ctx, "refs/pull/2/head")
	if err != nil {
		t.Fatal(err)
	}
	if p.Valid || len(p.Errors) != 1 || !strings.HasPrefix(p.Text, "services/p/service.toml:") || !strings.Contains(p.Text, "unknown key") {
		t.Fatalf("invalid plan = %+v", p)
	}
	after := rt.IDs("web")
	if len(after) != 1 || after[firstKey(before)] != "app:v1" {
		t.Fatalf("planning a ref changed the host: %v -> %v", before, after)
	}
	if st, _ := l.Status(ctx); st.Commit != "c1" {
		t.Fatalf("planning a ref moved the deployed commit: %+v", st)
	}
}
