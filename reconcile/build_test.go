package reconcile

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/build"
	"github.com/orca-sync/orca-sync/config"
)

// fakeBuilder hands out the head it is told and fails builds as told.
type fakeBuilder struct {
	head   string
	fail   error
	builds []string // commits Ensure was asked for
}

var _ Builder = (*fakeBuilder)(nil)

func (f *fakeBuilder) Commit(*config.Service) string { return f.head }
func (f *fakeBuilder) Resolve(context.Context, *config.Desired) map[string]error {
	return nil
}
func (f *fakeBuilder) Known(*config.Service, string) {}
func (f *fakeBuilder) Ensure(_ context.Context, _ *config.Desired, s *config.Service, commit string) (bool, error) {
	f.builds = append(f.builds, commit)
	if f.fail != nil {
		return false, f.fail
	}
	return true, nil
}

const builtToml = "[[service]]\nname = \"web\"\n[service.build]\nrepo = \"https://git.example.com/app.git\"\n[service.deploy]\nmin_ready_secs = 0\ntimeout_secs = 2\n"

// TestBuildStepsHoldFailedBuilds: a build runs for each new commit and the
// service rolls to its tag; a build the builder refused keeps the old
// containers, is pinned and not built again; one that could not run is not
// pinned; a new commit builds and rolls.
func TestBuildStepsHoldFailedBuilds(t *testing.T) {
	ctx := context.Background()
	fb := &fakeBuilder{head: strings.Repeat("a", 40)}
	l, src, rt, db := newTestLoop(t, func(o *Options) { o.Builder = fb })
	src.write(t, "c1", builtToml)
	if rec := l.SyncOnce(ctx, "test"); rec.Result != ResultSucceeded {
		t.Fatalf("first sync: %+v", rec)
	}
	running := func(want string) {
		t.Helper()
		for _, img := range rt.IDs("web") {
			if img != "orca-build/p-web:"+want {
				t.Fatalf("web runs %s, want orca-build/p-web:%s", img, want)
			}
		}
	}
	running("aaaaaaaaaaaa")

	fb.head = strings.Repeat("b", 40)
	fb.fail = &build.Error{Repo: "https://git.example.com/app.git", Commit: fb.head, Refused: true, Err: errors.New("COPY failed: no such file")}
	rec := l.SyncOnce(ctx, "test")
	if rec.Result != ResultFailed || !strings.Contains(rec.Error, "COPY failed") {
		t.Fatalf("refused build: %+v", rec)
	}
	running("aaaaaaaaaaaa")
	if pins, _ := db.Pins(); pins["p/web"].Hash == "" {
		t.Fatalf("a refused build is not pinned: %v", pins)
	}
	st, _ := l.Status(ctx)
	if s := st.Services[0]; s.Sync != SyncFailed || !strings.Contains(s.Reason, "COPY failed") {
		t.Fatalf("status = %+v", s)
	}
	n := len(fb.builds)
	l.SyncOnce(ctx, "interval")
	if len(fb.builds) != n {
		t.Fatalf("the pinned build ran again: %v", fb.builds)
	}

	fb.head = strings.Repeat("c", 40)
	fb.fail = &build.Error{Repo: "https://git.example.com/app.git", Commit: fb.head, Err: errors.New("fetch: connection refused")}
	if rec := l.SyncOnce(ctx, "test"); rec.Result != ResultFailed {
		t.Fatalf("build that could not run: %+v", rec)
	}
	if pins, _ := db.Pins(); len(pins) != 0 {
		t.Fatalf("a build that could not run is pinned: %v", pins)
	}
	running("aaaaaaaaaaaa")

	fb.fail = nil
	if rec := l.SyncOnce(ctx, "test"); rec.Result != ResultSucceeded {
		t.Fatalf("good build: %+v", rec)
	}
	running("cccccccccccc")
	if n := l.RefreshImages("app", "main"); n != 1 {
		t.Errorf("a push to the app repository's branch matched %d services, want 1", n)
	}
	if n := l.RefreshImages("app", "dev"); n != 0 {
		t.Errorf("a push to another branch matched %d services", n)
	}
}
