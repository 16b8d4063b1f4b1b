package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/routing"
)

// rawUpstream answers each connection's requests in turn with answers[i]
// (raw bytes, so a test can send what a well-behaved server would not).
func rawUpstream(t *testing.T, answers ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for _, a := range answers {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					req.Body.Close()
					if _, err := c.Write([]byte(a)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestFastPathDropsConnectionWithStrayBytes: an upstream that sends more than
// its response's framing says (a second response, a body on a HEAD) must not
// have those bytes read as the answer to the next request on the connection.
func TestFastPathDropsConnectionWithStrayBytes(t *testing.T) {
	addr := rawUpstream(t,
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirstHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale",
		"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
	p := New(Options{})
	p.RouteIn(svc("p", "web", []string{"shop.test"}, []string{"/"}, false), routing.Target{ContainerID: "w", Addr: addr})
	if code, body := do(t, p, "shop.test", "/", nil); code != 200 || body != "first" {
		t.Fatalf("first request: %d %q", code, body)
	}
	code, body := do(t, p, "shop.test", "/", nil)
	if strings.Contains(body, "stale") {
		t.Fatalf("second request got the bytes left over from the first response: %d %q", code, body)
	}
	if code != 200 || body != "first" { // a fresh connection's first answer
		t.Errorf("second request: %d %q", code, body)
	}
}

// TestFastPathTrailersWhenUpstreamCloses: a chunked response's trailers
// reach the client even when the upstream closes the connection after it.
func TestFastPathTrailersWhenUpstreamCloses(t *testing.T) {
	addr := rawUpstream(t, "HTTP/1.1 200 OK\r\nConnection: close\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"4\r\nbody\r\n0\r\nX-Sum: 42\r\n\r\n")
	p := New(Options{})
	p.RouteIn(svc("p", "web", []string{"shop.test"}, []string{"/"}, false), routing.Target{ContainerID: "w", Addr: addr})
	r := httptest.NewRequest("GET", "http://shop.test/", nil)
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	res := w.Result()
	if b, _ := io.ReadAll(res.Body); string(b) != "body" || res.Trailer.Get("X-Sum") != "42" {
		t.Errorf("body %q, trailers %v; want \"body\" and X-Sum: 42", b, res.Trailer)
	}
}

// TestPoolClosesExpiredIdle: connections idle past upstreamIdleTimeout are
// closed when the pool is next used for their target, not only when a get
// reaches them: under less load than before, the oldest at the bottom of the
// stack would otherwise stay open (and in CLOSE_WAIT once the upstream gives
// up on them) for ever.
func TestPoolClosesExpiredIdle(t *testing.T) {
	pool := newUpstreamPool()
	old, oldPeer := net.Pipe()
	defer oldPeer.Close()
	pool.idle["a"] = []*upConn{{c: old, used: time.Now().Add(-2 * upstreamIdleTimeout)}}
	fresh, freshPeer := net.Pipe()
	defer freshPeer.Close()
	defer fresh.Close()
	pool.put("a", &upConn{c: fresh})
	if err := old.SetDeadline(time.Now()); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("expired idle connection still open (SetDeadline: %v)", err)
	}
	if n := len(pool.idle["a"]); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
}

// TestClientLeavingFreesUpstream: a client that gives up while the upstream
// holds its answer — before the header (a long poll), in the middle of a
// sized body, in the middle of a stream — makes the fast path drop the
// upstream connection at once (the upstream sees it closed), rather than
// holding it and a goroutine until the upstream speaks again.
func TestClientLeavingFreesUpstream(t *testing.T) {
	for _, c := range []struct{ name, path string }{{"header wait", "/hold"}, {"sized body", "/sized"}, {"stream", "/stream"}} {
		t.Run(c.name, func(t *testing.T) {
			freed, wrote := make(chan struct{}), make(chan struct{})
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/sized": // enough that the proxy passes the header on
					w.Header().Set("Content-Length", "1048576")
					w.Write(make([]byte, 64<<10))
					w.(http.Flusher).Flush()
				case "/stream":
					io.WriteString(w, "part")
					w.(http.Flusher).Flush()
				}
				close(wrote)
				<-r.Context().Done() // the proxy closed the connection
				close(freed)
			}))
			defer up.Close()
			p := New(Options{})
			p.RouteIn(svc("p", "web", []string{"shop.test"}, []string{"/"}, false), routing.Target{ContainerID: "w", Addr: up.Listener.Addr().String()})
			front := httptest.NewServer(p)
			defer front.Close()
			conn, err := net.Dial("tcp", front.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(conn, "GET "+c.path+" HTTP/1.1\r\nHost: shop.test\r\n\r\n")
			<-wrote
			if c.path != "/hold" { // the proxy is in the body: the header came through
				if _, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil {
					t.Fatal(err)
				}
			}
			waitInflight(t, p, "p/web", 1)
			conn.Close()
			select {
			case <-freed:
			case <-time.After(20 * time.Second): // a hang guard, not a timing
				up.CloseClientConnections()
				t.Fatal("the upstream connection was kept after the client left")
			}
		})
	}
}
