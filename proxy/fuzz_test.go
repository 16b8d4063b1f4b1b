package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/routing"
)

// normalise is what a lenient upstream makes of a forwarded path: decode
// (decodes times), take `\` for `/`, drop `;parameters`, resolve dot
// segments. ok is false when it cannot decode the path.
func normalise(p string, decodes int) (string, bool) {
	for range decodes {
		d, err := url.PathUnescape(p)
		if err != nil {
			return "", false
		}
		p = d
	}
	segs := strings.Split(strings.ReplaceAll(p, `\`, "/"), "/")
	for i, s := range segs {
		segs[i], _, _ = strings.Cut(s, ";")
	}
	return path.Clean("/" + strings.Join(segs, "/")), true
}

// within reports whether the cleaned path p is prefix or below it.
func within(prefix, p string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	return prefix == "" || p == prefix || strings.HasPrefix(p, prefix+"/")
}

// FuzzPathStaysInRoute: for random route prefixes and random raw paths,
// what the proxy forwards, after a lenient upstream's own cleaning (decoding
// once or twice), is inside the route that matched, and cleaning it again
// changes nothing; or the proxy refused the request.
//
//	go test -run '^$' -fuzz FuzzPathStaysInRoute -fuzztime 60s ./proxy/
func FuzzPathStaysInRoute(f *testing.F) {
	for _, c := range []struct{ a, b, path string }{
		{"/public", "/", "/public/%2e%2e/env/HOSTNAME"},
		{"/public", "/internal", "/public%2f..%2finternal"},
		{"/api/", "/x/y", "/api/./v1/../users?q=1"},
		{"/a", "/a/b", "//a///b/%2E/c/.."},
		{"/a", "/b", `/a/..%5cb`},
		{"/a", "/b", "/a/%252e%252e/b"},
		{"/a", "/b", "/a/..;/b"},
		{"/a", "/b", "/a/%2e%2e;x/b"},
		{"/a", "/b", "http://h/a/../b"},
	} {
		f.Add(c.a, c.b, c.path, false, false)
		f.Add(c.a, c.b, c.path, true, true)
	}
	up := map[string]string{"a": uriUpstream(f, "a"), "b": uriUpstream(f, "b")}
	p := New(Options{})
	f.Fuzz(func(t *testing.T, prefixA, prefixB, target string, strip, post bool) {
		prefixes := map[string]string{"a": "/" + strings.TrimPrefix(prefixA, "/"), "b": "/" + strings.TrimPrefix(prefixB, "/")}
		for _, name := range []string{"a", "b"} {
			p.RouteIn(svc("p", name, []string{"fz.test"}, []string{prefixes[name]}, strip && name == "a"), routing.Target{ContainerID: name, Addr: up[name]})
		}
		method, body := "GET", ""
		if post {
			method, body = "POST", "x"
		}
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(
			fmt.Sprintf("%s %s HTTP/1.1\r\nHost: fz.test\r\nContent-Length: %d\r\n\r\n%s", method, target, len(body), body))))
		if err != nil || strings.ContainsAny(target, " \r\n") {
			return // net/http refuses it, or reads another target
		}
		r.RemoteAddr = "192.0.2.1:1"
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			if w.Code != http.StatusBadRequest && w.Code != http.StatusNotFound {
				t.Fatalf("%s %q: %d %q", method, target, w.Code, w.Body.String())
			}
			return
		}
		name, uri, _ := strings.Cut(w.Body.String(), " ")
		fwd, _, _ := strings.Cut(uri, "?")
		plain, err := url.PathUnescape(fwd)
		if err != nil || !strings.HasPrefix(fwd, "/") {
			t.Fatalf("%q forwarded as %q, which does not decode", target, uri)
		}
		if c := path.Clean(plain); (plain != c && plain != c+"/") || strings.ContainsAny(plain, "\\\x00") {
			t.Fatalf("%q forwarded as %q: not clean once decoded (%q)", target, uri, plain)
		}
		for decodes := 1; decodes <= 2; decodes++ {
			clean, ok := normalise(fwd, decodes)
			if !ok {
				continue
			}
			if name == "a" && strip {
				continue // the upstream sees the rest of the path only
			}
			if !within(cleanPrefix(prefixes[name]), clean) {
				t.Fatalf("%q routed to %s (prefix %q), forwarded as %q: decoded %d times and cleaned, %q", target, name, prefixes[name], uri, decodes, clean)
			}
		}
	})
}

// FuzzUpstreamResponse: whatever bytes an upstream sends back (over a real
// TCP socket, then closing it), the proxy never panics but with
// http.ErrAbortHandler, never hangs, and the client gets either a
// well-formed response (the upstream's status and body when those parse,
// else 502) or, when the proxy aborted, a connection cut short.
//
//	go test -run '^$' -fuzz FuzzUpstreamResponse -fuzztime 60s ./proxy/
func FuzzUpstreamResponse(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 201 Made\r\nContent-Length: 2\r\nSet-Cookie: a=1\r\nx-a: 1\r\nX-A: 2\r\n\r\nokEXTRA",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 1\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		"HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n",
		"garbage\r\n\r\n",
		"",
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	p := New(Options{})
	var aborted atomic.Bool
	var badPanic atomic.Pointer[string]
	px := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v != http.ErrAbortHandler {
					msg := fmt.Sprintf("%v\n%s", v, debug.Stack())
					badPanic.Store(&msg)
				}
				aborted.Store(true)
				panic(v)
			}
		}()
		p.ServeHTTP(w, r)
	}))
	defer px.Close()
	f.Fuzz(func(t *testing.T, answer []byte, post bool) {
		aborted.Store(false)
		badPanic.Store(nil)
		p.RouteIn(svc("p", "web", []string{"fz.test"}, []string{"/"}, false), routing.Target{ContainerID: "w", Addr: oneAnswer(t, answer)})
		method, body := "GET", ""
		if post {
			method, body = "POST", "x"
		}
		code, got, err := fuzzRequest(t, px.Listener.Addr().String(), method, body)
		if msg := badPanic.Load(); msg != nil {
			t.Fatalf("the proxy panicked: %s", *msg)
		}
		if aborted.Load() {
			if err == nil {
				t.Fatalf("aborted, yet the client read a complete %d %q", code, got)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s: the client read %d %q, then %v, without an abort", method, code, got, err)
		}
		wantCode, wantBody, ok := parseAnswer(answer, method)
		switch {
		case code == http.StatusBadGateway:
		case !ok:
			t.Fatalf("%s: upstream sent %q, which does not parse; the client got %d %q, want 502", method, answer, code, got)
		case code != wantCode || (method != "HEAD" && got != wantBody):
			t.Fatalf("%s: upstream sent %q (%d %q); the client got %d %q", method, answer, wantCode, wantBody, code, got)
		}
	})
}

// oneAnswer listens for one connection, reads its request, sends answer and
// closes.
func oneAnswer(t *testing.T, answer []byte) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer c.Close()
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		req.Body.Close()
		c.Write(answer)
	}()
	return ln.Addr().String()
}

// fuzzRequest asks the proxy and reads its answer whole; a hang past 20 s
// fails the test (every proxy timeout that could apply is shorter once the
// upstream has closed).
func fuzzRequest(t *testing.T, addr, method, body string) (int, string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "%s / HTTP/1.1\r\nHost: fz.test\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", method, len(body), body)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	for err == nil && resp.StatusCode < 200 {
		resp, err = http.ReadResponse(br, nil)
	}
	if err != nil {
		checkHang(t, err)
		return 0, "", err
	}
	b, err := io.ReadAll(resp.Body)
	checkHang(t, err)
	return resp.StatusCode, string(b), err
}

func checkHang(t *testing.T, err error) {
	if isTimeout(err) {
		t.Fatalf("the proxy hung: %v", err)
	}
}

// parseAnswer is what net/http makes of the upstream's answer: the final
// status and the body, ok false when either does not parse whole.
func parseAnswer(answer []byte, method string) (int, string, bool) {
	br := bufio.NewReader(bytes.NewReader(answer))
	req := &http.Request{Method: method}
	resp, err := http.ReadResponse(br, req)
	for err == nil && resp.StatusCode < 200 {
		resp, err = http.ReadResponse(br, req)
	}
	if err != nil || resp.StatusCode == http.StatusSwitchingProtocols {
		return 0, "", false
	}
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err == nil
}
