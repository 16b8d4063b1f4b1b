package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/routing"
)

// uriUpstream answers with the request-target it was sent, as received.
func uriUpstream(t testing.TB, name string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s %s", name, r.RequestURI)
	}))
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// serveProxy puts p behind a real listener and returns its address.
func serveProxy(t *testing.T, p *Proxy) string {
	t.Helper()
	s := httptest.NewServer(p)
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// rawRequest sends method and target exactly as given (a Go client would
// re-encode the target) and returns the answer's code and body, or the
// error that cut it short (code 0: no answer at all). A body, when not
// empty, makes the request take the ReverseProxy path.
func rawRequest(t *testing.T, addr, method, target, host, body string, hdr ...string) (int, string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n"
	for _, h := range hdr {
		req += h + "\r\n"
	}
	if body != "" {
		req += fmt.Sprintf("Content-Length: %d\r\n", len(body))
	}
	if _, err := io.WriteString(c, req+"\r\n"+body); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	for err == nil && resp.StatusCode < 200 { // interim answers (103) passed on
		resp, err = http.ReadResponse(br, nil)
	}
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestPathsStayInsideTheirRoute: with only /public (and /api, stripped)
// routed, no spelling of a path reaches the upstream outside its route;
// the upstream gets the cleaned path, query intact, on both the fast path
// (GET) and the ReverseProxy path (POST with a body).
func TestPathsStayInsideTheirRoute(t *testing.T) {
	p := New(Options{})
	p.RouteIn(svc("p", "pub", []string{"shop.test"}, []string{"/public"}, false), routing.Target{ContainerID: "p1", Addr: uriUpstream(t, "pub")})
	p.RouteIn(svc("p", "api", []string{"shop.test"}, []string{"/api", "/v2/"}, true), routing.Target{ContainerID: "a1", Addr: uriUpstream(t, "api")})
	addr := serveProxy(t, p)
	for _, c := range []struct {
		target string
		code   int
		want   string // the upstream and the request-target it got
	}{
		// The two cases of the review.
		{"/public/%2e%2e/env/HOSTNAME", 404, ""},
		{"/public%2f..%2finternal", 400, ""},
		// Dot segments, in every spelling, resolve before routing.
		{"/public/../internal", 404, ""},
		{"/public/%2E%2e/internal", 404, ""},
		{"/public/.%2e/internal", 404, ""},
		{"/public/x/../../internal", 404, ""},
		{"/public/./a//b/", 200, "pub /public/a/b/"},
		{"/public/x/..", 200, "pub /public/"},
		{"//public///a", 200, "pub /public/a"},
		{"/internal/../public/a", 200, "pub /public/a"},
		{"/public/a%2eb/%7Ex", 200, "pub /public/a%2eb/%7Ex"},
		{"/public/a?x=%2e%2e/../y&z=%2f", 200, "pub /public/a?x=%2e%2e/../y&z=%2f"},
		{"/public/./a?", 200, "pub /public/a?"},
		{"/public/a#b", 200, "pub /public/a%23b"},
		// Ambiguous: the upstream could read them otherwise.
		{"/public/a%2Fb", 400, ""},
		{"/public/..%2f..%2finternal", 400, ""},
		{"/public/a%5cb", 400, ""},
		{`/public/..\internal`, 400, ""},
		{"/public/a%00b", 400, ""},
		{"/public/%252e%252e/internal", 400, ""},
		{"/public/a%252fb", 400, ""},
		{"/public/..;x=1/internal", 400, ""},
		{"/..", 400, ""},
		{"/public/../../internal", 400, ""},
		// Absolute-form targets are cleaned alike; an opaque one is no path.
		{"http://shop.test/public/../internal", 404, ""},
		{"http://shop.test/public/./a", 200, "pub /public/a"},
		{"public:x://", 404, ""},
		// strip_prefix strips the cleaned path.
		{"/api/./v1/../users?q=1", 200, "api /users?q=1"},
		{"/x/../api", 200, "api /"},
		{"/v2/a/%2e/b", 200, "api /a/b"},
		{"/%61pi/users", 200, "api /users"},
	} {
		for _, method := range []string{"GET", "POST"} {
			body := ""
			if method == "POST" {
				body = "data"
			}
			code, got, err := rawRequest(t, addr, method, c.target, "shop.test", body)
			if err != nil {
				t.Errorf("%s %s: body: %v", method, c.target, err)
			}
			if code != c.code || (c.want != "" && got != c.want) {
				t.Errorf("%s %s: %d %q, want %d %q", method, c.target, code, got, c.code, c.want)
			}
		}
	}
}

// cutUpstream sends a response's header and part of its body, then closes.
func cutUpstream(t *testing.T, chunked bool) string {
	t.Helper()
	answer := "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"
	if chunked {
		answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n"
	}
	return rawUpstream(t, answer)
}

// TestCutBodyAbortsTheClient: an upstream that dies mid-body must not give
// the client what looks like a complete response: the connection is reset
// (a chunked response gets no terminating chunk, a sized one stays short),
// on the fast path and the ReverseProxy path alike.
func TestCutBodyAbortsTheClient(t *testing.T) {
	for _, chunked := range []bool{true, false} {
		for _, method := range []string{"GET", "POST"} {
			p := New(Options{})
			p.RouteIn(svc("p", "web", []string{"shop.test"}, []string{"/"}, false), routing.Target{ContainerID: "w", Addr: cutUpstream(t, chunked)})
			addr := serveProxy(t, p)
			body := ""
			if method == "POST" {
				body = "data"
			}
			// A short body, or no answer when the proxy had not flushed
			// the header yet; never a complete one.
			code, got, err := rawRequest(t, addr, method, "/", "shop.test", body)
			if (code != 200 && code != 0) || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("%s, chunked %v: %d %q, read error %v; want 200 and an unexpected EOF", method, chunked, code, got, err)
			}
			if st := p.Stats("p", "web")["stable"]; st.Requests != 1 || st.Errors != 1 {
				t.Errorf("%s, chunked %v: figures %d requests %d errors, want the cut response counted as an error", method, chunked, st.Requests, st.Errors)
			}
		}
	}
}

// TestUpstreamHeaderCap: a response header block over 1 MiB gets 502 and is
// not read whole into memory; one under the cap passes.
func TestUpstreamHeaderCap(t *testing.T) {
	big := "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\nContent-Length: 2\r\n\r\nok"
	many := "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Many: "+strings.Repeat("b", 1000)+"\r\n", 1100) + "Content-Length: 2\r\n\r\nok"
	fine := "HTTP/1.1 200 OK\r\nX-Fine: " + strings.Repeat("c", 512<<10) + "\r\nContent-Length: 2\r\n\r\nok"
	interim := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	for range 1100 {
		interim = "HTTP/1.1 103 Early Hints\r\nLink: " + strings.Repeat("d", 1000) + "\r\n\r\n" + interim
	}
	for _, c := range []struct {
		name, answer string
		code         int
	}{{"one 2 MiB header", big, 502}, {"1100 headers of 1 kB", many, 502}, {"1100 interim responses of 1 kB", interim, 502}, {"a 512 KiB header", fine, 200}} {
		for _, method := range []string{"GET", "POST"} {
			if method == "POST" && c.answer == interim {
				// ReverseProxy passes each 1xx on to the client as it
				// comes and caps each header block on its own, as
				// net/http's transport does: nothing accumulates.
				continue
			}
			p := New(Options{})
			p.RouteIn(svc("p", "web", []string{"shop.test"}, []string{"/"}, false), routing.Target{ContainerID: "w", Addr: rawUpstream(t, c.answer)})
			addr := serveProxy(t, p)
			body := ""
			if method == "POST" {
				body = "data"
			}
			if code, _, _ := rawRequest(t, addr, method, "/", "shop.test", body); code != c.code {
				t.Errorf("%s, %s: %d, want %d", method, c.name, code, c.code)
			}
		}
	}
}

// TestSpoofableHeadersDropped: X-Real-IP, X-Forwarded-Port and
// X-Forwarded-Prefix reach the upstream only from a trusted proxy.
func TestSpoofableHeadersDropped(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "real=%q port=%q prefix=%q", r.Header.Values("X-Real-Ip"), r.Header.Values("X-Forwarded-Port"), r.Header.Values("X-Forwarded-Prefix"))
	}))
	defer up.Close()
	p := New(Options{})
	p.RouteIn(svc("p", "web", []string{"shop.test"}, []string{"/"}, false), routing.Target{ContainerID: "w", Addr: up.Listener.Addr().String()})
	addr := serveProxy(t, p)
	spoof := []string{"X-Real-IP: 6.6.6.6", "X-Forwarded-Port: 443", "X-Forwarded-Prefix: /admin"}
	for _, method := range []string{"GET", "POST"} {
		body := map[string]string{"GET": "", "POST": "data"}[method]
		p.settings.Store(newSettings(config.Cluster{}, ""))
		_, got, _ := rawRequest(t, addr, method, "/", "shop.test", body, spoof...)
		if want := `real=[] port=[] prefix=[]`; got != want {
			t.Errorf("%s from an untrusted peer: %s, want %s", method, got, want)
		}
		p.settings.Store(newSettings(config.Cluster{Proxy: config.Proxy{TrustedProxies: []string{"127.0.0.1"}}}, ""))
		_, got, _ = rawRequest(t, addr, method, "/", "shop.test", body, spoof...)
		if want := `real=["6.6.6.6"] port=["443"] prefix=["/admin"]`; got != want {
			t.Errorf("%s from a trusted peer: %s, want %s", method, got, want)
		}
	}
}

// stickyProxy is a proxy with a sticky service p/web: stable v1, canary v2.
func stickyProxy(t *testing.T, opts Options) *Proxy {
	t.Helper()
	p := New(opts)
	s := svc("p", "web", []string{"shop.test"}, []string{"/"}, false)
	s.Deploy.Sticky = true
	p.RouteIn(s, routing.Target{ContainerID: "s1", Addr: backend(t, "v1").Listener.Addr().String()})
	p.RouteIn(s, routing.Target{ContainerID: "c1", Addr: backend(t, "v2").Listener.Addr().String(), Role: routing.RoleCanary})
	return p
}

// TestForgedStickyCookieIsNoCookie: a client cannot pick the canary by
// setting the cookie itself: a forged value is no cookie at all, the split
// assigns the client (here to stable, at weight 0) and a signed cookie
// replaces the forged one.
func TestForgedStickyCookieIsNoCookie(t *testing.T) {
	p := stickyProxy(t, Options{})
	p.SetCanaryWeight("p", "web", 0)
	addr := serveProxy(t, p)
	for _, forged := range []string{"canary", "canary.", "canary.AAAA", "canary.x.y"} {
		_, body, _ := rawRequest(t, addr, "GET", "/", "shop.test", "", "Cookie: orca-p-web="+forged)
		if !strings.HasPrefix(body, "v1 ") {
			t.Errorf("forged cookie %q reached %q, want the stable side (weight 0)", forged, body)
		}
	}
	if n := p.Stats("p", "web")["canary"].Requests; n != 0 {
		t.Errorf("canary figures count %d requests, want 0", n)
	}
}

// TestPinnedRequestsLeaveTheFigures: requests a valid sticky cookie pins to
// a side reach it but do not count in the figures the canary analysis reads:
// only the split's assignments do, so a client holding a canary cookie
// cannot dilute the canary's error rate with requests of its choosing.
func TestPinnedRequestsLeaveTheFigures(t *testing.T) {
	p := stickyProxy(t, Options{})
	p.SetCanaryWeight("p", "web", 100)
	r := httptest.NewRequest("GET", "http://shop.test/", nil)
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	cookie := strings.Split(w.Header().Get("Set-Cookie"), ";")[0]
	if !strings.HasPrefix(w.Body.String(), "v2 ") || !strings.HasPrefix(cookie, "orca-p-web=canary") {
		t.Fatalf("at weight 100: %q, cookie %q", w.Body.String(), cookie)
	}
	p.SetCanaryWeight("p", "web", 50)
	for range 10 {
		if _, body := do(t, p, "shop.test", "/", map[string]string{"Cookie": cookie}); !strings.HasPrefix(body, "v2 ") {
			t.Fatalf("pinned to canary by %s: %q", cookie, body)
		}
	}
	if st := p.Stats("p", "web"); st["canary"].Requests != 1 || st["stable"].Requests != 0 {
		t.Errorf("figures canary %d stable %d, want 1 and 0: pinned requests are not the split's", st["canary"].Requests, st["stable"].Requests)
	}
}

// TestStickyCookieSurvivesWithItsKey: a cookie signed under the key given in
// Options is honoured by a proxy given the same key (orca-sync restarted with
// the key from state.db), and by no proxy with another key.
func TestStickyCookieSurvivesWithItsKey(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	first := stickyProxy(t, Options{StickyKey: key})
	first.SetCanaryWeight("p", "web", 100)
	w := httptest.NewRecorder()
	first.ServeHTTP(w, httptest.NewRequest("GET", "http://shop.test/", nil))
	cookie := strings.Split(w.Header().Get("Set-Cookie"), ";")[0]
	for _, c := range []struct {
		key  []byte
		want string
	}{{key, "v2 "}, {[]byte(strings.Repeat("x", 32)), "v1 "}, {nil, "v1 "}} {
		p := stickyProxy(t, Options{StickyKey: c.key})
		p.SetCanaryWeight("p", "web", 0)
		if _, body := do(t, p, "shop.test", "/", map[string]string{"Cookie": cookie}); !strings.HasPrefix(body, c.want) {
			t.Errorf("key %q: %s reached %q, want %q", c.key, cookie, body, c.want)
		}
	}
}
