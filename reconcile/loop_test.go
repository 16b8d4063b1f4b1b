package reconcile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/apply/applytest"
	"github.com/orca-sync/orca-sync/registryauth"
	"github.com/orca-sync/orca-sync/source"
	"github.com/orca-sync/orca-sync/state"
)

// dirSource is a checkout the test writes by hand; Sync returns its commit.
type dirSource struct {
	dir    string
	commit source.Commit
	err    error
}

func (s *dirSource) Sync(context.Context) (source.Commit, error) { return s.commit, s.err }
func (s *dirSource) Dir() string                                 { return s.dir }

// commit writes service.toml of project p and moves the checkout to sha.
func (s *dirSource) write(t *testing.T, sha, toml string) {
	t.Helper()
	file := filepath.Join(s.dir, "services", "p", "service.toml")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	s.commit = source.Commit{SHA: sha, Message: "commit " + sha, Time: time.Now()}
}

func web(image string) string {
	return "[[service]]\nname = \"web\"\nimage = \"" + image + "\"\n[service.deploy]\nmin_ready_secs = 0\ntimeout_secs = 2\n"
}

// newTestLoop is a loop on a fresh state file, a hand-written checkout and
// a fake engine; with, if given, changes its options first.
func newTestLoop(t *testing.T, with ...func(*Options)) (*Loop, *dirSource, *applytest.Runtime, *state.DB) {
	t.Helper()
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	src := &dirSource{dir: t.TempDir()}
	rt := applytest.NewRuntime()
	opts := Options{Source: src, Runtime: rt, Store: db, Node: "n1"}
	for _, f := range with {
		f(&opts)
	}
	return New(opts), src, rt, db
}

func TestInvalidCommitChangesNothing(t *testing.T) {
	l, src, rt, _ := newTestLoop(t)
	src.write(t, "c1", web("app:v1"))
	if rec := l.SyncOnce(context.Background(), "test"); rec.Result != ResultSucceeded {
		t.Fatalf("first sync: %+v", rec)
	}
	before := rt.IDs("web")
	src.write(t, "c2", web("app:v2")+"replica = 2\n")
	rec := l.SyncOnce(context.Background(), "test")
	if rec.Result != ResultInvalid || !strings.Contains(rec.Error, `services/p/service.toml:`) || !strings.Contains(rec.Error, `unknown key`) {
		t.Fatalf("invalid commit: %+v", rec)
	}
	if after := rt.IDs("web"); len(after) != 1 || after[firstKey(before)] != "app:v1" {
		t.Fatalf("containers changed: %v -> %v", before, after)
	}
	st, _ := l.Status(context.Background())
	if len(st.Errors) != 1 || st.Errors[0].File != "services/p/service.toml" || st.Commit != "c1" {
		t.Fatalf("status = %+v", st)
	}
}

func firstKey(m map[string]string) string {
	for k := range m {
		return k
	}
	return ""
}

// TestFailedSpecIsHeld: a rollout that failed is not retried on every sync,
// only after a retry or a new commit.
func TestFailedSpecIsHeld(t *testing.T) {
	ctx := context.Background()
	l, src, rt, db := newTestLoop(t)
	src.write(t, "c1", web("app:v1"))
	l.SyncOnce(ctx, "test")
	src.write(t, "c2", web("app:broken"))
	if rec := l.SyncOnce(ctx, "test"); rec.Result != ResultFailed || len(rec.Services) != 1 {
		t.Fatalf("broken rollout: %+v", rec)
	}
	pins, _ := db.Pins()
	if _, ok := pins["p/web"]; !ok {
		t.Fatalf("no pin after a failed rollout: %v", pins)
	}
	rec := l.SyncOnce(ctx, "interval")
	if rec.Result != ResultSucceeded || len(rec.Services) != 0 {
		t.Fatalf("the held spec was retried: %+v", rec)
	}
	st, _ := l.Status(ctx)
	if s := st.Services[0]; s.Sync != SyncFailed || !strings.Contains(s.Reason, "exit code") {
		t.Fatalf("status = %+v", s)
	}
	l.Trigger("api", true)
	if rec := l.SyncOnce(ctx, ""); rec.Trigger != "api" || len(rec.Services) != 1 {
		t.Fatalf("retry did not roll again: %+v", rec)
	}
	src.write(t, "c3", web("app:v2"))
	if rec := l.SyncOnce(ctx, "test"); rec.Result != ResultSucceeded || len(rec.Services) != 1 {
		t.Fatalf("a new commit did not deploy: %+v", rec)
	}
	if pins, _ := db.Pins(); len(pins) != 0 {
		t.Fatalf("pin kept after git changed the spec: %v", pins)
	}
	for _, img := range rt.IDs("web") {
		if img != "app:v2" {
			t.Fatalf("running %s", img)
		}
	}
}

func TestFetchFailureKeepsLastCheckout(t *testing.T) {
	l, src, rt, _ := newTestLoop(t)
	src.write(t, "c1", web("app:v1"))
	l.SyncOnce(context.Background(), "test")
	id := firstKey(rt.IDs("web"))
	rt.SetState(id, "exited") // drift while the remote is down
	src.err = errors.New("remote unreachable")
	rec := l.SyncOnce(context.Background(), "test")
	if rec.Result != ResultFetchFailed || rec.Commit != "c1" {
		t.Fatalf("record = %+v", rec)
	}
	if ids := rt.IDs("web"); len(ids) != 1 || ids[id] != "" {
		t.Fatalf("the exited container was not healed from the last checkout: %v", ids)
	}
	if st, _ := l.Status(context.Background()); st.FetchError != "remote unreachable" {
		t.Fatalf("status fetch error = %q", st.FetchError)
	}
}

func TestSignalsCoalesce(t *testing.T) {
	l, _, _, _ := newTestLoop(t)
	for range 10 {
		l.Trigger("webhook", false)
	}
	l.Trigger("api", true)
	if n := len(l.signals.ch); n != 1 {
		t.Fatalf("%d signals pending, want 1", n)
	}
	p := l.signals.take("")
	if p.trigger != "webhook" || !p.retry {
		t.Fatalf("pending = %+v", p)
	}
	if p := l.signals.take("interval"); p.trigger != "interval" || p.retry {
		t.Fatalf("pending after take = %+v", p)
	}
}

func TestInterruptedSyncIsMarked(t *testing.T) {
	l, _, _, db := newTestLoop(t)
	id, _ := db.AddSync(state.SyncRecord{Commit: "c1", Result: ResultRunning, Started: time.Now()})
	l.markInterrupted()
	recs, _ := db.History(1)
	if recs[0].ID != id || recs[0].Result != ResultInterrupted {
		t.Fatalf("record = %+v", recs[0])
	}
}

// TestRefusedPullIsNotPinned: a pull the registry refuses fails that
// service only, names the registry and the fix in status, and is tried
// again at the next sync of the same commit, with the credentials of
// [[registry]]; once the registry lets it, the service deploys.
func TestRefusedPullIsNotPinned(t *testing.T) {
	ctx := context.Background()
	l, src, rt, db := newTestLoop(t)
	refuse := true
	rt.Refuse = func(ref string, auth registryauth.Auth) error {
		if refuse {
			return &apply.PullError{Image: ref, Registry: auth.Registry, Kind: apply.PullUnauthorized, Err: errors.New("no basic auth credentials")}
		}
		return nil
	}
	writeCluster(t, src.dir, "[[registry]]\nhost = \"registry.example.com\"\nusername = \"bot\"\npassword = \"pw-in-git\"\n")
	src.write(t, "c1", web("registry.example.com/team/remote:v1")+strings.Replace(web("app:v1"), `"web"`, `"other"`, 1))
	rec := l.SyncOnce(ctx, "test")
	if rec.Result != ResultFailed {
		t.Fatalf("sync with a refused pull: %+v", rec)
	}
	if pins, _ := db.Pins(); len(pins) != 0 {
		t.Fatalf("a refused pull was pinned: %v", pins)
	}
	if ids := rt.IDs("other"); len(ids) != 1 {
		t.Errorf("the other service did not deploy: %v", ids)
	}
	st, _ := l.Status(ctx)
	for _, s := range st.Services {
		if s.Name == "web" && (s.Sync != SyncFailed || !strings.Contains(s.Reason, "unauthorized at registry.example.com")) {
			t.Errorf("status of web = %+v; want Failed naming the registry", s)
		}
	}
	if n := len(rt.Pulls); n == 0 || rt.Pulls[n-1].Username != "bot" || rt.Pulls[n-1].Source != registryauth.SourceCluster {
		t.Fatalf("pulls = %v; want the [[registry]] credentials", rt.Pulls)
	}
	refuse = false
	if rec := l.SyncOnce(ctx, "interval"); rec.Result != ResultSucceeded || len(rec.Services) != 1 {
		t.Fatalf("the next sync did not try the pull again: %+v", rec)
	}
	if ids := rt.IDs("web"); len(ids) != 1 {
		t.Errorf("web after the registry let it: %v", ids)
	}
	st, _ = l.Status(ctx)
	for _, s := range st.Services {
		if s.Sync != SyncSynced {
			t.Errorf("status of %s = %+v; want Synced", s.Name, s)
		}
	}
	// Credentials are not part of any spec: changing them rolls nothing.
	before := rt.IDs("web")
	writeCluster(t, src.dir, "[[registry]]\nhost = \"registry.example.com\"\nusername = \"bot2\"\npassword = \"rotated\"\n")
	src.commit.SHA = "c2"
	if rec := l.SyncOnce(ctx, "test"); rec.Result != ResultSucceeded || len(rec.Services) != 0 {
		t.Fatalf("a credentials change rolled services: %+v", rec)
	}
	if after := rt.IDs("web"); firstKey(after) != firstKey(before) {
		t.Errorf("web's containers %v -> %v after a credentials change", before, after)
	}
}

func writeCluster(t *testing.T, dir, toml string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "cluster.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
}
