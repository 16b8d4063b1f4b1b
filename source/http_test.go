package source

import (
	"crypto/subtle"
	"log/slog"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// gitHTTPServer serves one bare repository over git smart HTTP (the
// machine's git-http-backend under net/http/cgi), requiring basic auth.
type gitHTTPServer struct {
	*httptest.Server
	unauthorized atomic.Int64
}

func newGitHTTPServer(t testing.TB, bare, user, pass string) *gitHTTPServer {
	t.Helper()
	backend := filepath.Join(runGit(t, "", "--exec-path"), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		backend = "/usr/lib/git-core/git-http-backend"
		if _, err := os.Stat(backend); err != nil {
			t.Skip("git-http-backend is not installed")
		}
	}
	root := filepath.Dir(bare)
	h := &cgi.Handler{
		Path: backend,
		Dir:  root,
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=" + os.DevNull,
			"HOME=" + root,
		},
	}
	s := &gitHTTPServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(pass)) != 1 {
			s.unauthorized.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="orca-sync-test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

const httpUser, httpPass = "deployer", "s3cret-Passw0rd"

// httpRemote is a remote with one commit served over HTTP with basic auth
// httpUser:httpPass; it returns the remote, server, clone URL and commit.
func httpRemote(t *testing.T) (*remote, *gitHTTPServer, string, string) {
	rem := newRemote(t)
	rem.write("a.txt", "over http\n")
	sha := rem.commit("http")
	srv := newGitHTTPServer(t, rem.bare, httpUser, httpPass)
	return rem, srv, srv.URL + "/" + filepath.Base(rem.bare), sha
}

func TestSyncHTTP(t *testing.T) {
	const user, pass = httpUser, httpPass
	rem, srv, repoURL, sha := httpRemote(t)

	t.Run("basic auth", func(t *testing.T) {
		r := newRepo(t, Options{URL: repoURL, Username: user, Password: pass})
		if c := mustSync(t, r); c.SHA != sha {
			t.Fatalf("Sync = %s, want %s", c.SHA, sha)
		}
		rem.write("a.txt", "next\n")
		next := rem.commit("next")
		if c := mustSync(t, r); c.SHA != next {
			t.Fatalf("second Sync = %s, want %s", c.SHA, next)
		}
		if got := readFile(t, filepath.Join(r.Dir(), "a.txt")); got != "next\n" {
			t.Errorf("a.txt = %q", got)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		const wrong = "not-the-Passw0rd"
		before := srv.unauthorized.Load()
		r := newRepo(t, Options{URL: repoURL, Username: user, Password: wrong})
		err := syncErr(t, r)
		t.Logf("wrong password: %v", err)
		if strings.Contains(err.Error(), wrong) || !strings.Contains(err.Error(), "fetch "+repoURL+" main: ") {
			t.Errorf("error = %q: want the URL and branch, and no password", err)
		}
		if srv.unauthorized.Load() == before {
			t.Error("the server refused no request")
		}
	})
	t.Run("token", func(t *testing.T) {
		r := newRepo(t, Options{URL: repoURL, Username: user, Token: pass})
		mustSync(t, r)
		srvTok := newGitHTTPServer(t, rem.bare, tokenUsername, "ghp_token")
		r = newRepo(t, Options{URL: srvTok.URL + "/" + filepath.Base(rem.bare), Token: "ghp_token"})
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
		if got := runGit(t, r.Dir(), "remote", "get-url", "origin"); got != repoURL {
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
	srv := newGitHTTPServer(b, rem.bare, "u", "p")
	r := newRepo(b, Options{URL: srv.URL + "/" + filepath.Base(rem.bare), Username: "u", Password: "p",
		Log: slog.New(slog.DiscardHandler)})
	mustSync(b, r)
	for b.Loop() {
		if _, err := r.Sync(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}
