package gittest

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Server serves bare repositories over git smart HTTP (the machine's git
// http-backend under net/http/cgi) on 127.0.0.1 with basic auth; pushes
// are let through too.
type Server struct {
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

// NewServer starts a server whose repositories live in a temp dir (add them
// with AddRepo); it is stopped at the end of the test.
func NewServer(t testing.TB, user, pass string) *Server {
	t.Helper()
	backend := filepath.Join(Run(t, "", "--exec-path"), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		backend = "/usr/lib/git-core/git-http-backend"
		if _, err := os.Stat(backend); err != nil {
			t.Fatalf("git smart-HTTP tests need git-http-backend (in git --exec-path or %s): %v", backend, err)
		}
	}
	s := &Server{t: t, root: t.TempDir(), user: user, pass: pass}
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
			w.Header().Set("WWW-Authenticate", `Basic realm="orca-sync-test-git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		cgiHandler.ServeHTTP(w, r)
	})
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Served is a new repository served as name (e.g. "infra.git") by a
// smart-HTTP remote of its own with user:pass; its URL is srv.URL(name).
func Served(t testing.TB, name, user, pass string) (*Repo, *Server) {
	t.Helper()
	repo := NewRepo(t)
	srv := NewServer(t, user, pass)
	srv.AddRepo(name, repo)
	return repo, srv
}

// AddRepo serves repo's bare remote as name (e.g. "infra.git").
func (s *Server) AddRepo(name string, repo *Repo) {
	s.t.Helper()
	if err := os.Symlink(repo.BarePath(), filepath.Join(s.root, name)); err != nil {
		s.t.Fatal(err)
	}
}

// Root is the directory served (GIT_PROJECT_ROOT).
func (s *Server) Root() string { return s.root }

// Addr is host:port, stable across Stop/Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URL is the clone URL of repo, without credentials.
func (s *Server) URL(repo string) string { return "http://" + s.Addr() + "/" + repo }

// AuthURL is the clone URL of repo with user:pass in it.
func (s *Server) AuthURL(repo string) string {
	u := &url.URL{Scheme: "http", User: url.UserPassword(s.user, s.pass), Host: s.Addr(), Path: "/" + repo}
	return u.String()
}

// Requests counts requests served so far; Unauthorized those answered 401.
func (s *Server) Requests() int64     { return s.requests.Load() }
func (s *Server) Unauthorized() int64 { return s.failed.Load() }

// Stop closes the listener and every connection: clients get "connection
// refused" until Start.
func (s *Server) Stop() {
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
func (s *Server) Start() {
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
