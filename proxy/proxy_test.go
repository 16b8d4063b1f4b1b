package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/routing"
)

// backend is an upstream that answers its name and echoes what it saw.
func backend(t *testing.T, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		fmt.Fprintf(w, "%s %s xff=%s proto=%s fhost=%s host=%s", name, r.URL.Path,
			r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"), r.Host)
	}))
	t.Cleanup(s.Close)
	return s
}

func svc(project, name string, domains, routes []string, strip bool) *diff.Service {
	return &diff.Service{Service: &config.Service{Project: project, Name: name, Domains: domains, Routes: routes,
		StripPrefix: strip, Port: 8080, Deploy: config.Deploy{Drain: 2 * time.Second}}}
}

func do(t *testing.T, h http.Handler, host, path string, hdr map[string]string) (int, string) {
	t.Helper()
	r := httptest.NewRequest("GET", "http://"+host+path, nil)
	r.RemoteAddr = "192.0.2.7:5555"
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func TestRouting(t *testing.T) {
	p := New(Options{})
	web, api, wild := backend(t, "web"), backend(t, "api"), backend(t, "wild")
	p.RouteIn(svc("p", "web", []string{"shop.test"}, []string{"/"}, false), routing.Target{ContainerID: "w1", Addr: web.Listener.Addr().String()})
	p.RouteIn(svc("p", "api", []string{"shop.test"}, []string{"/api", "/v2/"}, true), routing.Target{ContainerID: "a1", Addr: api.Listener.Addr().String()})
	p.RouteIn(svc("p", "wild", []string{"*.apps.test"}, []string{"/"}, false), routing.Target{ContainerID: "x1", Addr: wild.Listener.Addr().String()})
	p.RouteIn(svc("p", "empty", []string{"empty.test"}, []string{"/"}, false), routing.Target{ContainerID: "e1", Addr: "127.0.0.1:1"})
	p.RouteOut(context.Background(), "p", "empty", routing.Target{ContainerID: "e1"})

	for _, c := range []struct {
		host, path string
		code       int
		want       string
	}{
		{"shop.test", "/", 200, "web /"},
		{"Shop.Test:8080", "/x", 200, "web /x"},
		{"shop.test", "/api", 200, "api /"},
		{"shop.test", "/api/users", 200, "api /users"},
		{"shop.test", "/apix", 200, "web /apix"},
		{"shop.test", "/v2/a", 200, "api /a"},
		{"a.apps.test", "/", 200, "wild /"},
		{"apps.test", "/", 404, ""},
		{"a.b.apps.test", "/", 404, ""},
		{"nobody.test", "/", 404, ""},
		{"empty.test", "/", 503, ""},
	} {
		code, body := do(t, p, c.host, c.path, nil)
		if code != c.code || (c.want != "" && !strings.HasPrefix(body, c.want+" ")) {
			t.Errorf("%s%s: %d %q, want %d %q", c.host, c.path, code, body, c.code, c.want)
		}
	}
}

func TestForwardedHeaders(t *testing.T) {
	p := New(Options{})
	b := backend(t, "web")
	p.RouteIn(svc("p", "web", []string{"shop.test"}, []string{"/"}, false), routing.Target{ContainerID: "w1", Addr: b.Listener.Addr().String()})
	spoof := map[string]string{"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.test"}

	_, body := do(t, p, "shop.test", "/", spoof)
	if want := "xff=192.0.2.7 proto=http fhost=shop.test host=shop.test"; !strings.HasSuffix(body, want) {
		t.Errorf("untrusted peer: %q, want ...%q", body, want)
	}
	p.settings.Store(newSettings(config.Cluster{Proxy: config.Proxy{TrustedProxies: []string{"192.0.2.0/24"}}}, ""))
	_, body = do(t, p, "shop.test", "/", spoof)
	if want := "xff=6.6.6.6, 192.0.2.7 proto=https fhost=evil.test host=shop.test"; !strings.HasSuffix(body, want) {
		t.Errorf("trusted peer: %q, want ...%q", body, want)
	}
}

func TestRoundRobinAndStats(t *testing.T) {
	p := New(Options{})
	a, b := backend(t, "a"), backend(t, "b")
	s := svc("p", "web", []string{"shop.test"}, []string{"/"}, false)
	p.RouteIn(s, routing.Target{ContainerID: "a", Addr: a.Listener.Addr().String()})
	p.RouteIn(s, routing.Target{ContainerID: "b", Addr: b.Listener.Addr().String()})
	seen := map[string]int{}
	for range 10 {
		_, body := do(t, p, "shop.test", "/", nil)
		seen[strings.Fields(body)[0]]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Errorf("round-robin over two targets: %v", seen)
	}
	st := p.Stats("p", "web")["stable"]
	if st.Requests != 10 || st.Errors != 0 || st.P95() <= 0 {
		t.Errorf("stats = %d requests, %d errors, p95 %v", st.Requests, st.Errors, st.P95())
	}
}

// TestRouteOutDrains: RouteOut returns only once the request in flight on
// the target has finished, and no new request reaches it meanwhile.
func TestRouteOutDrains(t *testing.T) {
	p := New(Options{})
	a, b := backend(t, "a"), backend(t, "b")
	s := svc("p", "web", []string{"shop.test"}, []string{"/"}, false)
	p.RouteIn(s, routing.Target{ContainerID: "a", Addr: a.Listener.Addr().String()})
	var wg sync.WaitGroup
	wg.Add(1)
	var slowBody string
	go func() {
		defer wg.Done()
		_, slowBody = do(t, p, "shop.test", "/slow", nil)
	}()
	waitInflight(t, p, "p/web", 1)
	p.RouteIn(s, routing.Target{ContainerID: "b", Addr: b.Listener.Addr().String()})
	done := make(chan struct{})
	go func() {
		p.RouteOut(context.Background(), "p", "web", routing.Target{ContainerID: "a"})
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("RouteOut returned while a request was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	for range 4 {
		if _, body := do(t, p, "shop.test", "/", nil); !strings.HasPrefix(body, "b ") {
			t.Errorf("a routed-out target got a request: %q", body)
		}
	}
	<-done
	wg.Wait()
	if !strings.HasPrefix(slowBody, "a /slow") {
		t.Errorf("the drained request: %q", slowBody)
	}
}

func waitInflight(t *testing.T, p *Proxy, key string, n int64) {
	t.Helper()
	for range 200 {
		p.mu.Lock()
		s := p.services[key]
		p.mu.Unlock()
		var total int64
		for _, tg := range s.lb.Targets() {
			total += tg.inflight.Load()
		}
		if total == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("in-flight never reached %d", n)
}

// fakeIPs gives each container ID an address on the network of project p.
type fakeIPs map[string]string

var _ ContainerIPs = fakeIPs{}

func (f fakeIPs) ContainerIP(_ context.Context, id, network string) (string, error) {
	if network != "orca-p" {
		return "", nil
	}
	return f[id], nil
}

// TestSyncIsLevelTriggered: Sync routes the containers it is shown that
// serve by diff.Container.Serving (running, not unhealthy — one still starting
// by its HEALTHCHECK included, as the planner counts it) and drops services
// gone from the desired state.
func TestSyncIsLevelTriggered(t *testing.T) {
	b := backend(t, "web")
	host, port, _ := net.SplitHostPort(b.Listener.Addr().String())
	p := New(Options{IPs: fakeIPs{"c1": host, "c2": host, "c3": host, "c4": host}})
	d := &config.Desired{Projects: []*config.Project{{Name: "p", Services: []*config.Service{
		{Project: "p", Name: "web", Domains: []string{"shop.test"}, Routes: []string{"/"}, Port: atoi(port)},
	}}}}
	live := []diff.Container{
		{ID: "c1", Project: "p", Service: "web", State: "running", Node: "n1"},
		{ID: "c2", Project: "p", Service: "web", State: "running", Health: "starting", Node: "n1"},
		{ID: "c3", Project: "p", Service: "web", State: "exited", Node: "n1"},
		{ID: "c4", Project: "p", Service: "web", State: "running", Health: "unhealthy", Node: "n1"},
	}
	if err := p.Sync(context.Background(), d, live, "n1"); err != nil {
		t.Fatal(err)
	}
	if code, body := do(t, p, "shop.test", "/", nil); code != 200 || !strings.HasPrefix(body, "web") {
		t.Fatalf("after Sync: %d %q", code, body)
	}
	var routed []string
	for _, tg := range p.services["p/web"].lb.Targets() {
		routed = append(routed, tg.ID)
	}
	slices.Sort(routed)
	if want := []string{"c1", "c2"}; !slices.Equal(routed, want) {
		t.Errorf("routed %v, want %v (the serving containers: not the exited c3 nor the unhealthy c4)", routed, want)
	}
	if err := p.Sync(context.Background(), &config.Desired{}, nil, "n1"); err != nil {
		t.Fatal(err)
	}
	if code, _ := do(t, p, "shop.test", "/", nil); code != 404 {
		t.Errorf("service gone from git still routed: %d", code)
	}
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

func TestMaxBody(t *testing.T) {
	p := New(Options{})
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			return
		}
		io.WriteString(w, "read")
	}))
	defer b.Close()
	p.RouteIn(svc("p", "web", []string{"shop.test"}, []string{"/"}, false), routing.Target{ContainerID: "w", Addr: b.Listener.Addr().String()})
	p.settings.Store(&settings{maxBody: 10})
	for _, c := range []struct {
		body    string
		chunked bool
		want    int
	}{{"small", false, 200}, {strings.Repeat("x", 11), false, 413}, {strings.Repeat("x", 100), true, 413}} {
		var body io.Reader = strings.NewReader(c.body)
		if c.chunked {
			body = io.MultiReader(body) // hides the length: chunked upload
		}
		r := httptest.NewRequest("POST", "http://shop.test/", body)
		if c.chunked {
			r.ContentLength = -1
		}
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("%d-byte body (chunked %v): %d, want %d", len(c.body), c.chunked, w.Code, c.want)
		}
	}
}

func TestStatsQuantile(t *testing.T) {
	var c roleCounters
	for i := range 100 {
		code := 200
		if i < 5 {
			code = 502
		}
		c.observe(code, time.Duration(i+1)*time.Millisecond)
	}
	s := c.snapshot()
	if s.ErrorRate() != 0.05 {
		t.Errorf("error rate %v", s.ErrorRate())
	}
	if p95 := s.P95(); p95 < 95*time.Millisecond || p95 > 105*time.Millisecond {
		t.Errorf("p95 = %v, want ~95ms", p95)
	}
	later := c.snapshot()
	c.observe(200, time.Second)
	if w := c.snapshot().Since(later); w.Requests != 1 || w.P95() < 900*time.Millisecond {
		t.Errorf("window: %d requests p95 %v", w.Requests, w.P95())
	}
}
