package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orca-sync/orca-sync/api/wire"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/state"
)

// Test tokens.
const (
	viewerToken         = "viewer-token"
	deployerToken       = "deployer-token"
	adminToken          = "admin-token"
	hashedDeployerToken = "hashed-deployer-token" // configured as sha256:<hex>
	generatedAdmin      = "generated-admin-token" // Options.AdminToken
	webhookSecret       = "s3cret"
	gitlabSecret        = "gl-token"
	trackedRepo         = "https://github.com/Acme/Infra.git"
)

type syncCall struct {
	trigger string
	retry   bool
}

// fakeBackend records every call.
type fakeBackend struct {
	mu        sync.Mutex
	syncs     []syncCall
	redeploys []string
	refreshes []string
	watchers  map[string]int // "owner/name@branch" → services watching
	planErr   error
	logsErr   error // returned after writing the log, when set
}

var _ Backend = (*fakeBackend)(nil)

func newFakeBackend() *fakeBackend {
	return &fakeBackend{watchers: map[string]int{"acme/app@main": 2}}
}

func (b *fakeBackend) Status(context.Context) (wire.Status, error) {
	return wire.Status{Commit: "abc123"}, nil
}

func (b *fakeBackend) Plan(context.Context) (diff.Plan, error) {
	if b.planErr != nil {
		return diff.Plan{}, b.planErr
	}
	return diff.Plan{Changes: []diff.Change{{Project: "web", Service: "app", Action: diff.ActionUpdate}}}, nil
}

func (b *fakeBackend) Drift(context.Context) (wire.DriftReport, error) {
	return wire.DriftReport{Findings: []diff.Finding{{Project: "web", Service: "app", Kind: diff.KindStopped}}}, nil
}

// History answers limit records, numbered from 1.
func (b *fakeBackend) History(_ context.Context, limit int) ([]state.SyncRecord, error) {
	recs := make([]state.SyncRecord, limit)
	for i := range recs {
		recs[i].ID = uint64(i + 1)
	}
	return recs, nil
}

func (b *fakeBackend) Sync(trigger string, retry bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.syncs = append(b.syncs, syncCall{trigger, retry})
}

func (b *fakeBackend) Canary(_ context.Context, project, name, action string) error {
	if project != "shop" {
		return ErrNotFound
	}
	return ErrNoCanary
}

func (b *fakeBackend) Redeploy(_ context.Context, project, name string) error {
	if project != "web" || name != "app" {
		return fmt.Errorf("redeploy %s/%s: %w", project, name, ErrNotFound)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.redeploys = append(b.redeploys, project+"/"+name)
	return nil
}

func (b *fakeBackend) Logs(ctx context.Context, project, name string, tail int, follow bool, w io.Writer) error {
	if project != "web" || name != "app" {
		return fmt.Errorf("logs %s/%s: %w", project, name, ErrNotFound)
	}
	if _, err := fmt.Fprintf(w, "tail=%d follow=%t\n", tail, follow); err != nil {
		return err
	}
	if follow {
		<-ctx.Done()
		return ctx.Err()
	}
	return b.logsErr
}

func (b *fakeBackend) RefreshImages(repo, branch string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refreshes = append(b.refreshes, repo+"@"+branch)
	return b.watchers[repo+"@"+branch]
}

func (b *fakeBackend) syncCalls() []syncCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]syncCall(nil), b.syncs...)
}

func (b *fakeBackend) refreshCalls() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.refreshes...)
}

// fakeConfig is a mutable Config.
type fakeConfig struct {
	mu      sync.Mutex
	tokens  []config.Token
	secret  string
	gitlab  string
	repoURL string
	branch  string
}

var _ Config = (*fakeConfig)(nil)

func newFakeConfig() *fakeConfig {
	sum := sha256.Sum256([]byte(hashedDeployerToken))
	return &fakeConfig{
		tokens: []config.Token{
			{Name: "ci", Value: viewerToken, Role: config.RoleViewer},
			{Name: "deploy", Value: deployerToken, Role: config.RoleDeployer},
			{Name: "ops", Value: adminToken, Role: config.RoleAdmin},
			{Name: "hashed", Value: "sha256:" + hex.EncodeToString(sum[:]), Role: config.RoleDeployer},
		},
		secret: webhookSecret, gitlab: gitlabSecret,
		repoURL: trackedRepo, branch: "main",
	}
}

func (c *fakeConfig) Tokens() []config.Token {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]config.Token(nil), c.tokens...)
}

func (c *fakeConfig) WebhookSecret() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.secret
}

func (c *fakeConfig) GitLabToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gitlab
}

func (c *fakeConfig) Tracked() (string, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.repoURL, c.branch
}

func (c *fakeConfig) set(f func(*fakeConfig)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

// fakeDeliveries remembers delivery IDs.
type fakeDeliveries struct {
	mu   sync.Mutex
	seen map[string]bool
	err  error
}

var _ Deliveries = (*fakeDeliveries)(nil)

func (d *fakeDeliveries) SeenDelivery(id string, _ time.Time) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return false, d.err
	}
	if d.seen == nil {
		d.seen = map[string]bool{}
	}
	was := d.seen[id]
	d.seen[id] = true
	return was, nil
}

type testEnv struct {
	backend *fakeBackend
	config  *fakeConfig
	reg     *prometheus.Registry
	handler http.Handler
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	env := &testEnv{backend: newFakeBackend(), config: newFakeConfig(), reg: prometheus.NewRegistry()}
	srv, err := New(Options{
		Backend: env.backend, Config: env.config, Deliveries: &fakeDeliveries{},
		AdminToken: generatedAdmin, Registry: env.reg,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	env.handler = srv.Handler()
	return env
}

// do serves one request; token "" sends no Authorization header.
func (e *testEnv) do(method, path, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec
}

// jsonError returns the "error" of a JSON error body, failing if it is none.
func jsonError(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type = %q, want application/json", ct)
	}
	var body struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == "" {
		t.Fatalf("error body %q is not {\"error\": ...} (%v)", rec.Body.String(), err)
	}
	return body.Error
}

// jsonStatus returns the "status" of a JSON body.
func jsonStatus(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var body struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	return body.Status
}

var errBoom = errors.New("boom")

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func hexSum(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func newRequest(method, path string, body io.Reader) *http.Request {
	return httptest.NewRequest(method, path, body)
}

func serve(env *testEnv, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	env.handler.ServeHTTP(rec, req)
	return rec
}

// RunJob knows one job, web/cron, which exits 3; web/app is no job.
func (b *fakeBackend) RunJob(_ context.Context, project, name string, detach bool) (wire.JobRun, error) {
	switch {
	case project == "web" && name == "app":
		return wire.JobRun{}, fmt.Errorf("run %s/%s: %w", project, name, ErrNotJob)
	case project != "web" || name != "cron":
		return wire.JobRun{}, fmt.Errorf("run %s/%s: %w", project, name, ErrNotFound)
	}
	return wire.JobRun{Project: project, Service: name, Trigger: "run", ExitCode: 3, Running: detach}, nil
}
