package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/orca-sync/orca-sync/state"
)

func TestStatusPlanHistory(t *testing.T) {
	env := newTestEnv(t)
	rec := env.do(http.MethodGet, "/api/v1/status", viewerToken)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"commit":"abc123"`) {
		t.Fatalf("status: %d %s", rec.Code, rec.Body)
	}
	rec = env.do(http.MethodGet, "/api/v1/plan", viewerToken)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"changes":[{"project":"web","service":"app","action":"update"`) {
		t.Fatalf("plan: %d %s", rec.Code, rec.Body)
	}
	rec = env.do(http.MethodGet, "/api/v1/drift", viewerToken)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"findings":[{"project":"web","service":"app","container":"","kind":"stopped"}]`) {
		t.Fatalf("drift: %d %s", rec.Code, rec.Body)
	}
	env.backend.planErr = errBoom
	rec = env.do(http.MethodGet, "/api/v1/plan", viewerToken)
	if rec.Code != http.StatusInternalServerError || !strings.Contains(jsonError(t, rec), "boom") {
		t.Fatalf("plan error: %d %s", rec.Code, rec.Body)
	}
}

func TestHistoryLimit(t *testing.T) {
	env := newTestEnv(t)
	for query, want := range map[string]int{"": 50, "?limit=7": 7, "?limit=1": 1} {
		rec := env.do(http.MethodGet, "/api/v1/history"+query, viewerToken)
		var body []state.SyncRecord
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusOK || len(body) != want || body[want-1].ID != uint64(want) {
			t.Errorf("history%s: %d %s, want limit %d", query, rec.Code, rec.Body, want)
		}
	}
	for _, query := range []string{"?limit=0", "?limit=-3", "?limit=x"} {
		rec := env.do(http.MethodGet, "/api/v1/history"+query, viewerToken)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("history%s: %d, want 400", query, rec.Code)
		}
		jsonError(t, rec)
	}
}

func TestSync(t *testing.T) {
	env := newTestEnv(t)
	rec := env.do(http.MethodPost, "/api/v1/sync", deployerToken)
	if rec.Code != http.StatusAccepted || jsonStatus(t, rec) != "sync signalled" {
		t.Fatalf("sync: %d %s", rec.Code, rec.Body)
	}
	rec = env.do(http.MethodPost, "/api/v1/sync?retry=true", deployerToken)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("sync retry: %d %s", rec.Code, rec.Body)
	}
	rec = env.do(http.MethodPost, "/api/v1/sync?retry=maybe", deployerToken)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("sync retry=maybe: %d, want 400", rec.Code)
	}
	want := []syncCall{{"api", false}, {"api", true}}
	if got := env.backend.syncCalls(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Sync calls = %v, want %v", got, want)
	}
}

func TestRedeploy(t *testing.T) {
	env := newTestEnv(t)
	rec := env.do(http.MethodPost, "/api/v1/services/web/app/redeploy", deployerToken)
	if rec.Code != http.StatusAccepted || jsonStatus(t, rec) != "redeploy signalled" {
		t.Fatalf("redeploy: %d %s", rec.Code, rec.Body)
	}
	rec = env.do(http.MethodPost, "/api/v1/services/web/nope/redeploy", deployerToken)
	if rec.Code != http.StatusNotFound || !strings.Contains(jsonError(t, rec), "web/nope") {
		t.Fatalf("redeploy unknown: %d %s", rec.Code, rec.Body)
	}
	if got := fmt.Sprint(env.backend.redeploys); got != "[web/app]" {
		t.Fatalf("redeploys = %s", got)
	}
}

func TestLogs(t *testing.T) {
	env := newTestEnv(t)
	rec := env.do(http.MethodGet, "/api/v1/services/web/app/logs?tail=5", viewerToken)
	if rec.Code != http.StatusOK || rec.Body.String() != "tail=5 follow=false\n" {
		t.Fatalf("logs: %d %q", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q", ct)
	}
	rec = env.do(http.MethodGet, "/api/v1/services/web/app/logs", viewerToken)
	if rec.Body.String() != "tail=100 follow=false\n" {
		t.Errorf("default tail: %q", rec.Body)
	}
	rec = env.do(http.MethodGet, "/api/v1/services/web/nope/logs", viewerToken)
	if rec.Code != http.StatusNotFound {
		t.Fatalf("logs unknown: %d", rec.Code)
	}
	jsonError(t, rec)
	for _, q := range []string{"?tail=-1", "?tail=x", "?follow=perhaps"} {
		rec = env.do(http.MethodGet, "/api/v1/services/web/app/logs"+q, viewerToken)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("logs%s: %d, want 400", q, rec.Code)
		}
	}
	env.backend.logsErr = errBoom // after the first line: the stream just ends
	rec = env.do(http.MethodGet, "/api/v1/services/web/app/logs", viewerToken)
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Body.String(), "tail=100") {
		t.Fatalf("logs error mid-stream: %d %q", rec.Code, rec.Body)
	}
}

// TestLogsFollowStreams reads the first line over a real connection while
// the backend is still following.
func TestLogsFollowStreams(t *testing.T) {
	env := newTestEnv(t)
	ts := httptest.NewServer(env.handler)
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/api/v1/services/web/app/logs?follow=true&tail=3", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+viewerToken)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "tail=3 follow=true\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	cancel() // ends the follow
}

func TestUnknownRouteAndMethod(t *testing.T) {
	env := newTestEnv(t)
	cases := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodGet, "/api/v1/nope", http.StatusNotFound},
		{http.MethodGet, "/api/v1/services/web/app/promote", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/api/v1/status", http.StatusMethodNotAllowed},
		{http.MethodGet, "/api/v1/sync", http.StatusMethodNotAllowed},
		{http.MethodGet, "/api/v1/webhooks/github", http.StatusMethodNotAllowed},
		{http.MethodPost, "/metrics", http.StatusMethodNotAllowed},
		{http.MethodPost, "/api/v1/health", http.StatusMethodNotAllowed},
	}
	for _, c := range cases {
		rec := env.do(c.method, c.path, adminToken)
		if rec.Code != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, rec.Code, c.want)
			continue
		}
		jsonError(t, rec)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(Options{Config: newFakeConfig(), Registry: reg}); err == nil {
		t.Error("no backend: no error")
	}
	if _, err := New(Options{Backend: newFakeBackend(), Registry: reg}); err == nil {
		t.Error("no config: no error")
	}
	if _, err := New(Options{Backend: newFakeBackend(), Config: newFakeConfig()}); err == nil {
		t.Error("no registry: no error")
	}
	// Two servers on one registry share the counter.
	for range 2 {
		if _, err := New(Options{Backend: newFakeBackend(), Config: newFakeConfig(), Registry: reg}); err != nil {
			t.Fatalf("New: %v", err)
		}
	}
}

func TestMetricsServesRegistry(t *testing.T) {
	env := newTestEnv(t)
	rec := env.do(http.MethodGet, "/metrics", "")
	if !strings.Contains(rec.Body.String(), `orca_sync_webhooks_total{result="accepted"} 0`) {
		t.Fatalf("metrics lack the webhook counter:\n%s", rec.Body)
	}
}

// TestRequestLog: each request is logged at Debug with method, path, status
// and duration, never with the token.
func TestRequestLog(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := New(Options{
		Backend: newFakeBackend(), Config: newFakeConfig(), Registry: prometheus.NewRegistry(), Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{handler: srv.Handler()}
	env.do(http.MethodPost, "/api/v1/sync?retry=true", viewerToken)
	out := buf.String()
	for _, want := range []string{"method=POST", "path=/api/v1/sync", "status=403", "duration="} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q: %s", want, out)
		}
	}
	if strings.Contains(out, viewerToken) || strings.Contains(out, "retry") {
		t.Errorf("log leaks the token or query: %s", out)
	}
}

// TestCanaryPromoteAbort: deployer may promote and abort; an unknown
// service is 404, a service without a canary 409, a viewer 403.
func TestCanaryPromoteAbort(t *testing.T) {
	env := newTestEnv(t)
	for _, action := range []string{"promote", "abort"} {
		cases := []struct {
			path, token string
			want        int
		}{
			{"/api/v1/services/shop/api/" + action, deployerToken, http.StatusConflict},
			{"/api/v1/services/nope/api/" + action, deployerToken, http.StatusNotFound},
			{"/api/v1/services/shop/api/" + action, viewerToken, http.StatusForbidden},
		}
		for _, c := range cases {
			rec := env.do(http.MethodPost, c.path, c.token)
			if rec.Code != c.want {
				t.Errorf("POST %s: %d, want %d: %s", c.path, rec.Code, c.want, rec.Body)
				continue
			}
			jsonError(t, rec)
		}
	}
}

// TestMetricsCarryNode: with a node named, every orca_* series carries it
// and the Go runtime's series do not.
func TestMetricsCarryNode(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	srv, err := New(Options{Backend: newFakeBackend(), Config: newFakeConfig(), Registry: reg, Node: func() string { return "edge-1" }})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	if !strings.Contains(body, `orca_sync_webhooks_total{node="edge-1",result="accepted"} 0`) {
		t.Fatalf("webhook counter without the node:\n%s", body)
	}
	if strings.Contains(body, `go_goroutines{node=`) || !strings.Contains(body, "go_goroutines ") {
		t.Fatalf("go_* series labelled:\n%s", body)
	}
}
