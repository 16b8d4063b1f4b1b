package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestDashboardMounted: GET / is the dashboard's sign-in, its pages take the
// API's tokens, and its session cookie opens no JSON route.
func TestDashboardMounted(t *testing.T) {
	env := newTestEnv(t)
	rec := env.do(http.MethodGet, "/", "")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") || !strings.Contains(rec.Body.String(), `action="/ui/signin"`) {
		t.Fatalf("GET / without a token: %d %s\n%s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	rec = env.do(http.MethodGet, "/", viewerToken)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "abc123") || strings.Contains(rec.Body.String(), `action="/ui/signin"`) {
		t.Fatalf("GET / with a viewer token: %d\n%s", rec.Code, rec.Body)
	}
	if rec := env.do(http.MethodGet, "/nope", ""); rec.Code != http.StatusNotFound || jsonError(t, rec) != "no such route" {
		t.Fatalf("an unknown path: %d %s", rec.Code, rec.Body)
	}

	req := httptest.NewRequest(http.MethodPost, "/ui/signin", strings.NewReader("token="+deployerToken))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://example.com") // as a browser sends with the form
	signin := httptest.NewRecorder()
	env.handler.ServeHTTP(signin, req)
	cookies := signin.Result().Cookies()
	if signin.Code != http.StatusSeeOther || len(cookies) != 1 {
		t.Fatalf("sign in: %d %v", signin.Code, cookies)
	}
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/api/v1/status"},
		{http.MethodPost, "/api/v1/sync"},
		{http.MethodPost, "/api/v1/services/web/app/redeploy"},
	} {
		req := httptest.NewRequest(c.method, c.path, nil)
		req.AddCookie(cookies[0])
		rec := httptest.NewRecorder()
		env.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("%s %s with only the session cookie: %d, want 401", c.method, c.path, rec.Code)
		}
	}
	if calls := env.backend.syncCalls(); len(calls) != 0 {
		t.Fatalf("the cookie synced: %v", calls)
	}
}
