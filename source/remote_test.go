package source

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/internal/gittest"
)

// TestRemoteHead checks the ls-remote lookup over smart HTTP: it follows the
// branch, needs no clone, and its errors name the repository but never the
// password.
func TestRemoteHead(t *testing.T) {
	rem, _, repoURL, sha := httpRemote(t)
	r := newRepo(t, Options{URL: repoURL, Username: httpUser, Password: httpPass})
	if got, err := r.RemoteHead(t.Context()); err != nil || got != sha {
		t.Fatalf("RemoteHead = %q, %v; want %s", got, err, sha)
	}
	rem.WriteFile("a.txt", "moved\n")
	next := rem.CommitPush("moved")
	if got, err := r.RemoteHead(t.Context()); err != nil || got != next {
		t.Fatalf("RemoteHead after a push = %q, %v; want %s", got, err, next)
	}
	if _, err := r.Head(); err == nil {
		t.Error("RemoteHead made a clone")
	}
	wrong := newRepo(t, Options{URL: repoURL, Username: httpUser, Password: "not-the-Passw0rd"})
	_, err := wrong.RemoteHead(t.Context())
	if err == nil || strings.Contains(err.Error(), "not-the-Passw0rd") || !strings.Contains(err.Error(), repoURL) {
		t.Errorf("wrong password: error %v; want the URL and no password", err)
	}
	other := newRepo(t, Options{URL: repoURL, Branch: "nope", Username: httpUser, Password: httpPass})
	if _, err := other.RemoteHead(t.Context()); !errors.Is(err, ErrNoSuchRef) {
		t.Errorf("missing branch: error %v, want ErrNoSuchRef", err)
	}
}

// BenchmarkRemoteHeadHTTP is the per-sync lookup of a build's branch: one
// ls-remote over smart HTTP with basic auth, against the harness's remote on
// loopback (docs/guides/builds.md quotes it).
func BenchmarkRemoteHeadHTTP(b *testing.B) {
	rem, srv := gittest.Served(b, "app.git", "u", "p")
	rem.WriteFile("a.txt", "x\n")
	rem.CommitPush("x")
	r := newRepo(b, Options{URL: srv.URL("app.git"), Username: "u", Password: "p", Log: slog.New(slog.DiscardHandler)})
	for b.Loop() {
		if _, err := r.RemoteHead(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRemoteHeadFile is the same lookup against a local path remote
// (served in-process, docs/design.md "Git sources").
func BenchmarkRemoteHeadFile(b *testing.B) {
	rem := gittest.NewRepo(b)
	rem.WriteFile("a.txt", "x\n")
	rem.CommitPush("x")
	r := newRepo(b, Options{URL: rem.FileURL(), Log: slog.New(slog.DiscardHandler)})
	for b.Loop() {
		if _, err := r.RemoteHead(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}
