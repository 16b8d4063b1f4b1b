package e2e

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gitEnv is the environment for git commands run by tests: the caller's
// environment without any GIT_* variable (tests may run inside a git hook),
// no system or global config (no credential helpers, signing, ...), never a
// terminal prompt, C locale.
func gitEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") && !strings.HasPrefix(kv, "SSH_ASKPASS=") && !strings.HasPrefix(kv, "LC_ALL=") {
			env = append(env, kv)
		}
	}
	return append(env, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
}

// tryGit runs git in dir (gitEnv) and returns its trimmed combined output.
func tryGit(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// runGit is tryGit that fails the test on error.
func runGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := tryGit(dir, args...)
	if err != nil {
		t.Fatalf("git %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return out
}

// gitRepo is a working repository on branch main with a bare remote
// ("origin") it pushes to. Its methods fail the test on error; call them from
// the test goroutine.
type gitRepo struct {
	t    testing.TB
	dir  string
	bare string
}

func newGitRepo(t testing.TB) *gitRepo {
	t.Helper()
	root := t.TempDir()
	r := &gitRepo{t: t, dir: filepath.Join(root, "work"), bare: filepath.Join(root, "remote.git")}
	runGit(t, root, "init", "-q", "-b", "main", r.dir)
	runGit(t, root, "init", "-q", "--bare", "-b", "main", r.bare)
	r.git("config", "user.name", "orca e2e")
	r.git("config", "user.email", "e2e@orca-sync.test")
	r.git("config", "commit.gpgsign", "false")
	r.git("remote", "add", "origin", r.bare)
	return r
}

func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	return runGit(r.t, r.dir, args...)
}

// Dir is the working checkout.
func (r *gitRepo) Dir() string { return r.dir }

// BarePath is the bare remote the repository pushes to.
func (r *gitRepo) BarePath() string { return r.bare }

// FileURL is file:// URL of the bare remote.
func (r *gitRepo) FileURL() string { return (&url.URL{Scheme: "file", Path: r.bare}).String() }

// WriteFile writes content to rel (slash-separated, relative to the
// checkout), creating directories.
func (r *gitRepo) WriteFile(rel, content string) {
	r.t.Helper()
	p := filepath.Join(r.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// Remove deletes rel (a file or a whole directory) from the checkout.
func (r *gitRepo) Remove(rel string) {
	r.t.Helper()
	if err := os.RemoveAll(filepath.Join(r.dir, filepath.FromSlash(rel))); err != nil {
		r.t.Fatal(err)
	}
}

// Commit stages everything and commits (also when nothing changed); it
// returns the new HEAD.
func (r *gitRepo) Commit(msg string) string {
	r.t.Helper()
	r.git("add", "-A")
	r.git("commit", "-q", "--allow-empty", "-m", msg)
	return r.Head()
}

// Revert commits the revert of sha and returns the new HEAD.
func (r *gitRepo) Revert(sha string) string {
	r.t.Helper()
	r.git("revert", "--no-edit", sha)
	return r.Head()
}

// Head is the full sha of HEAD.
func (r *gitRepo) Head() string {
	r.t.Helper()
	return r.git("rev-parse", "HEAD")
}

// Push pushes main to the bare remote (forced, so tests may rewrite history).
func (r *gitRepo) Push() {
	r.t.Helper()
	r.git("push", "-q", "--force", "origin", "main")
}

// gitServer serves bare repositories over git smart HTTP (the machine's git
// http-backend under net/http/cgi) on 127.0.0.1 with basic auth.
type gitServer struct {
	t          testing.TB
	root       string
	user, pass string
	handler    http.Handler
	requests   atomic.Int64
	failed     atomic.Int64 // 401 answers

	mu   sync.Mutex
	addr string // fixed after the first Start
	ts   *httptest.Server
}

// newServedRepo is a new repository served as "infra.git" by a smart-HTTP
// remote of its own with the test credentials; its URL is
// srv.URL("infra.git").
func newServedRepo(t testing.TB) (*gitRepo, *gitServer) {
	t.Helper()
	repo := newGitRepo(t)
	srv := newGitServer(t, gitUser, gitPass)
	srv.AddRepo("infra.git", repo)
	return repo, srv
}

// newGitServer starts a server whose repositories live in a temp dir (add
// them with AddRepo); it is stopped at the end of the test.
func newGitServer(t testing.TB, user, pass string) *gitServer {
	t.Helper()
	execPath := runGit(t, "", "--exec-path")
	backend := filepath.Join(execPath, "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		backend = "/usr/lib/git-core/git-http-backend"
	}
	s := &gitServer{t: t, root: t.TempDir(), user: user, pass: pass}
	cgiHandler := &cgi.Handler{
		Path: backend,
		Dir:  s.root,
		Env: []string{
			"GIT_PROJECT_ROOT=" + s.root,
			"GIT_HTTP_EXPORT_ALL=1",
			"REMOTE_USER=" + user, // lets pushes through too
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=" + os.DevNull,
			"HOME=" + s.root,
		},
	}
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(s.user)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(s.pass)) != 1 {
			s.failed.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="orca-e2e-git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		cgiHandler.ServeHTTP(w, r)
	})
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// AddRepo serves repo's bare remote as name (e.g. "infra.git").
func (s *gitServer) AddRepo(name string, repo *gitRepo) {
	s.t.Helper()
	if err := os.Symlink(repo.BarePath(), filepath.Join(s.root, name)); err != nil {
		s.t.Fatal(err)
	}
}

// Root is the directory served (GIT_PROJECT_ROOT).
func (s *gitServer) Root() string { return s.root }

// Addr is host:port, stable across Stop/Start.
func (s *gitServer) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URL is the clone URL of repo, without credentials.
func (s *gitServer) URL(repo string) string { return "http://" + s.Addr() + "/" + repo }

// AuthURL is the clone URL of repo with user:pass in it.
func (s *gitServer) AuthURL(repo string) string {
	u := &url.URL{Scheme: "http", User: url.UserPassword(s.user, s.pass), Host: s.Addr(), Path: "/" + repo}
	return u.String()
}

// Requests counts requests served so far; Unauthorized those answered 401.
func (s *gitServer) Requests() int64     { return s.requests.Load() }
func (s *gitServer) Unauthorized() int64 { return s.failed.Load() }

// Stop closes the listener and every connection: clients get "connection
// refused" until Start.
func (s *gitServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ts == nil {
		return
	}
	s.ts.CloseClientConnections()
	s.ts.Close()
	s.ts = nil
}

// Start serves again, on the same address as before.
func (s *gitServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ts != nil {
		return
	}
	addr := s.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var l net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		if l, err = net.Listen("tcp", addr); err == nil || s.addr == "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the old socket may linger for a moment
	}
	if err != nil {
		s.t.Fatalf("git server listen %s: %v", addr, err)
	}
	ts := httptest.NewUnstartedServer(s.handler)
	ts.Listener.Close()
	ts.Listener = l
	ts.Start()
	s.ts, s.addr = ts, l.Addr().String()
}
