package api

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

func pushBody(fullName, cloneURL, ref string) []byte {
	return fmt.Appendf(nil, `{"ref":%q,"repository":{"full_name":%q,"clone_url":%q,"html_url":"","ssh_url":""}}`,
		ref, fullName, cloneURL)
}

// github sends a GitHub webhook; headers are set as given ("" skips one).
func (e *testEnv) github(event, delivery, signature string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/api/v1/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	setNonEmpty(req.Header, "X-GitHub-Event", event)
	setNonEmpty(req.Header, "X-GitHub-Delivery", delivery)
	setNonEmpty(req.Header, "X-Hub-Signature-256", signature)
	return serve(e, req)
}

func setNonEmpty(h http.Header, k, v string) {
	if v != "" {
		h.Set(k, v)
	}
}

// webhookCount scrapes /metrics for orca_sync_webhooks_total{result}.
func (e *testEnv) webhookCount(result string) float64 {
	rec := e.do(http.MethodGet, "/metrics", "")
	prefix := `orca_sync_webhooks_total{result="` + result + `"} `
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return -1
			}
			return f
		}
	}
	return -1
}

func TestGitHubPushToTrackedBranch(t *testing.T) {
	env := newTestEnv(t)
	body := pushBody("acme/infra", "https://github.com/acme/infra.git", "refs/heads/main")
	rec := env.github("push", "d1", "sha256="+sign(webhookSecret, body), body)
	if rec.Code != http.StatusAccepted || jsonStatus(t, rec) != "sync signalled" {
		t.Fatalf("push: %d %s", rec.Code, rec.Body)
	}
	if got := env.backend.syncCalls(); len(got) != 1 || got[0] != (syncCall{"webhook", false}) {
		t.Fatalf("Sync calls = %v, want one webhook sync", got)
	}
	if n := env.webhookCount(webhookAccepted); n != 1 {
		t.Errorf("accepted = %v", n)
	}

	// The same delivery again: 200, nothing more.
	rec = env.github("push", "d1", "sha256="+sign(webhookSecret, body), body)
	if rec.Code != http.StatusOK || jsonStatus(t, rec) != "duplicate delivery" {
		t.Fatalf("duplicate: %d %s", rec.Code, rec.Body)
	}
	if got := env.backend.syncCalls(); len(got) != 1 {
		t.Fatalf("Sync calls after duplicate = %v", got)
	}
	if n := env.webhookCount(webhookDuplicate); n != 1 {
		t.Errorf("duplicate = %v", n)
	}
}

func TestGitHubRefused(t *testing.T) {
	body := pushBody("acme/infra", "https://github.com/acme/infra.git", "refs/heads/main")
	big := append(bytes.Repeat([]byte(" "), maxWebhookBody), body...)
	cases := []struct {
		name      string
		body      []byte
		signature string
		want      int
		result    string
	}{
		{"wrong signature", body, "sha256=" + sign("other", body), http.StatusUnauthorized, webhookUnauthorized},
		{"no signature", body, "", http.StatusUnauthorized, webhookUnauthorized},
		{"no prefix", body, sign(webhookSecret, body), http.StatusUnauthorized, webhookUnauthorized},
		{"sha1 prefix", body, "sha1=" + sign(webhookSecret, body), http.StatusUnauthorized, webhookUnauthorized},
		{"signature of another body", body, "sha256=" + sign(webhookSecret, append(body, ' ')), http.StatusUnauthorized, webhookUnauthorized},
		{"over 1 MiB, signed", big, "sha256=" + sign(webhookSecret, big), http.StatusRequestEntityTooLarge, webhookTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := newTestEnv(t)
			rec := env.github("push", "", c.signature, c.body)
			if rec.Code != c.want {
				t.Fatalf("code %d, want %d", rec.Code, c.want)
			}
			jsonError(t, rec)
			if got := env.backend.syncCalls(); len(got) != 0 {
				t.Fatalf("Sync called: %v", got)
			}
			if n := env.webhookCount(c.result); n != 1 {
				t.Errorf("%s = %v", c.result, n)
			}
		})
	}
}

// TestGitHubBodyOverLimitWithoutLength streams a body of unknown length
// (chunked), so only the reader limit can catch it.
func TestGitHubBodyOverLimitWithoutLength(t *testing.T) {
	env := newTestEnv(t)
	big := bytes.Repeat([]byte("x"), maxWebhookBody+1)
	req := httptest.NewRequest(http.MethodPost, "/api/v1/webhooks/github", struct{ *bytes.Reader }{bytes.NewReader(big)})
	req.ContentLength = -1
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+sign(webhookSecret, big))
	if rec := serve(env, req); rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("code %d, want 413", rec.Code)
	}
	// Exactly 1 MiB is allowed.
	limit := big[:maxWebhookBody]
	rec := env.github("ping", "", "sha256="+sign(webhookSecret, limit), limit)
	if rec.Code != http.StatusOK {
		t.Fatalf("1 MiB body: %d, want 200", rec.Code)
	}
}

func TestGitHubNoSecretConfigured(t *testing.T) {
	env := newTestEnv(t)
	env.config.set(func(c *fakeConfig) { c.secret = "" })
	body := pushBody("acme/infra", trackedRepo, "refs/heads/main")
	rec := env.github("push", "", "sha256="+sign("", body), body)
	if rec.Code != http.StatusForbidden || jsonError(t, rec) != "webhook secret not configured" {
		t.Fatalf("no secret: %d %s", rec.Code, rec.Body)
	}
	if len(env.backend.syncCalls()) != 0 {
		t.Fatal("Sync called")
	}
	if n := env.webhookCount(webhookForbidden); n != 1 {
		t.Errorf("forbidden = %v", n)
	}
}

func TestGitHubEvents(t *testing.T) {
	cases := []struct {
		name, event string
		body        []byte
		want        int
		status      string
		refreshes   string
	}{
		{"ping", "ping", []byte(`{"zen":"hi"}`), http.StatusOK, "pong", "[]"},
		{"other branch", "push", pushBody("acme/infra", trackedRepo, "refs/heads/dev"), http.StatusAccepted, "ignored", "[acme/infra@dev]"},
		{"tag", "push", pushBody("acme/infra", trackedRepo, "refs/tags/v1"), http.StatusAccepted, "ignored", "[]"},
		{"watch repo", "push", pushBody("acme/app", "https://github.com/acme/app.git", "refs/heads/main"), http.StatusAccepted, "image refresh signalled", "[acme/app@main]"},
		{"unwatched repo", "push", pushBody("acme/other", "https://github.com/acme/other.git", "refs/heads/main"), http.StatusAccepted, "ignored", "[acme/other@main]"},
		{"pull request", "pull_request", []byte(`{"action":"opened"}`), http.StatusAccepted, "ignored", "[]"},
		{"unknown event", "issues", []byte(`not even json`), http.StatusAccepted, "ignored", "[]"},
		{"no event", "", []byte(`{}`), http.StatusAccepted, "ignored", "[]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := newTestEnv(t)
			rec := env.github(c.event, "", "sha256="+sign(webhookSecret, c.body), c.body)
			if rec.Code != c.want || jsonStatus(t, rec) != c.status {
				t.Fatalf("got %d %s, want %d %q", rec.Code, rec.Body, c.want, c.status)
			}
			if got := env.backend.syncCalls(); len(got) != 0 {
				t.Fatalf("Sync called: %v", got)
			}
			if got := fmt.Sprint(env.backend.refreshCalls()); got != c.refreshes {
				t.Errorf("RefreshImages calls = %s, want %s", got, c.refreshes)
			}
		})
	}
}

func TestGitHubMalformedPush(t *testing.T) {
	env := newTestEnv(t)
	body := []byte(`{"ref": `)
	rec := env.github("push", "", "sha256="+sign(webhookSecret, body), body)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("code %d, want 400", rec.Code)
	}
	jsonError(t, rec)
	if n := env.webhookCount(webhookBadRequest); n != 1 {
		t.Errorf("bad_request = %v", n)
	}
}

func TestGitHubFormEncodedPush(t *testing.T) {
	env := newTestEnv(t)
	payload := pushBody("acme/infra", trackedRepo, "refs/heads/main")
	body := []byte("payload=" + url.QueryEscape(string(payload)))
	req := httptest.NewRequest(http.MethodPost, "/api/v1/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+sign(webhookSecret, body))
	if rec := serve(env, req); rec.Code != http.StatusAccepted || len(env.backend.syncCalls()) != 1 {
		t.Fatalf("form push: %d %s, syncs %v", rec.Code, rec.Body, env.backend.syncCalls())
	}
}

func TestGiteaSignature(t *testing.T) {
	body := pushBody("acme/infra", "https://gitea.example.com/acme/infra.git", "refs/heads/main")
	for _, c := range []struct {
		sig  string
		want int
	}{
		{sign(webhookSecret, body), http.StatusAccepted},
		{sign("other", body), http.StatusUnauthorized},
		{"sha256=" + sign(webhookSecret, body), http.StatusUnauthorized},
	} {
		env := newTestEnv(t)
		req := httptest.NewRequest(http.MethodPost, "/api/v1/webhooks/github", bytes.NewReader(body))
		req.Header.Set("X-Gitea-Event", "push")
		req.Header.Set("X-Gitea-Delivery", "g1")
		req.Header.Set("X-Gitea-Signature", c.sig)
		rec := serve(env, req)
		if rec.Code != c.want {
			t.Fatalf("Gitea signature %q: %d, want %d", c.sig, rec.Code, c.want)
		}
		wantSyncs := 0
		if c.want == http.StatusAccepted {
			wantSyncs = 1
		}
		if got := len(env.backend.syncCalls()); got != wantSyncs {
			t.Fatalf("Sync calls = %d, want %d", got, wantSyncs)
		}
	}
}

func (e *testEnv) gitlab(token, event, uuid string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/api/v1/webhooks/gitlab", bytes.NewReader(body))
	setNonEmpty(req.Header, "X-Gitlab-Token", token)
	setNonEmpty(req.Header, "X-Gitlab-Event", event)
	setNonEmpty(req.Header, "X-Gitlab-Event-UUID", uuid)
	return serve(e, req)
}

func gitlabPushBody(path, httpURL, sshURL, ref string) []byte {
	return fmt.Appendf(nil, `{"object_kind":"push","ref":%q,"project":{"path_with_namespace":%q,"git_http_url":%q,"git_ssh_url":%q,"web_url":""}}`,
		ref, path, httpURL, sshURL)
}

func TestGitLab(t *testing.T) {
	env := newTestEnv(t)
	env.config.set(func(c *fakeConfig) { c.repoURL = "git@gitlab.com:Acme/Infra.git" })
	body := gitlabPushBody("acme/infra", "https://gitlab.com/acme/infra.git", "git@gitlab.com:acme/infra.git", "refs/heads/main")

	for _, token := range []string{"", "wrong", gitlabSecret + "x"} {
		if rec := env.gitlab(token, "Push Hook", "", body); rec.Code != http.StatusUnauthorized {
			t.Fatalf("token %q: %d, want 401", token, rec.Code)
		}
	}
	if got := env.backend.syncCalls(); len(got) != 0 {
		t.Fatalf("Sync called with a wrong token: %v", got)
	}
	rec := env.gitlab(gitlabSecret, "Push Hook", "u1", body)
	if rec.Code != http.StatusAccepted || jsonStatus(t, rec) != "sync signalled" {
		t.Fatalf("push: %d %s", rec.Code, rec.Body)
	}
	if rec = env.gitlab(gitlabSecret, "Push Hook", "u1", body); rec.Code != http.StatusOK {
		t.Fatalf("duplicate: %d, want 200", rec.Code)
	}
	if rec = env.gitlab(gitlabSecret, "Merge Request Hook", "", []byte(`{}`)); rec.Code != http.StatusAccepted || jsonStatus(t, rec) != "ignored" {
		t.Fatalf("merge request: %d %s", rec.Code, rec.Body)
	}
	if rec = env.gitlab(gitlabSecret, "Push Hook", "", []byte(`{`)); rec.Code != http.StatusBadRequest {
		t.Fatalf("malformed: %d, want 400", rec.Code)
	}
	watch := gitlabPushBody("acme/app", "https://gitlab.com/acme/app.git", "", "refs/heads/main")
	if rec = env.gitlab(gitlabSecret, "Push Hook", "", watch); jsonStatus(t, rec) != "image refresh signalled" {
		t.Fatalf("watch push: %d %s", rec.Code, rec.Body)
	}
	if got := env.backend.syncCalls(); len(got) != 1 {
		t.Fatalf("Sync calls = %v, want 1", got)
	}
	big := append(bytes.Repeat([]byte(" "), maxWebhookBody), body...)
	if rec = env.gitlab(gitlabSecret, "Push Hook", "", big); rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("big body: %d, want 413", rec.Code)
	}

	env.config.set(func(c *fakeConfig) { c.gitlab = "" })
	rec = env.gitlab("", "Push Hook", "", body)
	if rec.Code != http.StatusForbidden || !strings.Contains(jsonError(t, rec), "not configured") {
		t.Fatalf("no token configured: %d %s", rec.Code, rec.Body)
	}
}

func TestDeliveryStoreErrorStillSignals(t *testing.T) {
	env := newTestEnv(t)
	srv, err := New(Options{
		Backend: env.backend, Config: env.config, Registry: env.reg,
		Deliveries: &fakeDeliveries{err: errBoom},
	})
	if err != nil {
		t.Fatal(err)
	}
	env.handler = srv.Handler()
	body := pushBody("acme/infra", trackedRepo, "refs/heads/main")
	if rec := env.github("push", "d9", "sha256="+sign(webhookSecret, body), body); rec.Code != http.StatusAccepted {
		t.Fatalf("code %d, want 202", rec.Code)
	}
	if len(env.backend.syncCalls()) != 1 {
		t.Fatal("no Sync call")
	}
}
