package dashboard

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/api/wire"
	"github.com/orca-sync/orca-sync/state"
)

// fake is the daemon as the dashboard sees it.
type fake struct {
	mu      sync.Mutex
	st      wire.Status
	tokens  map[string]string // token -> role
	syncs   []string
	actions []string
}

func (f *fake) Status(context.Context) (wire.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st, nil
}

func (f *fake) History(context.Context, int) ([]state.SyncRecord, error) {
	return []state.SyncRecord{{ID: 1, Commit: "abc123", Trigger: "start", Result: "succeeded",
		Services: []state.ServiceResult{{Project: "shop", Service: "web", Action: "create"}}}}, nil
}

func (f *fake) Drift(context.Context) (wire.DriftReport, error) { return wire.DriftReport{}, nil }

func (f *fake) Logs(_ context.Context, _, _ string, _ int, _ bool, w io.Writer) error {
	_, err := io.WriteString(w, "listening on :8080 password=${secrets.DB}\n")
	return err
}

func (f *fake) Sync(trigger string, retry bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs = append(f.syncs, fmt.Sprintf("%s retry=%v", trigger, retry))
}

func (f *fake) Redeploy(_ context.Context, p, n string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, "redeploy "+p+"/"+n)
	return nil
}

func (f *fake) Canary(_ context.Context, p, n, action string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, action+" "+p+"/"+n)
	return nil
}

func (f *fake) authenticate(token string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.tokens[token]
	return r, ok
}

func (f *fake) calls() (syncs, actions []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.syncs...), append([]string(nil), f.actions...)
}

func (f *fake) setSync(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.Services[0].Sync = s
}

const (
	viewerTok   = "viewer-token-0123456789"
	deployerTok = "deployer-token-0123456789"
)

func newTest(t *testing.T) (*fake, *Dashboard) {
	t.Helper()
	f := &fake{
		st: wire.Status{Commit: "abc123def4567890", Message: "web v1", Node: "n1",
			Services: []wire.ServiceStatus{{Project: "shop", Name: "web", Sync: wire.SyncSynced, Health: wire.HealthHealthy, Replicas: 2, Ready: 2, Image: "app:v1"}}},
		tokens: map[string]string{viewerTok: "viewer", deployerTok: "deployer"},
	}
	d, err := New(Options{Status: f, Inspect: f, Sync: f, Services: f, Authenticate: f.authenticate, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return f, d
}

func do(d http.Handler, method, target string, form url.Values, hdr map[string]string) *httptest.ResponseRecorder {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	d.ServeHTTP(w, r)
	return w
}

// signIn returns the session cookie header and the CSRF token of the
// page the session sees.
func signIn(t *testing.T, d http.Handler, token string) (cookie, csrf string) {
	t.Helper()
	w := do(d, http.MethodPost, "/ui/signin", url.Values{"token": {token}}, browserOrigin)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("sign in: %d %s", w.Code, w.Body)
	}
	c := w.Result().Cookies()
	if len(c) != 1 || c[0].Name != cookieName {
		t.Fatalf("sign in set cookies %v", c)
	}
	cookie = c[0].Name + "=" + c[0].Value
	page := do(d, http.MethodGet, "/", nil, map[string]string{"Cookie": cookie})
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page.Body.String())
	if m == nil {
		t.Fatalf("no CSRF token on the page:\n%s", page.Body)
	}
	return cookie, m[1]
}

func TestWithoutCredentialsOnlyTheSignIn(t *testing.T) {
	_, d := newTest(t)
	w := do(d, http.MethodGet, "/", nil, nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `action="/ui/signin"`) || strings.Contains(w.Body.String(), "shop") {
		t.Fatalf("GET / without a session: %d\n%s", w.Code, w.Body)
	}
	for _, p := range []string{"/ui/history", "/ui/services/shop/web", "/ui/prs", "/ui/events?view=overview"} {
		w := do(d, http.MethodGet, p, nil, map[string]string{"Authorization": "Bearer not-a-token-at-all"})
		if w.Code != http.StatusUnauthorized || strings.Contains(w.Body.String(), "app:v1") {
			t.Errorf("GET %s with a wrong token: %d\n%s", p, w.Code, w.Body)
		}
	}
	if w := do(d, http.MethodGet, "/ui/assets/app.css", nil, nil); w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/css") {
		t.Errorf("the stylesheet is open: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
}

func TestSignInCookie(t *testing.T) {
	_, d := newTest(t)
	if w := do(d, http.MethodPost, "/ui/signin", url.Values{"token": {"wrong-token-0123456789"}}, browserOrigin); w.Code != http.StatusUnauthorized || len(w.Result().Cookies()) != 0 {
		t.Fatalf("a wrong token: %d, cookies %v", w.Code, w.Result().Cookies())
	}
	for _, how := range []string{"http", "tls", "forwarded-https"} {
		overTLS := how != "http"
		r := httptest.NewRequest(http.MethodPost, "/ui/signin", strings.NewReader("token="+viewerTok))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Sec-Fetch-Site", "same-origin") // a browser that sends no Origin
		switch how {
		case "tls":
			r.TLS = &tls.ConnectionState{}
		case "forwarded-https": // behind a TLS-terminating proxy
			r.Header.Set("X-Forwarded-Proto", "https")
		}
		w := httptest.NewRecorder()
		d.ServeHTTP(w, r)
		c := w.Result().Cookies()
		if w.Code != http.StatusSeeOther || len(c) != 1 {
			t.Fatalf("sign in: %d %v", w.Code, c)
		}
		if !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode || c[0].Secure != overTLS {
			t.Errorf("%s: cookie %+v", how, c[0])
		}
	}
	if w := do(d, http.MethodPost, "/ui/signin", url.Values{"token": {viewerTok}}, map[string]string{"Origin": "http://evil.example"}); w.Code != http.StatusForbidden {
		t.Errorf("a cross-origin sign-in: %d", w.Code)
	}
	// Login CSRF: a form posted from elsewhere by a client that names no
	// origin at all is refused too.
	if w := do(d, http.MethodPost, "/ui/signin", url.Values{"token": {viewerTok}}, nil); w.Code != http.StatusForbidden || len(w.Result().Cookies()) != 0 {
		t.Errorf("a sign-in without Origin or Sec-Fetch-Site: %d, cookies %v", w.Code, w.Result().Cookies())
	}
}

// browserOrigin is the Origin a browser sends with the dashboard's own forms
// (httptest's requests go to example.com).
var browserOrigin = map[string]string{"Origin": "http://example.com"}

func TestActionsNeedTheSessionsCSRFTokenAndTheRole(t *testing.T) {
	f, d := newTest(t)
	cookie, csrf := signIn(t, d, deployerTok)
	h := map[string]string{"Cookie": cookie}
	for name, form := range map[string]url.Values{
		"no token":    {"confirm": {"yes"}},
		"wrong token": {"confirm": {"yes"}, "csrf": {"x" + csrf}},
	} {
		if w := do(d, http.MethodPost, "/ui/sync", form, h); w.Code != http.StatusForbidden {
			t.Errorf("%s: %d", name, w.Code)
		}
	}
	if w := do(d, http.MethodPost, "/ui/sync", url.Values{"csrf": {csrf}, "confirm": {"yes"}}, map[string]string{"Cookie": cookie, "Origin": "http://evil.example"}); w.Code != http.StatusForbidden {
		t.Errorf("cross-origin: %d", w.Code)
	}
	if w := do(d, http.MethodPost, "/ui/sync", url.Values{"csrf": {csrf}, "confirm": {"yes"}}, map[string]string{"Authorization": "Bearer " + deployerTok}); w.Code != http.StatusUnauthorized {
		t.Errorf("a bearer token opens the forms: %d", w.Code)
	}
	if syncs, _ := f.calls(); len(syncs) != 0 {
		t.Fatalf("refused POSTs synced: %v", syncs)
	}
	// The first POST asks for confirmation; the second does it.
	w := do(d, http.MethodPost, "/ui/sync", url.Values{"csrf": {csrf}, "retry": {"true"}}, h)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `name="confirm" value="yes"`) {
		t.Fatalf("unconfirmed: %d\n%s", w.Code, w.Body)
	}
	if syncs, _ := f.calls(); len(syncs) != 0 {
		t.Fatalf("an unconfirmed POST synced: %v", syncs)
	}
	if w := do(d, http.MethodPost, "/ui/sync", url.Values{"csrf": {csrf}, "retry": {"true"}, "confirm": {"yes"}}, h); w.Code != http.StatusSeeOther {
		t.Fatalf("confirmed: %d %s", w.Code, w.Body)
	}
	if w := do(d, http.MethodPost, "/ui/services/shop/web/promote", url.Values{"csrf": {csrf}, "confirm": {"yes"}}, h); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/services/shop/web" {
		t.Fatalf("promote: %d %v", w.Code, w.Header())
	}
	syncs, actions := f.calls()
	if strings.Join(syncs, ";") != "api retry=true" || strings.Join(actions, ";") != "promote shop/web" {
		t.Fatalf("syncs %v, actions %v", syncs, actions)
	}
	if page := do(d, http.MethodGet, "/ui/services/shop/web", nil, h); !strings.Contains(page.Body.String(), "promote signalled.") {
		t.Errorf("no flash after promote:\n%s", page.Body)
	}

	vcookie, vcsrf := signIn(t, d, viewerTok)
	if w := do(d, http.MethodPost, "/ui/sync", url.Values{"csrf": {vcsrf}, "confirm": {"yes"}}, map[string]string{"Cookie": vcookie}); w.Code != http.StatusForbidden {
		t.Errorf("a viewer's sync: %d", w.Code)
	}
	if page := do(d, http.MethodGet, "/", nil, map[string]string{"Cookie": vcookie}); strings.Contains(page.Body.String(), `action="/ui/sync"`) {
		t.Errorf("a viewer sees the sync form")
	}
	if syncs, _ := f.calls(); len(syncs) != 1 {
		t.Fatalf("a viewer synced: %v", syncs)
	}
}

func TestBearerPagesAndARemovedToken(t *testing.T) {
	f, d := newTest(t)
	w := do(d, http.MethodGet, "/ui/services/shop/web", nil, map[string]string{"Authorization": "Bearer " + deployerTok})
	body := w.Body.String()
	if w.Code != http.StatusOK || !strings.Contains(body, "app:v1") || !strings.Contains(body, "password=${secrets.DB}") {
		t.Fatalf("service page by bearer: %d\n%s", w.Code, body)
	}
	if strings.Contains(body, `name="csrf"`) {
		t.Errorf("a bearer token got forms (they need a session)")
	}
	if w := do(d, http.MethodGet, "/ui/services/shop/nope", nil, map[string]string{"Authorization": "Bearer " + viewerTok}); w.Code != http.StatusNotFound {
		t.Errorf("an unknown service: %d", w.Code)
	}
	cookie, _ := signIn(t, d, viewerTok)
	f.mu.Lock()
	delete(f.tokens, viewerTok) // removed from cluster.toml
	f.mu.Unlock()
	if w := do(d, http.MethodGet, "/", nil, map[string]string{"Cookie": cookie}); strings.Contains(w.Body.String(), "app:v1") || !strings.Contains(w.Body.String(), `action="/ui/signin"`) {
		t.Fatalf("the session of a removed token still sees the host:\n%s", w.Body)
	}
}

func TestLiveStreamSendsChanges(t *testing.T) {
	f, d := newTest(t)
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ui/events?view=overview", nil)
	req.Header.Set("Authorization", "Bearer "+viewerTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan string)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		var ev strings.Builder
		for sc.Scan() {
			if sc.Text() == "" {
				events <- ev.String()
				ev.Reset()
				continue
			}
			ev.WriteString(sc.Text() + "\n")
		}
	}()
	next := func(want string) {
		t.Helper()
		for ev := range events {
			if strings.HasPrefix(ev, "event: update\n") && strings.Contains(ev, want) {
				return
			}
		}
		t.Fatalf("the stream ended before an update with %q", want)
	}
	next(`data-sync="Synced"`)
	f.setSync(wire.SyncProgressing)
	next(`data-sync="Progressing"`)
	d.Close() // serve shuts down: the stream ends
	for range events {
	}
}

func TestForgeLink(t *testing.T) {
	f, _ := newTest(t)
	d, err := New(Options{Status: f, Inspect: f, Sync: f, Services: f, Authenticate: f.authenticate,
		CommitURL: func(sha string) string { return "https://forge.example/acme/infra/commit/" + sha }})
	if err != nil {
		t.Fatal(err)
	}
	w := do(d, http.MethodGet, "/", nil, map[string]string{"Authorization": "Bearer " + viewerTok})
	if !strings.Contains(w.Body.String(), `href="https://forge.example/acme/infra/commit/abc123def4567890"`) {
		t.Fatalf("no forge link:\n%s", w.Body)
	}
}

// fakePRs keeps plans as serve does: newest first, the one asked for
// replaces that PR's older plan.
type fakePRs struct {
	mu   sync.Mutex
	kept []wire.PRPlanRecord
}

func (p *fakePRs) PRPlan(_ context.Context, n int) (wire.PRPlan, error) {
	plan := wire.PRPlan{Number: n, RefPlan: wire.RefPlan{Commit: fmt.Sprintf("pr%dhead00000000", n), Valid: true, Changes: 1, Text: "~ shop/web: image app:v1 -> app:v3"}}
	p.mu.Lock()
	defer p.mu.Unlock()
	kept := []wire.PRPlanRecord{{Number: n, Planned: time.Date(2026, 1, 3, 9, 0, 0, 0, time.UTC), Commit: plan.Commit, Valid: true, Changes: 1, Text: plan.Text}}
	for _, r := range p.kept {
		if r.Number != n {
			kept = append(kept, r)
		}
	}
	p.kept = kept
	return plan, nil
}

func (p *fakePRs) PRPlans(context.Context) ([]wire.PRPlanRecord, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]wire.PRPlanRecord(nil), p.kept...), nil
}

func TestPullRequestsPageListsKeptPlans(t *testing.T) {
	f, _ := newTest(t)
	prs := &fakePRs{kept: []wire.PRPlanRecord{
		{Number: 12, Planned: time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC), Commit: "c12c12c12c12c12c12", Subject: "shop: web v2",
			Valid: true, Changes: 2, Text: "~ shop/web: image app:v1 -> app:v2\n+ shop/worker"},
		{Number: 7, Planned: time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC), Commit: "c7c7c7c7c7c7c7c7", Subject: "broken",
			Text: "services/shop/service.toml:3: unknown key \"replica\""},
	}}
	d, err := New(Options{Status: f, Inspect: f, Sync: f, Services: f, PRs: prs, Authenticate: f.authenticate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	h := map[string]string{"Authorization": "Bearer " + viewerTok}
	w := do(d, http.MethodGet, "/ui/prs", nil, h)
	body := w.Body.String()
	if w.Code != http.StatusOK {
		t.Fatalf("/ui/prs: %d\n%s", w.Code, body)
	}
	for _, want := range []string{
		`<details class="sync-rec" id="pr-12">`, "#12 · <code>c12c12c12c12</code> shop: web v2", `datetime="2026-01-02T10:00:00Z"`,
		"valid</span> 2 services would change", "shop/worker",
		`<details class="sync-rec" id="pr-7">`, "#7 · <code>c7c7c7c7c7c7</code> broken", "invalid</span>", "unknown key &#34;replica&#34;",
		`action="/ui/prs"`, // the plan-by-number form stays
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if i12, i7 := strings.Index(body, `id="pr-12"`), strings.Index(body, `id="pr-7"`); i12 < 0 || i7 < i12 {
		t.Errorf("not newest first: #12 at %d, #7 at %d", i12, i7)
	}

	// Planning #7 by number shows its plan and moves it to the top.
	w = do(d, http.MethodGet, "/ui/prs?number=7", nil, h)
	body = w.Body.String()
	if !strings.Contains(body, "#7 <code>pr7head00000</code>") {
		t.Errorf("no plan of #7:\n%s", body)
	}
	if i12, i7 := strings.Index(body, `id="pr-12"`), strings.Index(body, `id="pr-7"`); i7 < 0 || i12 < i7 || strings.Contains(body, "broken") {
		t.Errorf("#7's new plan is not first, or its old one stayed: #7 at %d, #12 at %d\n%s", i7, i12, body)
	}
}
