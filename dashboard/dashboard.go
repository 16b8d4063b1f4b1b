// Package dashboard is the web dashboard of `orca-sync serve`
// (docs/guides/dashboard.md): server-rendered pages, one stylesheet and one
// small script, all embedded in the binary, that the API mounts at GET / on
// its listener. It reads the same answers the JSON API serves (package wire)
// through small interfaces and knows nothing of Docker.
//
// Sign-in makes a server-side session (an HttpOnly, SameSite=Strict cookie);
// every POST also needs the session's CSRF token. The cookie authorises the
// dashboard's pages only, never the JSON API.
package dashboard

import (
	"context"
	"embed"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path"
	"sync"
	"time"

	"github.com/orca-sync/orca-sync/api/wire"
	"github.com/orca-sync/orca-sync/state"
)

//go:embed templates/*.html assets/*
var files embed.FS

// StatusReader is what the overview and the history show.
type StatusReader interface {
	Status(ctx context.Context) (wire.Status, error)
	// History is up to limit syncs, newest first.
	History(ctx context.Context, limit int) ([]state.SyncRecord, error)
}

// Inspector is what a service's page fetches when it is opened.
type Inspector interface {
	Drift(ctx context.Context) (wire.DriftReport, error)
	// Logs writes the service's last tail log lines, secret values redacted.
	Logs(ctx context.Context, project, name string, tail int, follow bool, w io.Writer) error
}

// Syncer signals the loop to sync now; it never waits.
type Syncer interface {
	Sync(trigger string, retry bool)
}

// ServiceActions are a deployer's actions on one service.
type ServiceActions interface {
	Redeploy(ctx context.Context, project, name string) error
	Canary(ctx context.Context, project, name, action string) error
}

// PRPlanner computes the plan of a pull request's head now, and lists the
// latest plan serve made of each open pull request, newest first.
type PRPlanner interface {
	PRPlan(ctx context.Context, number int) (wire.PRPlan, error)
	PRPlans(ctx context.Context) ([]wire.PRPlanRecord, error)
}

// Authenticator returns the role ("viewer", "deployer", "admin") of a
// token, and false when no configured token matches. The API's: it reads
// the tokens of the current cluster.toml on every call.
type Authenticator func(token string) (role string, ok bool)

// Options configures a Dashboard. Status, Inspect, Sync, Services and
// Authenticate are required.
type Options struct {
	Status       StatusReader
	Inspect      Inspector
	Sync         Syncer
	Services     ServiceActions
	PRs          PRPlanner // nil: the pull request page says plans are not available
	Authenticate Authenticator
	// CommitURL is the forge's web page of a commit, "" for none (no
	// [github] repo); nil: no links.
	CommitURL func(sha string) string
	// Interval is how often the live stream reads the status; 0 is one second.
	Interval time.Duration
	Log      *slog.Logger // nil: discard
}

// Dashboard serves the pages; build it with New.
type Dashboard struct {
	opts     Options
	log      *slog.Logger
	pages    pages
	sessions *sessions
	hub      *hub
	mux      *http.ServeMux
	closed   chan struct{}
	close    sync.Once
}

// New checks opts and parses the embedded templates.
func New(opts Options) (*Dashboard, error) {
	if opts.Status == nil || opts.Inspect == nil || opts.Sync == nil || opts.Services == nil || opts.Authenticate == nil {
		return nil, errors.New("dashboard: missing status, inspector, syncer, service actions or authenticator")
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dashboard{opts: opts, log: log, sessions: newSessions(), closed: make(chan struct{})}
	var err error
	if d.pages, err = d.parsePages(); err != nil {
		return nil, err
	}
	d.hub = newHub(opts.Status, opts.Interval, d.closed)
	d.mux = d.routes()
	return d, nil
}

// ServeHTTP serves GET / and everything under /ui/.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Nothing but this listener: the browser refuses any other origin.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	d.mux.ServeHTTP(w, r)
}

// Close ends the live streams, so that the HTTP server's shutdown does not
// wait for browsers (call it from http.Server.RegisterOnShutdown).
func (d *Dashboard) Close() {
	d.close.Do(func() { close(d.closed) })
}

func (d *Dashboard) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", d.page(d.pages["overview"]))
	m.HandleFunc("GET /ui/services/{project}/{name}", d.page(d.pages["service"]))
	m.HandleFunc("GET /ui/history", d.page(d.pages["history"]))
	m.HandleFunc("GET /ui/prs", d.page(d.pages["prs"]))
	m.HandleFunc("GET /ui/events", d.events)
	m.HandleFunc("GET /ui/assets/{file}", serveAsset)
	m.HandleFunc("GET /ui/signin", d.signinPage)
	m.HandleFunc("POST /ui/signin", d.signin)
	m.HandleFunc("POST /ui/signout", d.post(false, d.signout))
	m.HandleFunc("POST /ui/sync", d.post(true, d.syncAction))
	m.HandleFunc("POST /ui/services/{project}/{name}/{action}", d.post(true, d.serviceAction))
	m.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no such page", http.StatusNotFound)
	})
	return m
}

// assetTypes are the Content-Types of the embedded assets (nosniff is set).
var assetTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
}

func serveAsset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, err := files.ReadFile("assets/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if ct, ok := assetTypes[path.Ext(name)]; ok {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}
