package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orca-sync/orca-sync/api/wire"
)

// fakePRs records signals and forgets, and answers plans.
type fakePRs struct {
	mu        sync.Mutex
	signals   []int
	forgotten []int
	forgetErr error
}

func (f *fakePRs) ForgetPR(n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.forgetErr != nil {
		return f.forgetErr
	}
	f.forgotten = append(f.forgotten, n)
	return nil
}

func (f *fakePRs) PRPlans(context.Context) ([]wire.PRPlanRecord, error) { return nil, nil }

func (f *fakePRs) forgot() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.forgotten)
}

func (f *fakePRs) SignalPR(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signals = append(f.signals, n)
}

func (f *fakePRs) PRPlan(_ context.Context, n int) (wire.PRPlan, error) {
	if n == 404 {
		return wire.PRPlan{}, fmt.Errorf("%w: refs/pull/404/head does not exist on the remote", ErrNotFound)
	}
	return wire.PRPlan{Number: n, RefPlan: wire.RefPlan{Valid: true, Text: "No changes: 1 services up to date."}}, nil
}

func (f *fakePRs) got() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.signals)
}

func newPREnv(t *testing.T) (*testEnv, *fakePRs) {
	env := &testEnv{backend: newFakeBackend(), config: newFakeConfig(), reg: prometheus.NewRegistry()}
	prs := &fakePRs{}
	srv, err := New(Options{Backend: env.backend, Config: env.config, PRs: prs, AdminToken: generatedAdmin, Registry: env.reg})
	if err != nil {
		t.Fatal(err)
	}
	env.handler = srv.Handler()
	return env, prs
}

func prBody(action string, number int, base, cloneURL string) []byte {
	name := "acme/infra"
	if cloneURL != trackedRepo {
		name = "acme/other"
	}
	return fmt.Appendf(nil, `{"action":%q,"number":%d,"pull_request":{"number":%d,"base":{"ref":%q}},"repository":{"full_name":%q,"clone_url":%q}}`,
		action, number, number, base, name, cloneURL)
}

func TestPullRequestWebhookSignalsAPlan(t *testing.T) {
	cases := []struct {
		name   string
		body   []byte
		status string
		want   []int // signalled
		forget []int
	}{
		{"opened", prBody("opened", 7, "main", trackedRepo), "pull request plan signalled", []int{7}, nil},
		{"synchronize", prBody("synchronize", 7, "main", trackedRepo), "pull request plan signalled", []int{7}, nil},
		{"reopened", prBody("reopened", 8, "main", trackedRepo), "pull request plan signalled", []int{8}, nil},
		{"closed", prBody("closed", 7, "main", trackedRepo), "pull request plan forgotten", nil, []int{7}},
		{"closed after a retarget", prBody("closed", 9, "dev", trackedRepo), "pull request plan forgotten", nil, []int{9}},
		{"closed elsewhere", prBody("closed", 7, "main", "https://github.com/acme/other.git"), "ignored", nil, nil},
		{"labeled", prBody("labeled", 7, "main", trackedRepo), "ignored", nil, nil},
		{"other base", prBody("opened", 7, "dev", trackedRepo), "ignored", nil, nil},
		{"other repo", prBody("opened", 7, "main", "https://github.com/acme/other.git"), "ignored", nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, prs := newPREnv(t)
			rec := env.github("pull_request", "", "sha256="+sign(webhookSecret, c.body), c.body)
			if rec.Code != http.StatusAccepted || jsonStatus(t, rec) != c.status {
				t.Fatalf("got %d %s", rec.Code, rec.Body)
			}
			if got := prs.got(); !slices.Equal(got, c.want) {
				t.Fatalf("signals = %v, want %v", got, c.want)
			}
			if got := prs.forgot(); !slices.Equal(got, c.forget) {
				t.Fatalf("forgotten = %v, want %v", got, c.forget)
			}
			if len(env.backend.syncCalls()) != 0 {
				t.Fatal("a pull request event signalled a sync")
			}
		})
	}
	t.Run("unsigned", func(t *testing.T) {
		env, prs := newPREnv(t)
		body := prBody("opened", 7, "main", trackedRepo)
		if rec := env.github("pull_request", "", "sha256="+sign("wrong", body), body); rec.Code != http.StatusUnauthorized || len(prs.got()) != 0 {
			t.Fatalf("bad signature: %d, signals %v", rec.Code, prs.got())
		}
		body = prBody("closed", 7, "main", trackedRepo)
		if rec := env.github("pull_request", "", "sha256="+sign("wrong", body), body); rec.Code != http.StatusUnauthorized || len(prs.forgot()) != 0 {
			t.Fatalf("bad signature: %d, forgotten %v", rec.Code, prs.forgot())
		}
	})
	t.Run("state file fails", func(t *testing.T) {
		env, prs := newPREnv(t)
		prs.forgetErr = errors.New("forget the plan of pull request 7: disk on fire")
		body := prBody("closed", 7, "main", trackedRepo)
		rec := env.github("pull_request", "", "sha256="+sign(webhookSecret, body), body)
		if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "disk on fire") {
			t.Fatalf("a failed forget: %d %s", rec.Code, rec.Body)
		}
		if n := env.webhookCount(webhookFailed); n != 1 {
			t.Errorf("failed = %v", n)
		}
	})
}

func TestPlanOfAPullRequest(t *testing.T) {
	env, _ := newPREnv(t)
	rec := env.do(http.MethodGet, "/api/v1/plan?pr=7", viewerToken)
	var body map[string]any
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body["number"] != 7.0 {
		t.Fatalf("plan?pr=7: %d %s", rec.Code, rec.Body)
	}
	if rec := env.do(http.MethodGet, "/api/v1/plan?pr=404", viewerToken); rec.Code != http.StatusNotFound {
		t.Fatalf("missing PR: %d %s", rec.Code, rec.Body)
	}
	if rec := env.do(http.MethodGet, "/api/v1/plan?pr=x", viewerToken); rec.Code != http.StatusBadRequest {
		t.Fatalf("pr=x: %d", rec.Code)
	}
	if rec := env.do(http.MethodGet, "/api/v1/plan?pr=7", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", rec.Code)
	}
	plain := newTestEnv(t) // no PullRequests configured
	if rec := plain.do(http.MethodGet, "/api/v1/plan?pr=7", viewerToken); rec.Code != http.StatusNotImplemented {
		t.Fatalf("without PR plans: %d", rec.Code)
	}
}
