package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestProxyRouting drives serve's proxy on loopback ports: two services on
// one domain split by a /api route, a third on another domain, one with no
// replicas; 404, 503, WebSocket, SSE, cookies, redirects, X-Forwarded-*.
func TestProxyRouting(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("route")
	web, api, other, idle := routed("web", imageV1, 1, "shop.test"), routed("api", imageV2, 1, "shop.test"),
		routed("other", imageV3, 1, "other.test"), routed("idle", imageV1, 0, "idle.test")
	api.Keys = []string{`routes = ["/api"]`, "strip_prefix = true"}
	toml := services(web, api, other, idle)
	ps := startProxyServe(t, env, map[string]string{
		"cluster.toml":                    "[proxy]\nmax_body = \"1Ki\"\n",
		"services/" + p + "/service.toml": toml,
	})
	ps.waitAnswer(t, "shop.test", "/", "v1", 90*time.Second)
	ps.waitAnswer(t, "other.test", "/", "v3", 30*time.Second)
	ps.waitAnswer(t, "shop.test", "/api/", "v2", 30*time.Second)

	t.Run("host and longest prefix pick the service", func(t *testing.T) {
		for _, c := range []struct{ host, path, want string }{
			{"shop.test", "/", "v1"}, {"SHOP.test:8443", "/", "v1"}, {"shop.test", "/api", "v2"},
			{"shop.test", "/api/", "v2"}, {"shop.test", "/apix", ""}, {"other.test", "/", "v3"},
		} {
			resp, body := request(t, ps.http, "GET", c.host, c.path, nil, nil)
			got := resp.Header.Get("X-Version")
			if c.want == "" { // /apix is not under /api: web answers it (404 from the app)
				if got != "v1" {
					t.Errorf("%s%s reached %q, want web (v1)", c.host, c.path, got)
				}
				continue
			}
			if resp.StatusCode != 200 || body != c.want {
				t.Errorf("%s%s: %d %q, want %q", c.host, c.path, resp.StatusCode, body, c.want)
			}
		}
		// strip_prefix: the api service sees /headers, not /api/headers.
		_, body := request(t, ps.http, "GET", "shop.test", "/api/headers", nil, nil)
		var h struct{ URI string }
		if json.Unmarshal([]byte(body), &h) != nil || h.URI != "/headers" {
			t.Errorf("api saw %q, want /headers", body)
		}
	})

	t.Run("unknown host 404, no ready target 503", func(t *testing.T) {
		if resp, _ := request(t, ps.http, "GET", "nobody.test", "/", nil, nil); resp.StatusCode != 404 {
			t.Errorf("unknown host: %d", resp.StatusCode)
		}
		resp, _ := request(t, ps.http, "GET", "idle.test", "/", nil, nil)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Errorf("no target: %d Retry-After=%q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	})

	t.Run("cookies, redirects, body limit", func(t *testing.T) {
		resp, _ := request(t, ps.http, "GET", "shop.test", "/cookies", nil, nil)
		if c := resp.Header.Values("Set-Cookie"); len(c) != 2 {
			t.Errorf("Set-Cookie = %q, want two", c)
		}
		resp, _ = request(t, ps.http, "GET", "shop.test", "/redirect?to=/elsewhere", nil, nil)
		if resp.StatusCode != 302 || resp.Header.Get("Location") != "/elsewhere" {
			t.Errorf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, _ = request(t, ps.http, "POST", "shop.test", "/file?path=/tmp/x", strings.NewReader(strings.Repeat("x", 2048)), nil)
		if resp.StatusCode != 413 {
			t.Errorf("2 KiB body over max_body 1Ki: %d", resp.StatusCode)
		}
		resp, body := request(t, ps.http, "POST", "shop.test", "/file?path=/tmp/x", strings.NewReader("small"), nil)
		if resp.StatusCode != 200 {
			t.Errorf("small body: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("X-Forwarded headers: spoofed values from an untrusted peer are replaced", func(t *testing.T) {
		_, body := request(t, ps.http, "GET", "shop.test", "/headers", nil, map[string]string{
			"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.test"})
		var h struct {
			Host    string
			Headers map[string][]string
		}
		if err := json.Unmarshal([]byte(body), &h); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if h.Host != "shop.test" {
			t.Errorf("upstream Host = %q", h.Host)
		}
		for k, want := range map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "shop.test"} {
			if got := h.Headers[k]; !slices.Equal(got, []string{want}) {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
	})

	t.Run("WebSocket and SSE stream through", func(t *testing.T) {
		if got := wsEchoThrough(t, ps.http, "shop.test", "hello through the proxy"); got != "hello through the proxy" {
			t.Errorf("echo = %q", got)
		}
		req, _ := http.NewRequest("GET", "http://"+ps.http+"/sse?n=3&ms=700", nil)
		req.Host = "shop.test"
		start := time.Now()
		resp, err := proxyClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		first := time.Since(start)
		if err != nil || line != "id: 0\n" {
			t.Fatalf("first SSE line %q %v", line, err)
		}
		// The stream takes 1.4 s; the first event must not wait for it.
		if first > time.Second {
			t.Errorf("first event after %v: the proxy buffered the stream", first)
		}
	})

	t.Run("metrics count by service and code", func(t *testing.T) {
		resp, err := http.Get("http://" + ps.api + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "orca_proxy_requests_total") {
				b.WriteString(sc.Text() + "\n")
			}
		}
		want := fmt.Sprintf(`orca_proxy_requests_total{code="503",project=%q,role="none",service="idle"}`, p)
		if !strings.Contains(b.String(), want) || !strings.Contains(b.String(), `code="200",project="`+p+`",role="stable",service="web"`) {
			t.Errorf("metrics lack %s or web's 200s:\n%s", want, b.String())
		}
	})
	t.Run("after a restart running containers are routed again", func(t *testing.T) {
		before := containerIDs(t, env, p)
		ps.kill()
		ps.daemon.start()
		ps.waitAnswer(t, "shop.test", "/", "v1", 30*time.Second)
		ps.waitAnswer(t, "other.test", "/", "v3", 10*time.Second)
		if after := containerIDs(t, env, p); !slices.Equal(before, after) {
			t.Errorf("containers changed across the restart: %v -> %v", before, after)
		}
	})

	t.Run("a service removed from git loses its route", func(t *testing.T) {
		ps.push(t, "drop other", map[string]string{"services/" + p + "/service.toml": services(web, api, idle)})
		waitFor(t, 60*time.Second, func() (bool, string) {
			resp, body := request(t, ps.http, "GET", "other.test", "/", nil, nil)
			return resp.StatusCode == 404, fmt.Sprintf("other.test: %d %q", resp.StatusCode, body)
		})
		if resp, body := request(t, ps.http, "GET", "shop.test", "/", nil, nil); resp.StatusCode != 200 || body != "v1" {
			t.Errorf("shop.test after the removal: %d %q", resp.StatusCode, body)
		}
	})

}
