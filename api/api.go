// Package api is the HTTP API of `orca-sync serve`: health, metrics, status,
// plan, history, sync, redeploy, logs and the forge webhooks. It talks to the
// daemon only through Backend, and reads tokens and webhook secrets from Config
// on every request so that a change of cluster.toml applies without restart.
package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/orca-sync/orca-sync/api/wire"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/dashboard"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/state"
)

// Backend is the daemon as the API sees it. Its answers are the wire types
// the API serves as JSON (package wire).
type Backend interface {
	Status(ctx context.Context) (wire.Status, error)
	Plan(ctx context.Context) (diff.Plan, error)
	// Drift checks for out-of-band changes now and returns the report.
	Drift(ctx context.Context) (wire.DriftReport, error)
	// History is up to limit syncs, newest first.
	History(ctx context.Context, limit int) ([]state.SyncRecord, error)
	// Sync signals the loop to pull now; it never waits for the sync.
	Sync(trigger string, retry bool)
	// Redeploy signals a force-pull and restart of one service; ErrNotFound if no such service.
	Redeploy(ctx context.Context, project, name string) error
	// Canary asks the running canary of a service to "promote" or "abort";
	// ErrNotFound if no such service, ErrNoCanary if it runs no canary.
	Canary(ctx context.Context, project, name, action string) error
	// Logs streams the service's container logs to w (tail lines, follow until ctx ends); ErrNotFound if no such service.
	Logs(ctx context.Context, project, name string, tail int, follow bool, w io.Writer) error
	// RunJob runs a scheduled job now: with detach until its container
	// runs, else until it ended. ErrNotFound, ErrNotJob or ErrJobRunning.
	RunJob(ctx context.Context, project, name string, detach bool) (wire.JobRun, error)
	// RefreshImages signals a re-pull of the services watching repo (full name "owner/name") on branch; returns how many services matched.
	RefreshImages(repo, branch string) int
}

// ErrNotFound is returned by Backend when the named service does not exist.
var ErrNotFound = errors.New("not found")

// ErrNoCanary is returned by Backend.Canary for a service without a running canary.
var ErrNoCanary = errors.New("no canary is running")

// Config is what the API needs from the current (last valid) cluster.toml and
// flags; read on every request so a change of cluster.toml applies without restart.
type Config interface {
	Tokens() []config.Token            // from [[token]]: Value is plain or "sha256:<hex>"
	WebhookSecret() string             // [webhook] secret ("" = not configured)
	GitLabToken() string               // [webhook] gitlab_token
	Tracked() (repoURL, branch string) // the infra repo URL (as given to --repo) and branch
}

// PullRequests plans pull requests and keeps the latest plan of each.
// Optional: without it pull_request webhooks are ignored and /plan?pr=N
// answers 501.
type PullRequests interface {
	// SignalPR queues a plan of PR number, published to the forge; it never waits.
	SignalPR(number int)
	// ForgetPR drops the kept plan of PR number (it was closed).
	ForgetPR(number int) error
	// PRPlan computes (and keeps) the plan of PR number now, and PRPlans
	// lists the kept ones, newest first (the dashboard's Pull requests page).
	dashboard.PRPlanner
}

// Deliveries de-duplicates webhook delivery IDs (backed by the state file).
type Deliveries interface {
	SeenDelivery(id string, now time.Time) (bool, error)
}

// Options configures a Server.
type Options struct {
	Backend    Backend
	Config     Config
	Deliveries Deliveries           // nil: no de-duplication
	PRs        PullRequests         // nil: no pull request plans
	Backups    Backups              // nil: no backups
	AdminToken string               // the generated <data-dir>/admin.token value (role admin)
	Registry   *prometheus.Registry // served at /metrics; the API registers its own webhook counter on it
	// CommitURL is the forge's web page of a commit ("" for none), linked
	// from the dashboard; nil: no links.
	CommitURL func(sha string) string
	// Node names this host; /metrics labels orca-sync's series with it. nil: no label.
	Node func() string
	Log  *slog.Logger // nil: discard
}

// Server is the HTTP API. Build it with New; serve Handler.
type Server struct {
	backend    Backend
	config     Config
	deliveries Deliveries
	prs        PullRequests
	backups    Backups
	adminToken string
	log        *slog.Logger
	webhooks   *prometheus.CounterVec
	node       func() string
	dashboard  *dashboard.Dashboard
	handler    http.Handler
}

// New checks opts, registers the webhook counter on opts.Registry and builds
// the routes.
func New(opts Options) (*Server, error) {
	if opts.Backend == nil {
		return nil, errors.New("api: no backend")
	}
	if opts.Config == nil {
		return nil, errors.New("api: no config")
	}
	if opts.Registry == nil {
		return nil, errors.New("api: no metrics registry")
	}
	counter, err := newWebhookCounter(opts.Registry)
	if err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		backend:    opts.Backend,
		config:     opts.Config,
		deliveries: opts.Deliveries,
		prs:        opts.PRs,
		backups:    opts.Backups,
		adminToken: opts.AdminToken,
		log:        log,
		webhooks:   counter,
		node:       opts.Node,
	}
	dash, err := dashboard.New(dashboard.Options{
		Status: opts.Backend, Inspect: opts.Backend, Sync: opts.Backend, Services: opts.Backend,
		PRs: dashboardPRs(opts.PRs), Authenticate: s.roleOf, CommitURL: opts.CommitURL, Log: log,
	})
	if err != nil {
		return nil, err
	}
	s.dashboard = dash
	s.handler = s.logRequests(s.routes(opts.Registry))
	return s, nil
}

// dashboardPRs keeps a nil PullRequests a nil interface for the dashboard.
func dashboardPRs(p PullRequests) dashboard.PRPlanner {
	if p == nil {
		return nil
	}
	return p
}

// roleOf is the dashboard's Authenticator: the same tokens as the API's.
func (s *Server) roleOf(token string) (string, bool) {
	r, ok := s.authenticate(token)
	return r.String(), ok
}

// Handler is the API's root handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Close ends the dashboard's live streams; register it with
// http.Server.RegisterOnShutdown so that a shutdown need not wait for them.
func (s *Server) Close() { s.dashboard.Close() }

func (s *Server) routes(reg *prometheus.Registry) *mux.Router {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "no such route")
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	})

	v1 := func(path string, h http.Handler, method string) {
		r.Handle("/api/v1"+path, h).Methods(method)
	}

	// Open routes.
	v1("/health", http.HandlerFunc(handleHealth), http.MethodGet)
	r.Handle("/metrics", promhttp.HandlerFor(nodeGatherer{inner: reg, node: s.node}, promhttp.HandlerOpts{})).Methods(http.MethodGet)

	// Webhooks authenticate themselves (HMAC or shared token).
	v1("/webhooks/github", http.HandlerFunc(s.handleGitHub), http.MethodPost)
	v1("/webhooks/gitlab", http.HandlerFunc(s.handleGitLab), http.MethodPost)

	// Bearer-token routes.
	v1("/status", s.require(roleViewer, s.handleStatus), http.MethodGet)
	v1("/plan", s.require(roleViewer, s.handlePlan), http.MethodGet)
	v1("/history", s.require(roleViewer, s.handleHistory), http.MethodGet)
	v1("/drift", s.require(roleViewer, s.handleDrift), http.MethodGet)
	v1("/sync", s.require(roleDeployer, s.handleSync), http.MethodPost)
	v1("/services/{project}/{name}/redeploy", s.require(roleDeployer, s.handleRedeploy), http.MethodPost)
	v1("/services/{project}/{name}/promote", s.require(roleDeployer, s.handleCanary("promote")), http.MethodPost)
	v1("/services/{project}/{name}/abort", s.require(roleDeployer, s.handleCanary("abort")), http.MethodPost)
	v1("/services/{project}/{name}/logs", s.require(roleViewer, s.handleLogs), http.MethodGet)
	v1("/services/{project}/{name}/run", s.require(roleDeployer, s.handleRun), http.MethodPost)
	v1("/backups", s.require(roleViewer, s.handleBackupList), http.MethodGet)
	v1("/backups", s.require(roleDeployer, s.handleBackupRun), http.MethodPost)
	v1("/backups/restore", s.require(roleAdmin, s.handleBackupRestore), http.MethodPost)

	// The dashboard (docs/guides/dashboard.md) authenticates itself: a
	// session or a bearer token; its cookie opens none of the routes above.
	r.Handle("/", s.dashboard).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix("/ui/").Handler(s.dashboard)
	return r
}

func handleHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, statusBody("ok"))
}
