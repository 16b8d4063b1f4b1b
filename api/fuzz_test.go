package api

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// correctSignature reports whether either signature header carries the
// HMAC-SHA256 of body under webhookSecret; written independently of the
// handler's check.
func correctSignature(body []byte, hub, gitea string) bool {
	mac := hmac.New(sha256.New, []byte(webhookSecret))
	mac.Write(body)
	want := mac.Sum(nil)
	if sig, ok := strings.CutPrefix(hub, "sha256="); ok {
		if got, err := hex.DecodeString(sig); err == nil && bytes.Equal(got, want) {
			return true
		}
	}
	got, err := hex.DecodeString(gitea)
	return err == nil && bytes.Equal(got, want)
}

// FuzzGitHubWebhook: no body or header panics the handler, and no request
// signals a sync unless it carries the correct HMAC of its body.
func FuzzGitHubWebhook(f *testing.F) {
	push := pushBody("acme/infra", trackedRepo, "refs/heads/main")
	f.Add(push, "sha256="+sign(webhookSecret, push), "", "push", "d1", "application/json")
	f.Add(push, "", sign(webhookSecret, push), "push", "", "")
	f.Add(push, "sha256="+sign("wrong", push), "", "push", "d2", "application/json")
	f.Add(push, "", "", "push", "", "")
	f.Add([]byte(`{"zen":"x"}`), "sha256="+sign(webhookSecret, []byte(`{"zen":"x"}`)), "", "ping", "d3", "")
	f.Add([]byte(`{"ref":`), "sha256="+sign(webhookSecret, []byte(`{"ref":`)), "", "push", "", "")
	form := []byte("payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D")
	f.Add(form, "sha256="+sign(webhookSecret, form), "", "push", "", "application/x-www-form-urlencoded")

	env := newTestEnv(f)
	f.Fuzz(func(t *testing.T, body []byte, hub, gitea, event, delivery, contentType string) {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/webhooks/github", bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("X-Hub-Signature-256", hub)
		req.Header.Set("X-Gitea-Signature", gitea)
		req.Header.Set("X-GitHub-Event", event)
		req.Header.Set("X-GitHub-Delivery", delivery)
		before := len(env.backend.syncCalls())
		rec := serve(env, req)
		synced := len(env.backend.syncCalls()) - before
		if synced > 1 {
			t.Fatalf("one delivery made %d Sync calls", synced)
		}
		if synced == 1 && !correctSignature(body, hub, gitea) {
			t.Fatalf("Sync called without a valid signature: hub %q gitea %q", hub, gitea)
		}
		if synced == 1 && rec.Code != http.StatusAccepted {
			t.Fatalf("Sync called but answered %d", rec.Code)
		}
		if rec.Code == http.StatusUnauthorized && correctSignature(body, hub, gitea) {
			t.Fatalf("valid signature answered 401")
		}
	})
}
