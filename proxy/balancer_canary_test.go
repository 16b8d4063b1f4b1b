package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/routing"
)

// TestWeightedSplit: the canary gets exactly its weight of every 100
// requests, round-robin inside each role; at 0 it gets nothing while stable
// targets exist, and all when only canaries are left.
func TestWeightedSplit(t *testing.T) {
	lb := newLoadBalancer()
	for _, tg := range []*Target{{ID: "s1", Role: "stable"}, {ID: "s2", Role: "stable"}, {ID: "c1", Role: routing.RoleCanary}} {
		lb.add(tg)
	}
	for _, w := range []int{0, 20, 50, 100} {
		lb.setWeight(w)
		seen := map[string]int{}
		for range 1000 {
			tg := lb.pick()
			seen[tg.ID]++
			release(tg)
		}
		if seen["c1"] != w*10 {
			t.Errorf("weight %d: canary got %d of 1000, want %d (%v)", w, seen["c1"], w*10, seen)
		}
		if d := seen["s1"] - seen["s2"]; d < -1 || d > 1 {
			t.Errorf("weight %d: stable targets unevenly used: %v", w, seen)
		}
	}
	lb.setWeight(0)
	lb.remove("s1")
	lb.remove("s2")
	if tg := lb.pick(); tg == nil || tg.ID != "c1" {
		t.Errorf("only a canary left: picked %v, want c1", tg)
	}
}

// TestCanaryThroughProxy: through ServeHTTP the canary gets its weight, the
// figures count per role, and with sticky a client keeps the side its
// cookie names (the upstream's own Set-Cookie passes beside it).
func TestCanaryThroughProxy(t *testing.T) {
	p := New(Options{})
	stable, canary := backend(t, "v1"), backend(t, "v2")
	s := svc("p", "web", []string{"shop.test"}, []string{"/"}, false)
	s.Deploy.Sticky = true
	p.RouteIn(s, routing.Target{ContainerID: "s1", Addr: stable.Listener.Addr().String()})
	p.RouteIn(s, routing.Target{ContainerID: "c1", Addr: canary.Listener.Addr().String(), Role: "canary"})
	p.SetCanaryWeight("p", "web", 25)

	seen := map[string]int{}
	var cookies []string
	for range 200 {
		r := httptest.NewRequest("GET", "http://shop.test/", nil)
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		seen[strings.Fields(w.Body.String())[0]]++
		cookies = append(cookies, w.Header().Get("Set-Cookie"))
	}
	if seen["v2"] != 50 || seen["v1"] != 150 {
		t.Errorf("at 25%%: %v, want 50 v2 of 200", seen)
	}
	if st := p.Stats("p", "web"); st["canary"].Requests != 50 || st["stable"].Requests != 150 {
		t.Errorf("stats %+v", st)
	}
	if !strings.HasPrefix(cookies[0], "orca-p-web=") || !strings.Contains(cookies[0], "HttpOnly") {
		t.Errorf("no sticky cookie: %q", cookies[0])
	}
	signed := map[string]string{} // side -> the cookie the proxy set for it
	for _, c := range cookies {
		if v, ok := strings.CutPrefix(strings.Split(c, ";")[0], "orca-p-web="); ok {
			signed[strings.Split(v, ".")[0]] = "orca-p-web=" + v
		}
	}
	for _, side := range []string{"canary", "stable"} {
		want := map[string]string{"canary": "v2", "stable": "v1"}[side]
		if signed[side] == "" {
			t.Fatalf("no sticky cookie for the %s side among %q", side, cookies)
		}
		for range 20 {
			code, body := do(t, p, "shop.test", "/", map[string]string{"Cookie": signed[side]})
			if code != 200 || !strings.HasPrefix(body, want+" ") {
				t.Fatalf("cookie %s: %d %q, want %s", side, code, body, want)
			}
		}
	}
	// The upstream's own cookies pass beside the proxy's (fast path).
	withCookie := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "a", Value: "1"})
		w.Write([]byte("v3 cookie"))
	}))
	defer withCookie.Close()
	p.RouteIn(s, routing.Target{ContainerID: "c2", Addr: withCookie.Listener.Addr().String(), Role: "canary"})
	p.RouteOut(context.Background(), "p", "web", routing.Target{ContainerID: "c1"})
	p.SetCanaryWeight("p", "web", 100)
	r0 := httptest.NewRequest("GET", "http://shop.test/", nil)
	w0 := httptest.NewRecorder()
	p.ServeHTTP(w0, r0)
	if got := w0.Header().Values("Set-Cookie"); len(got) != 2 || !strings.HasPrefix(got[0], "orca-p-web=canary") || got[1] != "a=1" {
		t.Errorf("cookies %q, want the sticky one and the upstream's", got)
	}
	// Without a canary the cookie does not matter and none is set.
	p.RouteOut(context.Background(), "p", "web", routing.Target{ContainerID: "c2"})
	r := httptest.NewRequest("GET", "http://shop.test/", nil)
	r.Header.Set("Cookie", "orca-p-web=canary")
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	if !strings.HasPrefix(w.Body.String(), "v1 ") || w.Header().Get("Set-Cookie") != "" {
		t.Errorf("after the canary: %q, Set-Cookie %q", w.Body.String(), w.Header().Get("Set-Cookie"))
	}
}
