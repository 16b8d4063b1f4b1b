package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/orca-sync/orca-sync/api"
	"github.com/orca-sync/orca-sync/api/wire"
	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/backup"
	"github.com/orca-sync/orca-sync/build"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/dashboard"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/docker"
	"github.com/orca-sync/orca-sync/files"
	"github.com/orca-sync/orca-sync/notify/github"
	"github.com/orca-sync/orca-sync/proxy"
	"github.com/orca-sync/orca-sync/reconcile"
	"github.com/orca-sync/orca-sync/registryauth"
	"github.com/orca-sync/orca-sync/secrets"
	"github.com/orca-sync/orca-sync/source"
	"github.com/orca-sync/orca-sync/state"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

type serveFlags struct {
	repo, branch, path, dataDir, listen, node, sshKey, logFormat string
	httpAddr, httpsAddr, ageKeyFile                              string
	interval                                                     time.Duration
	once, insecureHostKey, allowMassPrune                        bool
	allowHostPaths                                               []string
}

func newServeCommand(stderr io.Writer) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve --repo URL|PATH",
		Short: "Run the GitOps loop: pull the infra repository and keep this host converged to it",
		Long: "serve clones the infra repository into <data-dir>/repo and syncs at once, then on every\n" +
			"interval and every webhook or API signal. It serves the API on --listen.\n" +
			"Every flag can also be set as ORCA_SYNC_<FLAG> (e.g. ORCA_SYNC_DATA_DIR).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.repo == "" {
				return errors.New("--repo is required (a git URL or a local path)")
			}
			f.interval = explicitInterval(cmd, f.interval)
			return serve(cmd.Context(), f, newLoggerFormat(stderr, f.logFormat))
		},
	}
	f.bind(cmd.Flags())
	return cmd
}

// bind registers serve's flags on fl (serve and install share them).
func (f *serveFlags) bind(fl *pflag.FlagSet) {
	fl.StringVar(&f.repo, "repo", "", "infra repository: local path, file://, http(s)://, ssh://, git@host:org/repo, git://")
	fl.StringVar(&f.branch, "branch", "main", "branch to track")
	fl.StringVar(&f.path, "path", ".", "the infra tree's directory inside the repository")
	fl.DurationVar(&f.interval, "interval", 60*time.Second, "sync interval (default: [reconcile] interval_secs of cluster.toml, else 60s)")
	fl.StringVar(&f.dataDir, "data-dir", defaultDataDir(), "state, clone and admin token")
	fl.StringVar(&f.listen, "listen", ":6880", "API listen address")
	fl.StringVar(&f.node, "node", "", nodeFlagHelp)
	fl.StringVar(&f.ageKeyFile, "age-key-file", "", ageKeyFlagHelp)
	fl.StringVar(&f.sshKey, "ssh-key", "", "private key file for ssh:// and git@ repositories")
	fl.BoolVar(&f.insecureHostKey, "insecure-ignore-host-key", false, "do not check the SSH host key against known_hosts")
	fl.BoolVar(&f.once, "once", false, "sync once and exit; the exit status says whether it succeeded")
	fl.BoolVar(&f.allowMassPrune, "allow-mass-prune", false, "let syncs remove more than prune_guard of the services, or all")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&f.httpAddr, "http-addr", "", "proxy HTTP listen address (default: \":<[proxy] http_port>\")")
	allowHostPathFlag(fl, &f.allowHostPaths)
	fl.StringVar(&f.httpsAddr, "https-addr", "", "proxy HTTPS listen address (default: \":<[proxy] https_port>\")")
}

// explicitInterval returns the --interval value only when it was set, so that
// cluster.toml's interval_secs applies otherwise.
func explicitInterval(cmd *cobra.Command, v time.Duration) time.Duration {
	if cmd.Flags().Changed("interval") {
		return v
	}
	return 0
}

func serve(ctx context.Context, f serveFlags, log *slog.Logger) error {
	// Held for serve's lifetime: apply refuses to change containers meanwhile.
	lock, err := state.LockDataDir(f.dataDir, "serve")
	if err != nil {
		return err
	}
	defer lock.Unlock()
	db, err := state.Open(filepath.Join(f.dataDir, "state.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	rt, err := docker.New(ctx, log)
	if err != nil {
		return err
	}
	defer rt.Close()
	src, err := newSource(f, log)
	if err != nil {
		return err
	}
	lopts, err := flagOptions(f, log)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rp := newReporting(db, f.branch, log)
	lopts.Source, lopts.Runtime, lopts.Inspector, lopts.Logs, lopts.Store = src, rt, rt, rt, db
	lopts.Metrics, lopts.Notifier, lopts.Statuses = reconcile.NewMetrics(reg), rp.notifier, rp.github
	lopts.Digester, lopts.Credentials = rt, registryauth.New("") // $DOCKER_CONFIG, else ~/.docker, as docker pull
	lopts.Builder = newBuilder(f, rt, log)
	var events apply.EventSource = rt
	if checkoutEngine(ctx, src, f.path, log) == config.EngineSwarm {
		sw, err := wireSwarm(ctx, &lopts, rt, f.node, log)
		if err != nil {
			return err
		}
		defer sw.Close()
		events = sw
	}
	if !f.once { // a one-shot sync serves no traffic
		px, err := newProxy(f, db, rt, reg, log)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = px.Shutdown(sctx)
		}()
		lopts.Router, lopts.Routes, lopts.Canary = px, px, px
	}
	loop := reconcile.New(lopts)
	rp.loop = loop
	rp.start()
	defer rp.wait()
	if f.once {
		rec := loop.SyncOnce(ctx, "once")
		if rec.Result != reconcile.ResultSucceeded {
			return fmt.Errorf("sync %s: %s", rec.Result, rec.Error)
		}
		return nil
	}
	return serveAPI(ctx, f, daemon{loop: loop, rt: rt, events: events, reporting: rp, db: db, reg: reg, repoURL: src.URL(), log: log})
}

// flagOptions are the loop's options that come from the flags alone: the
// age identity (read once: a key file replaced later takes a restart), the
// store of the snapshots containers mount and the host paths
// --allow-host-path allows.
func flagOptions(f serveFlags, log *slog.Logger) (reconcile.Options, error) {
	ids, err := secrets.LoadIdentities(f.ageKeyFile, os.Getenv)
	if err != nil {
		return reconcile.Options{}, err
	}
	policy, err := hostPolicy(f.allowHostPaths)
	if err != nil {
		return reconcile.Options{}, err
	}
	store, err := files.NewStore(f.dataDir, files.NewHasher(), log)
	if err != nil {
		return reconcile.Options{}, err
	}
	return reconcile.Options{Path: f.path, Node: f.node, Interval: f.interval, AllowMassPrune: f.allowMassPrune,
		Secrets: secrets.NewKeyring(ids), Log: log, RefDir: filepath.Join(f.dataDir, "pr-checkout"),
		LastValidDir: filepath.Join(f.dataDir, "last-valid"), Files: store, HostPaths: policy}, nil
}

// newSource is the clone of the tracked branch in <data-dir>/repo, with git
// credentials from the environment.
func newSource(f serveFlags, log *slog.Logger) (*source.Repo, error) {
	return source.New(gitOptions(f, f.repo, f.branch, filepath.Join(f.dataDir, "repo"), log))
}

func gitOptions(f serveFlags, url, branch, dir string, log *slog.Logger) source.Options {
	opts := source.Options{URL: url, Branch: branch, Dir: dir,
		SSHKeyFile: f.sshKey, InsecureIgnoreHostKey: f.insecureHostKey, Log: log}
	source.OptionsFromEnv(&opts)
	return opts
}

// newBuilder builds the images of services with [service.build]: app
// repositories are reached with the infra repository's credentials (its
// HTTP ones only on its own scheme and host) and cloned under
// <data-dir>/builds.
func newBuilder(f serveFlags, rt build.Engine, log *slog.Logger) *build.Builder {
	return build.New(build.Options{Engine: rt, Dir: filepath.Join(f.dataDir, "builds"),
		Git: gitOptions(f, f.repo, "", "", log), Log: log.With("component", "build")})
}

// newProxy makes the proxy, with its sticky-cookie key from state.db.
func newProxy(f serveFlags, db *state.DB, rt apply.Runtime, reg prometheus.Registerer, log *slog.Logger) (*proxy.Proxy, error) {
	key, err := stickyKey(db)
	if err != nil {
		return nil, err
	}
	return proxy.New(proxy.Options{HTTPAddr: f.httpAddr, HTTPSAddr: f.httpsAddr, DataDir: f.dataDir,
		IPs: runtimeIPs{rt}, Registry: reg, StickyKey: key, DropCookie: dashboard.SessionCookie,
		Log: log.With("component", "proxy")}), nil
}

// stickyKey is the key that signs the proxy's sticky canary cookie: 32
// random bytes made on first start and kept in state.db, so a cookie stays
// valid across restarts and no client can write one itself.
func stickyKey(db *state.DB) ([]byte, error) {
	const namespace, name = "proxy", "sticky-key"
	var key []byte
	if found, err := db.Get(namespace, name, &key); err != nil || (found && len(key) == 32) {
		return key, err
	}
	key = make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand)
	if err := db.Put(namespace, name, key); err != nil {
		return nil, fmt.Errorf("keep the sticky cookie key: %w", err)
	}
	return key, nil
}

// daemon is what serveAPI wires to the API.
type daemon struct {
	loop      *reconcile.Loop
	rt        *docker.Engine    // the backups' runtime
	events    apply.EventSource // the loop's events: the Docker engine's, or on Swarm its tasks
	reporting *reporting
	db        *state.DB
	reg       *prometheus.Registry
	repoURL   string // the repository URL without any user info: it may be a token
	log       *slog.Logger
}

func serveAPI(ctx context.Context, f serveFlags, d daemon) error {
	admin, err := api.EnsureAdminToken(f.dataDir)
	if err != nil {
		return err
	}
	bk := newBackups(f.dataDir, d.loop, d.rt, d.db, d.reporting.notifier, d.reg, d.log)
	srv, err := api.New(api.Options{
		Backend: backend{d.loop, bk}, Config: apiConfig{loop: d.loop, repo: f.repo, branch: f.branch},
		Deliveries: d.db, PRs: prAPI{d.reporting}, Backups: backupAPI{bk}, AdminToken: admin, Registry: d.reg, Node: d.loop.NamedNode, Log: d.log,
		CommitURL: func(sha string) string { return github.CommitURL(d.loop.Cluster().GitHub, sha) },
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", f.listen, err)
	}
	httpSrv := api.NewHTTPServer(srv.Handler(), api.DefaultLimits())
	httpSrv.RegisterOnShutdown(srv.Close) // the dashboard's live streams end at once
	go func() {
		if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("API server", "error", err)
		}
	}()
	d.log.Info("serving", "repo", d.repoURL, "branch", f.branch, "api", ln.Addr().String(), "data_dir", f.dataDir)
	go d.loop.RunLiveness(ctx)
	go d.loop.RunEvents(ctx, d.events)
	go bk.RunSchedule(ctx)
	d.loop.Run(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return httpSrv.Shutdown(sctx)
}

// The proxy follows apply's rollouts.
var _ apply.Router = (*proxy.Proxy)(nil)

// runtimeIPs reads container addresses for the proxy with the runtime's
// inspect, so the proxy needs no runtime of its own.
type runtimeIPs struct{ rt apply.Runtime }

var _ proxy.ContainerIPs = runtimeIPs{}

func (r runtimeIPs) ContainerIP(ctx context.Context, id, network string) (string, error) {
	st, err := r.rt.Inspect(ctx, id)
	if err != nil {
		return "", err
	}
	return st.IPs[network], nil
}

// backend adapts the loop (and, for status, the backups) to the API.
type backend struct {
	loop    *reconcile.Loop
	backups *backup.Manager
}

var _ api.Backend = backend{}

func (b backend) Status(ctx context.Context) (wire.Status, error) {
	st, err := b.loop.Status(ctx)
	if b.backups != nil {
		st.Backups = b.backups.Status()
	}
	return st, err
}

func (b backend) Plan(ctx context.Context) (diff.Plan, error) { return b.loop.Plan(ctx) }

func (b backend) Drift(ctx context.Context) (wire.DriftReport, error) { return b.loop.Drift(ctx) }

func (b backend) History(_ context.Context, limit int) ([]state.SyncRecord, error) {
	return b.loop.History(limit)
}

func (b backend) Sync(trigger string, retry bool) { b.loop.Trigger(trigger, retry) }

func (b backend) Redeploy(_ context.Context, project, name string) error {
	return notFound(b.loop.Redeploy(project, name))
}

func (b backend) Canary(_ context.Context, project, name, action string) error {
	var err error
	if action == "promote" {
		err = b.loop.Promote(project, name)
	} else {
		err = b.loop.Abort(project, name)
	}
	if errors.Is(err, reconcile.ErrNoCanary) {
		return fmt.Errorf("%w: %v", api.ErrNoCanary, err)
	}
	return notFound(err)
}

func (b backend) Logs(ctx context.Context, project, name string, tail int, follow bool, w io.Writer) error {
	return notFound(b.loop.Logs(ctx, project, name, tail, follow, w))
}

func (b backend) RefreshImages(repo, branch string) int { return b.loop.RefreshImages(repo, branch) }

func (b backend) RunJob(ctx context.Context, project, name string, detach bool) (wire.JobRun, error) {
	run, err := b.loop.RunJob(ctx, project, name, detach)
	switch {
	case errors.Is(err, reconcile.ErrNotJob):
		return run, fmt.Errorf("%w: %v", api.ErrNotJob, err)
	case errors.Is(err, reconcile.ErrJobRunning):
		return run, fmt.Errorf("%w: %v", api.ErrJobRunning, err)
	}
	return run, notFound(err)
}

func notFound(err error) error {
	if errors.Is(err, reconcile.ErrUnknownService) {
		return fmt.Errorf("%w: %v", api.ErrNotFound, err)
	}
	return err
}

// apiConfig reads the API's settings from the last valid cluster.toml, so a
// commit changes tokens and webhook secrets without a restart.
type apiConfig struct {
	loop         *reconcile.Loop
	repo, branch string
}

var _ api.Config = apiConfig{}

func (c apiConfig) Tokens() []config.Token            { return c.loop.Cluster().Tokens }
func (c apiConfig) WebhookSecret() string             { return c.loop.Cluster().Webhook.Secret }
func (c apiConfig) GitLabToken() string               { return c.loop.Cluster().Webhook.GitLabToken }
func (c apiConfig) Tracked() (repoURL, branch string) { return c.repo, c.branch }
