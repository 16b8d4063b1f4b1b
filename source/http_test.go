package source

import (
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/internal/gittest"
)

const httpUser, httpPass = "deployer", "s3cret-Passw0rd"

// httpRemote is a remote with one commit served as "infra.git" over HTTP
// with basic auth httpUser:httpPass; it returns the remote, server, clone
// URL and commit.
func httpRemote(t *testing.T) (*gittest.Repo, *gittest.Server, string, string) {
	rem, srv := gittest.Served(t, "infra.git", httpUser, httpPass)
	rem.WriteFile("a.txt", "over http\n")
	sha := rem.CommitPush("http")
	return rem, srv, srv.URL("infra.git"), sha
}

func TestSyncHTTP(t *testing.T) {
	const user, pass = httpUser, httpPass
	rem, srv, repoURL, sha := httpRemote(t)

	t.Run("basic auth", func(t *testing.T) {
		r := newRepo(t, Options{URL: repoURL, Username: user, Password: pass})
		if c := mustSync(t, r); c.SHA != sha {
			t.Fatalf("Sync = %s, want %s", c.SHA, sha)
		}
		rem.WriteFile("a.txt", "next\n")
		next := rem.CommitPush("next")
		if c := mustSync(t, r); c.SHA != next {
			t.Fatalf("second Sync = %s, want %s", c.SHA, next)
		}
		if got := readFile(t, filepath.Join(r.Dir(), "a.txt")); got != "next\n" {
			t.Errorf("a.txt = %q", got)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		const wrong = "not-the-Passw0rd"
		before := srv.Unauthorized()
		r := newRepo(t, Options{URL: repoURL, Username: user, Password: wrong})
		err := syncErr(t, r)
		t.Logf("wrong password: %v", err)
		if strings.Contains(err.Error(), wrong) || !strings.Contains(err.Error(), "fetch "+repoURL+" main: ") {
			t.Errorf("error = %q: want the URL and branch, and no password", err)
		}
		if srv.Unauthorized() == before {
			t.Error("the server refused no request")
		}
	})
	t.Run("token", func(t *testing.T) {
		r := newRepo(t, Options{URL: repoURL, Username: user, Token: pass})
		mustSync(t, r)
		srvTok := gittest.NewServer(t, tokenUsername, "ghp_token")
		srvTok.AddRepo("infra.git", rem)
		r = newRepo(t, Options{URL: srvTok.URL("infra.git"), Token: "ghp_token"})
		mustSync(t, r)
	})
}

func TestSyncHTTPCredentialsInURL(t *testing.T) {
	const user, pass = httpUser, httpPass
	_, _, repoURL, _ := httpRemote(t)
	t.Run("credentials in the URL", func(t *testing.T) {
		u, _ := url.Parse(repoURL)
		u.User = url.UserPassword(user, pass)
		r := newRepo(t, Options{URL: u.String()})
		mustSync(t, r)
		if got := gittest.Run(t, r.Dir(), "remote", "get-url", "origin"); got != repoURL {
			t.Errorf("stored remote URL = %q, want %q (no credentials)", got, repoURL)
		}
		if cfg := readFile(t, filepath.Join(r.Dir(), ".git", "config")); strings.Contains(cfg, pass) {
			t.Errorf(".git/config holds the password:\n%s", cfg)
		}
		u.User = url.UserPassword(user, "wrong-in-url")
		r = newRepo(t, Options{URL: u.String()})
		if err := syncErr(t, r); strings.Contains(err.Error(), "wrong-in-url") {
			t.Errorf("error %q holds the password", err)
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		r := newRepo(t, Options{URL: repoURL})
		if err := syncErr(t, r); !strings.Contains(err.Error(), "authentication required") {
			t.Errorf("error = %v", err)
		}
	})
}

// BenchmarkSyncNoChangeHTTP is BenchmarkSyncNoChange over smart HTTP.
func BenchmarkSyncNoChangeHTTP(b *testing.B) {
	rem := hundredProjects(b)
	srv := gittest.NewServer(b, "u", "p")
	srv.AddRepo("infra.git", rem)
	r := newRepo(b, Options{URL: srv.URL("infra.git"), Username: "u", Password: "p",
		Log: slog.New(slog.DiscardHandler)})
	mustSync(b, r)
	for b.Loop() {
		if _, err := r.Sync(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}
