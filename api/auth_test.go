package api

import (
	"net/http"
	"testing"

	"github.com/orca-sync/orca-sync/config"
)

// TestRoleTable checks every authenticated route against every kind of
// token, per docs/reference/api.md: viewer reads, deployer also syncs and
// redeploys, admin all.
func TestRoleTable(t *testing.T) {
	routes := []struct {
		method, path string
		need         role
		ok           int
	}{
		{http.MethodGet, "/api/v1/status", roleViewer, http.StatusOK},
		{http.MethodGet, "/api/v1/plan", roleViewer, http.StatusOK},
		{http.MethodGet, "/api/v1/history", roleViewer, http.StatusOK},
		{http.MethodGet, "/api/v1/drift", roleViewer, http.StatusOK},
		{http.MethodGet, "/api/v1/services/web/app/logs?tail=5", roleViewer, http.StatusOK},
		{http.MethodPost, "/api/v1/sync", roleDeployer, http.StatusAccepted},
		{http.MethodPost, "/api/v1/services/web/app/redeploy", roleDeployer, http.StatusAccepted},
	}
	tokens := []struct {
		name, token string
		has         role
	}{
		{"none", "", roleNone},
		{"wrong", "not-a-token", roleNone},
		{"viewer", viewerToken, roleViewer},
		{"deployer", deployerToken, roleDeployer},
		{"sha256 deployer", hashedDeployerToken, roleDeployer},
		{"admin", adminToken, roleAdmin},
		{"generated admin", generatedAdmin, roleAdmin},
	}
	env := newTestEnv(t)
	for _, rt := range routes {
		for _, tk := range tokens {
			t.Run(rt.method+" "+rt.path+" "+tk.name, func(t *testing.T) {
				rec := env.do(rt.method, rt.path, tk.token)
				switch {
				case tk.has == roleNone:
					if rec.Code != http.StatusUnauthorized {
						t.Fatalf("code = %d, want 401", rec.Code)
					}
					if got := rec.Header().Get("WWW-Authenticate"); got != "Bearer" {
						t.Errorf("WWW-Authenticate = %q, want Bearer", got)
					}
					jsonError(t, rec)
				case tk.has < rt.need:
					if rec.Code != http.StatusForbidden {
						t.Fatalf("code = %d, want 403", rec.Code)
					}
					jsonError(t, rec)
				default:
					if rec.Code != rt.ok {
						t.Fatalf("code = %d, want %d; body %s", rec.Code, rt.ok, rec.Body)
					}
				}
			})
		}
	}
}

func TestOpenRoutes(t *testing.T) {
	env := newTestEnv(t)
	for _, token := range []string{"", "not-a-token", viewerToken} {
		rec := env.do(http.MethodGet, "/api/v1/health", token)
		if rec.Code != http.StatusOK || jsonStatus(t, rec) != "ok" {
			t.Errorf("health with %q: %d %s", token, rec.Code, rec.Body)
		}
		rec = env.do(http.MethodGet, "/metrics", token)
		if rec.Code != http.StatusOK {
			t.Errorf("metrics with %q: %d", token, rec.Code)
		}
	}
}

func TestAuthorizationHeaderForms(t *testing.T) {
	env := newTestEnv(t)
	for _, h := range []string{"Basic " + viewerToken, viewerToken, "Bearer", "Bearer ", "bearer"} {
		req := newRequest(http.MethodGet, "/api/v1/status", nil)
		req.Header.Set("Authorization", h)
		rec := serve(env, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("Authorization %q: code %d, want 401", h, rec.Code)
		}
	}
	req := newRequest(http.MethodGet, "/api/v1/status", nil)
	req.Header.Set("Authorization", "bearer "+viewerToken) // the scheme is case-insensitive
	if rec := serve(env, req); rec.Code != http.StatusOK {
		t.Errorf("lower-case scheme: code %d, want 200", rec.Code)
	}
}

// TestTokensReadPerRequest: a change of [[token]] applies without restart.
func TestTokensReadPerRequest(t *testing.T) {
	env := newTestEnv(t)
	if rec := env.do(http.MethodPost, "/api/v1/sync", viewerToken); rec.Code != http.StatusForbidden {
		t.Fatalf("before: %d, want 403", rec.Code)
	}
	env.config.set(func(c *fakeConfig) {
		c.tokens = []config.Token{{Name: "ci", Value: viewerToken, Role: config.RoleDeployer}}
	})
	if rec := env.do(http.MethodPost, "/api/v1/sync", viewerToken); rec.Code != http.StatusAccepted {
		t.Fatalf("after promotion: %d, want 202", rec.Code)
	}
	if rec := env.do(http.MethodGet, "/api/v1/status", adminToken); rec.Code != http.StatusUnauthorized {
		t.Fatalf("removed token: %d, want 401", rec.Code)
	}
	if rec := env.do(http.MethodGet, "/api/v1/status", generatedAdmin); rec.Code != http.StatusOK {
		t.Fatalf("generated admin token: %d, want 200", rec.Code)
	}
}

func TestTokenMatches(t *testing.T) {
	sum := func(s string) [32]byte { return sha256Sum(s) }
	hashed := "sha256:" + hexSum("secret")
	cases := []struct {
		value, presented string
		want             bool
	}{
		{"secret", "secret", true},
		{"secret", "secreT", false},
		{"secret", "secret2", false},
		{"", "", false},
		{hashed, "secret", true},
		{hashed, "other", false},
		{hashed, hashed, false}, // the hash itself is not the token
		{"sha256:zz", "secret", false},
		{"sha256:abcd", "secret", false},
	}
	for _, c := range cases {
		if got := tokenMatches(c.value, sum(c.presented)); got != c.want {
			t.Errorf("tokenMatches(%q, %q) = %t, want %t", c.value, c.presented, got, c.want)
		}
	}
}

func TestUnknownRoleIsForbidden(t *testing.T) {
	env := newTestEnv(t)
	env.config.set(func(c *fakeConfig) {
		c.tokens = []config.Token{{Name: "odd", Value: "odd-token", Role: "superuser"}}
	})
	if rec := env.do(http.MethodGet, "/api/v1/status", "odd-token"); rec.Code != http.StatusForbidden {
		t.Fatalf("unknown role: %d, want 403", rec.Code)
	}
}
