package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxWebhookBody is the largest webhook body accepted; larger gets 413,
// before more of it is buffered. The body is read before its signature can be
// checked, so this bounds what an unauthenticated client makes the API hold
// per connection (ReadTimeout bounds for how long). GitHub sends up to 25 MB,
// but the fields orca-sync reads are small and a push to an infra repository
// stays far below 1 MiB; a larger one is still picked up by the next interval
// sync (docs/reference/api.md).
const maxWebhookBody = 1 << 20

const branchRefPrefix = "refs/heads/"

// githubPush is the part of a GitHub (or Gitea) push event the API reads.
type githubPush struct {
	Ref        string `json:"ref"`
	Repository struct {
		FullName string `json:"full_name"`
		CloneURL string `json:"clone_url"`
		HTMLURL  string `json:"html_url"`
		SSHURL   string `json:"ssh_url"`
	} `json:"repository"`
}

// githubPullRequest is the part of a GitHub (or Gitea) pull_request event
// the API reads.
type githubPullRequest struct {
	Action      string `json:"action"`
	Number      int    `json:"number"`
	PullRequest struct {
		Number int `json:"number"`
		Base   struct {
			Ref string `json:"ref"`
		} `json:"base"`
	} `json:"pull_request"`
	Repository struct {
		FullName string `json:"full_name"`
		CloneURL string `json:"clone_url"`
		HTMLURL  string `json:"html_url"`
		SSHURL   string `json:"ssh_url"`
	} `json:"repository"`
}

// gitlabPush is the part of a GitLab "Push Hook" event the API reads.
type gitlabPush struct {
	Ref     string `json:"ref"`
	Project struct {
		PathWithNamespace string `json:"path_with_namespace"`
		GitHTTPURL        string `json:"git_http_url"`
		GitSSHURL         string `json:"git_ssh_url"`
		WebURL            string `json:"web_url"`
	} `json:"project"`
}

// pushEvent is a push from any forge.
type pushEvent struct {
	ref      string
	fullName string
	urls     []string
}

// handleGitHub serves GitHub and Gitea webhooks. The HMAC is verified over the
// raw body before anything of it is parsed. The handler only signals.
func (s *Server) handleGitHub(w http.ResponseWriter, r *http.Request) {
	secret := s.config.WebhookSecret()
	if secret == "" {
		s.webhookError(w, http.StatusForbidden, webhookForbidden, "webhook secret not configured")
		return
	}
	body, ok := s.readWebhookBody(w, r)
	if !ok {
		return
	}
	if !validGitHubSignature([]byte(secret), body, r.Header) {
		s.webhookError(w, http.StatusUnauthorized, webhookUnauthorized, "missing or invalid signature")
		return
	}
	if s.duplicate(r, firstHeader(r.Header, "X-GitHub-Delivery", "X-Gitea-Delivery")) {
		s.webhookAnswer(w, http.StatusOK, webhookDuplicate, "duplicate delivery")
		return
	}
	switch firstHeader(r.Header, "X-GitHub-Event", "X-Gitea-Event") {
	case "ping":
		s.webhookAnswer(w, http.StatusOK, webhookAccepted, "pong")
	case "push":
		var ev githubPush
		if err := decodePayload(body, r.Header.Get("Content-Type"), &ev); err != nil {
			s.webhookError(w, http.StatusBadRequest, webhookBadRequest, err.Error())
			return
		}
		repo := ev.Repository
		s.handlePush(w, r, pushEvent{
			ref: ev.Ref, fullName: repo.FullName,
			urls: []string{repo.CloneURL, repo.HTMLURL, repo.SSHURL},
		})
	case "pull_request":
		var ev githubPullRequest
		if err := decodePayload(body, r.Header.Get("Content-Type"), &ev); err != nil {
			s.webhookError(w, http.StatusBadRequest, webhookBadRequest, err.Error())
			return
		}
		s.handlePullRequest(w, r, ev)
	default:
		s.webhookAnswer(w, http.StatusAccepted, webhookIgnored, "ignored")
	}
}

// prPlanActions are the pull_request actions that signal a plan (Gitea
// says "synchronized").
var prPlanActions = map[string]bool{"opened": true, "synchronize": true, "synchronized": true, "reopened": true}

// handlePullRequest signals the plan of a pull request into the tracked
// branch of the tracked repository that was opened, reopened or pushed to,
// and forgets the kept plan of one that was closed (merged or not; whatever
// its base now, as one never planned has nothing to forget).
func (s *Server) handlePullRequest(w http.ResponseWriter, r *http.Request, ev githubPullRequest) {
	repoURL, branch := s.config.Tracked()
	repo := ev.Repository
	n := ev.Number
	if n == 0 {
		n = ev.PullRequest.Number
	}
	ours := s.prs != nil && n > 0 && repoMatches(repoURL, repo.FullName, repo.CloneURL, repo.HTMLURL, repo.SSHURL)
	switch {
	case ours && ev.Action == "closed":
		if err := s.prs.ForgetPR(n); err != nil {
			s.log.ErrorContext(r.Context(), "webhook: pull request plan not forgotten", "repo", repo.FullName, "pr", n, "error", err)
			s.webhookError(w, http.StatusInternalServerError, webhookFailed, err.Error())
			return
		}
		s.log.InfoContext(r.Context(), "webhook: pull request plan forgotten", "repo", repo.FullName, "pr", n)
		s.webhookAnswer(w, http.StatusAccepted, webhookAccepted, "pull request plan forgotten")
	case ours && ev.PullRequest.Base.Ref == branch && prPlanActions[ev.Action]:
		s.prs.SignalPR(n)
		s.log.InfoContext(r.Context(), "webhook: pull request plan signalled", "repo", repo.FullName, "pr", n, "action", ev.Action)
		s.webhookAnswer(w, http.StatusAccepted, webhookAccepted, "pull request plan signalled")
	default:
		s.log.DebugContext(r.Context(), "webhook: pull request ignored", "repo", repo.FullName, "pr", n, "action", ev.Action)
		s.webhookAnswer(w, http.StatusAccepted, webhookIgnored, "ignored")
	}
}

// handleGitLab serves GitLab webhooks, authenticated by X-Gitlab-Token.
func (s *Server) handleGitLab(w http.ResponseWriter, r *http.Request) {
	want := s.config.GitLabToken()
	if want == "" {
		s.webhookError(w, http.StatusForbidden, webhookForbidden, "gitlab token not configured")
		return
	}
	got := r.Header.Get("X-Gitlab-Token")
	if got == "" || !equalSum(sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))) {
		s.webhookError(w, http.StatusUnauthorized, webhookUnauthorized, "missing or invalid gitlab token")
		return
	}
	body, ok := s.readWebhookBody(w, r)
	if !ok {
		return
	}
	if s.duplicate(r, r.Header.Get("X-Gitlab-Event-UUID")) {
		s.webhookAnswer(w, http.StatusOK, webhookDuplicate, "duplicate delivery")
		return
	}
	if r.Header.Get("X-Gitlab-Event") != "Push Hook" {
		s.webhookAnswer(w, http.StatusAccepted, webhookIgnored, "ignored")
		return
	}
	var ev gitlabPush
	if err := json.Unmarshal(body, &ev); err != nil {
		s.webhookError(w, http.StatusBadRequest, webhookBadRequest, "malformed push event: "+err.Error())
		return
	}
	p := ev.Project
	s.handlePush(w, r, pushEvent{
		ref: ev.Ref, fullName: p.PathWithNamespace,
		urls: []string{p.GitHTTPURL, p.GitSSHURL, p.WebURL},
	})
}

// handlePush signals a sync for a push to the tracked repo and branch, else
// an image refresh of the services watching the pushed repo and branch.
func (s *Server) handlePush(w http.ResponseWriter, r *http.Request, ev pushEvent) {
	repoURL, branch := s.config.Tracked()
	if branch != "" && ev.ref == branchRefPrefix+branch && repoMatches(repoURL, ev.fullName, ev.urls...) {
		s.backend.Sync("webhook", false)
		s.log.InfoContext(r.Context(), "webhook: sync signalled", "repo", ev.fullName, "ref", ev.ref)
		s.webhookAnswer(w, http.StatusAccepted, webhookAccepted, "sync signalled")
		return
	}
	if pushed, ok := strings.CutPrefix(ev.ref, branchRefPrefix); ok && pushed != "" && ev.fullName != "" {
		if n := s.backend.RefreshImages(ev.fullName, pushed); n > 0 {
			s.log.InfoContext(r.Context(), "webhook: image refresh signalled", "repo", ev.fullName, "ref", ev.ref, "services", n)
			s.webhookAnswer(w, http.StatusAccepted, webhookAccepted, "image refresh signalled")
			return
		}
	}
	s.log.DebugContext(r.Context(), "webhook: push ignored", "repo", ev.fullName, "ref", ev.ref)
	s.webhookAnswer(w, http.StatusAccepted, webhookIgnored, "ignored")
}

// readWebhookBody reads at most maxWebhookBody bytes; more is answered 413.
func (s *Server) readWebhookBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > maxWebhookBody {
		s.webhookError(w, http.StatusRequestEntityTooLarge, webhookTooLarge, "body over 1 MiB")
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			s.webhookError(w, http.StatusRequestEntityTooLarge, webhookTooLarge, "body over 1 MiB")
			return nil, false
		}
		s.webhookError(w, http.StatusBadRequest, webhookBadRequest, "read body: "+err.Error())
		return nil, false
	}
	return body, true
}

// validGitHubSignature checks X-Hub-Signature-256 ("sha256=<hex>") and
// Gitea's X-Gitea-Signature ("<hex>"), HMAC-SHA256 of body; either valid
// one is enough.
func validGitHubSignature(secret, body []byte, h http.Header) bool {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	want := mac.Sum(nil)
	valid := false
	if sig, ok := strings.CutPrefix(h.Get("X-Hub-Signature-256"), "sha256="); ok {
		valid = hexMACEqual(sig, want)
	}
	if sig := h.Get("X-Gitea-Signature"); sig != "" {
		valid = hexMACEqual(sig, want) || valid
	}
	return valid
}

func hexMACEqual(sig string, want []byte) bool {
	got, err := hex.DecodeString(sig)
	return err == nil && hmac.Equal(got, want)
}

// decodePayload parses a JSON event body, or the "payload" field of a form
// body (GitHub's application/x-www-form-urlencoded content type).
func decodePayload(body []byte, contentType string, v any) error {
	if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return fmt.Errorf("malformed form body: %w", err)
		}
		body = []byte(form.Get("payload"))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("malformed event: %w", err)
	}
	return nil
}

// duplicate reports whether the delivery id was seen before. A state-file
// error is logged and the delivery handled: a repeated signal is harmless.
func (s *Server) duplicate(r *http.Request, id string) bool {
	if id == "" || s.deliveries == nil {
		return false
	}
	seen, err := s.deliveries.SeenDelivery(id, time.Now())
	if err != nil {
		s.log.WarnContext(r.Context(), "webhook: delivery de-duplication", "error", err)
		return false
	}
	return seen
}

func firstHeader(h http.Header, keys ...string) string {
	for _, k := range keys {
		if v := h.Get(k); v != "" {
			return v
		}
	}
	return ""
}

func (s *Server) webhookAnswer(w http.ResponseWriter, code int, result, status string) {
	s.webhooks.WithLabelValues(result).Inc()
	writeJSON(w, code, statusBody(status))
}

func (s *Server) webhookError(w http.ResponseWriter, code int, result, msg string) {
	s.webhooks.WithLabelValues(result).Inc()
	writeError(w, code, msg)
}
