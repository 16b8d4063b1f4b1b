//go:build unix

package api

import (
	"bufio"
	"context"
	"fmt"
	"github.com/orca-sync/orca-sync/diff"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// startHTTPServer serves handler with lim on 127.0.0.1 the way serve does
// (NewHTTPServer) and returns its address.
func startHTTPServer(t *testing.T, handler http.Handler, lim Limits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer(handler, lim)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// needDescriptors raises the soft open-file limit to n if the hard limit
// allows, and fails the test with what to do if it does not.
func needDescriptors(t *testing.T, n uint64) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	if rl.Cur >= n {
		return
	}
	if rl.Max >= n {
		raised := rl
		raised.Cur = n
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl) })
			return
		}
	}
	t.Fatalf("this test holds %d descriptors; the limit is %d (hard %d): raise it with ulimit -n", n, rl.Cur, rl.Max)
}

// slowConn is one client connection that sends opening at once, then trickle
// one byte at a time, and notes when the server closes it.
type slowConn struct {
	kind   string
	conn   net.Conn
	got    strings.Builder // what the server sent, read until it closed
	closed atomic.Bool
	done   chan struct{}
}

func dialSlow(t *testing.T, addr, kind, opening, trickle string) *slowConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s connection: %v", kind, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &slowConn{kind: kind, conn: conn, done: make(chan struct{})}
	if _, err := io.WriteString(conn, opening); err != nil {
		t.Fatalf("%s connection: %v", kind, err)
	}
	go func() { // reads until the server closes the connection
		defer close(c.done)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			c.got.Write(buf[:n])
			if err != nil {
				c.closed.Store(true)
				return
			}
		}
	}()
	if trickle != "" {
		go func() { // one byte every 100 ms while the connection lives
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-c.done:
					return
				case <-tick.C:
				}
				if _, err := conn.Write([]byte{trickle[i%len(trickle)]}); err != nil {
					return
				}
			}
		}()
	}
	return c
}

// TestAPIServerCutsSlowConnections holds 300 connections that would each
// live forever under a server with only a header timeout — a body sent a
// byte at a time to the webhook URL, idle keep-alives, headers sent a byte
// at a time — and checks that the API still answers /api/v1/health while
// they are open and that the server's timeouts close every one of them.
func TestAPIServerCutsSlowConnections(t *testing.T) {
	const perKind = 100
	needDescriptors(t, 3*perKind*2+256) // both ends of every connection live in this process
	env := newTestEnv(t)
	lim := Limits{ReadHeaderTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second,
		WriteTimeout: 2 * time.Second, IdleTimeout: 2 * time.Second, MaxHeaderBytes: 8 << 10}
	addr := startHTTPServer(t, env.handler, lim)

	var conns []*slowConn
	for range perKind {
		conns = append(conns,
			dialSlow(t, addr, "slow body",
				"POST /api/v1/webhooks/github HTTP/1.1\r\nHost: orca\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
				`{"ref":"refs/heads/main"}`),
			dialSlow(t, addr, "idle keep-alive", "GET /api/v1/health HTTP/1.1\r\nHost: orca\r\n\r\n", ""),
			dialSlow(t, addr, "slow headers", "GET /api/v1/health HTTP/1.1\r\nHost: orca\r\n", "X-Slow: yes\r\n"))
	}

	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + addr + "/api/v1/health")
	if err != nil {
		t.Fatalf("health while %d slow connections are open: %v", len(conns), err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
		t.Fatalf("health while slow connections are open: %d %s", resp.StatusCode, body)
	}
	open := 0
	for _, c := range conns {
		if !c.closed.Load() {
			open++
		}
	}
	t.Logf("health answered with %d of %d slow connections still open", open, len(conns))

	waitUntil(t, time.Minute, func() (bool, string) {
		left := map[string]int{}
		for _, c := range conns {
			if !c.closed.Load() {
				left[c.kind]++
			}
		}
		return len(left) == 0, fmt.Sprintf("connections the server has not closed: %v", left)
	})
	for _, c := range conns {
		<-c.done
		if c.kind == "idle keep-alive" && !strings.HasPrefix(c.got.String(), "HTTP/1.1 200 OK") {
			t.Fatalf("an idle connection was closed before its answer: %q", c.got.String())
		}
	}
}

// waitUntil polls cond every 50 ms until it holds, failing with its last
// description after timeout.
func waitUntil(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, desc := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, desc)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// slowBackend answers a plan and streams a followed log only when the test
// says so, to outlast the server's timeouts.
type slowBackend struct {
	*fakeBackend
	release chan struct{} // closed: Plan answers
	lines   chan string   // each is written to a followed log
}

func (b *slowBackend) Plan(ctx context.Context) (diff.Plan, error) {
	select {
	case <-b.release:
		return diff.Plan{Changes: []diff.Change{}}, nil
	case <-ctx.Done():
		return diff.Plan{}, ctx.Err()
	}
}

func (b *slowBackend) Logs(ctx context.Context, _, _ string, _ int, _ bool, w io.Writer) error {
	for {
		select {
		case l := <-b.lines:
			if _, err := io.WriteString(w, l+"\n"); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// TestLongAnswersOutliveReadTimeout: a followed log stream outlives the read
// and write timeouts, and a plan that takes longer than ReadTimeout is
// answered, not cancelled (net/http lifts the read deadline once the request
// is read, or its background read would cancel the request's context).
func TestLongAnswersOutliveReadTimeout(t *testing.T) {
	b := &slowBackend{fakeBackend: newFakeBackend(), release: make(chan struct{}), lines: make(chan string)}
	srv, err := New(Options{Backend: b, Config: newFakeConfig(), AdminToken: generatedAdmin, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	// Two servers: the log stream outlasts both deadlines; the plan outlasts
	// the read deadline and well fits in the write deadline.
	streamLim := Limits{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond,
		WriteTimeout: 300 * time.Millisecond, IdleTimeout: time.Second, MaxHeaderBytes: 8 << 10}
	planLim := streamLim
	planLim.WriteTimeout = 10 * time.Second
	streamAddr := startHTTPServer(t, srv.Handler(), streamLim)
	planAddr := startHTTPServer(t, srv.Handler(), planLim)
	get := func(addr, path string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+generatedAdmin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	// Waiting out the deadlines is the point here; nothing is asserted about
	// how long anything takes.
	outlast := func(d time.Duration) { <-time.After(5 * d) }

	t.Run("followed log", func(t *testing.T) {
		// The status line goes out with the first line of the log.
		go func() { b.lines <- "first" }()
		resp := get(streamAddr, "/api/v1/services/web/app/logs?follow=true")
		r := bufio.NewReader(resp.Body)
		for i, want := range []string{"first", "after the timeouts"} {
			if i > 0 {
				outlast(streamLim.WriteTimeout)
				b.lines <- want
			}
			got, err := r.ReadString('\n')
			if err != nil || strings.TrimSpace(got) != want {
				t.Fatalf("line %d = %q, %v; want %q", i+1, got, err, want)
			}
		}
	})
	t.Run("slow plan", func(t *testing.T) {
		go func() { outlast(planLim.ReadTimeout); close(b.release) }()
		resp := get(planAddr, "/api/v1/plan")
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"changes"`) {
			t.Fatalf("slow plan: %d %s", resp.StatusCode, body)
		}
	})
}
