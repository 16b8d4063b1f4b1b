package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/orca-sync/orca-sync/routing"
)

// countingUpstream serves on ln, answering its name and counting the
// requests it received. keepAlive false closes each connection after its
// response, so every request the proxy sends it needs a new connection.
func countingUpstream(t *testing.T, ln net.Listener, name string, keepAlive bool) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, name+" "+r.Method)
	})}
	srv.SetKeepAlivesEnabled(keepAlive)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &n
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func retries(t *testing.T, p *Proxy, key string) float64 {
	t.Helper()
	p.mu.Lock()
	s := p.services[key]
	p.mu.Unlock()
	var m dto.Metric
	if err := s.metrics.retries.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// send makes one request through the proxy's front server and returns its
// status and body ("" and the error's text when the client got no answer).
func send(c *http.Client, front, method string, body io.Reader) (int, string) {
	req, _ := http.NewRequest(method, front+"/", body)
	req.Host = "shop.test"
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRetryOnRefusedTarget: one of two targets stops listening while both
// are routed (a container that died before readiness took it out). Every
// idempotent body-less request — the fast path's GET, HEAD and OPTIONS and
// the general path's PUT and DELETE — still gets its answer, from the other
// target, and each retry is counted. No request is lost, and none reaches
// an upstream twice.
func TestRetryOnRefusedTarget(t *testing.T) {
	lnA := listen(t)
	a := countingUpstream(t, lnA, "a", false)
	lnB := listen(t)
	b := countingUpstream(t, lnB, "b", true)
	p := New(Options{})
	s := svc("p", "web", []string{"shop.test"}, []string{"/"}, false)
	p.RouteIn(s, routing.Target{ContainerID: "a", Addr: lnA.Addr().String()})
	p.RouteIn(s, routing.Target{ContainerID: "b", Addr: lnB.Addr().String()})
	front := httptest.NewServer(p)
	defer front.Close()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}

	methods := []string{"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}
	var lost, sent atomic.Int64
	phase := func(wantA bool) {
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 50 {
					m := methods[(g+i)%len(methods)]
					sent.Add(1)
					code, body := send(c, front.URL, m, nil)
					if code != 200 || (m != "HEAD" && !strings.HasSuffix(body, " "+m)) {
						lost.Add(1)
						t.Errorf("%s: %d %q", m, code, body)
					}
					if !wantA && strings.HasPrefix(body, "a ") {
						t.Errorf("%s answered by the target that stopped listening", m)
					}
				}
			}()
		}
		wg.Wait()
	}
	phase(true)
	if a.Load() == 0 {
		t.Fatal("the first half never reached target a: the test proves nothing")
	}
	before := retries(t, p, "p/web")
	lnA.Close() // a is still routed; connecting to it is now refused
	phase(false)
	if lost.Load() > 0 {
		t.Fatalf("%d of %d requests lost", lost.Load(), sent.Load())
	}
	if got := a.Load() + b.Load(); got != sent.Load() {
		t.Errorf("upstreams saw %d requests, %d were sent", got, sent.Load())
	}
	if r := retries(t, p, "p/web") - before; r == 0 {
		t.Error("orca_proxy_retries_total did not count the retries")
	}
}

// TestNoRetryOnceSent: a request whose connection was made is never sent
// again, even when the upstream closes it without answering (it may have
// acted on the request); nor is a request with a body, which the proxy does
// not keep, when its target refuses the connection.
func TestNoRetryOnceSent(t *testing.T) {
	// silent reads each request and closes the connection without a word.
	silent := listen(t)
	defer silent.Close()
	var seen atomic.Int64
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
				seen.Add(1)
			}
			c.Close()
		}
	}()
	lnB := listen(t)
	b := countingUpstream(t, lnB, "b", true)
	p := New(Options{})
	s := svc("p", "web", []string{"shop.test"}, []string{"/"}, false)
	p.RouteIn(s, routing.Target{ContainerID: "s", Addr: silent.Addr().String()})
	p.RouteIn(s, routing.Target{ContainerID: "b", Addr: lnB.Addr().String()})
	front := httptest.NewServer(p)
	defer front.Close()
	c := &http.Client{}
	codes := map[int]int{}
	for _, m := range []string{"PUT", "PUT", "DELETE", "DELETE", "GET", "GET"} {
		code, _ := send(c, front.URL, m, nil)
		codes[code]++
	}
	if codes[502] != 3 || codes[200] != 3 || seen.Load() != 3 || b.Load() != 3 {
		t.Errorf("answers %v, the silent upstream saw %d, the other %d; want 3×502 and 3×200, 3 and 3 (sent once each, no retry)",
			codes, seen.Load(), b.Load())
	}

	silent.Close() // now refused: a request with a body still is not retried
	clear(codes)
	for range 4 {
		code, _ := send(c, front.URL, "PUT", strings.NewReader("payload"))
		codes[code]++
	}
	if codes[502] != 2 || codes[200] != 2 {
		t.Errorf("PUTs with a body to a refused and a live target: %v, want 2×502 and 2×200", codes)
	}
	if r := retries(t, p, "p/web"); r != 0 {
		t.Errorf("orca_proxy_retries_total = %v, want 0", r)
	}
}
