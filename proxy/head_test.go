package proxy

import (
	"bufio"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestSimpleHeadAgreesWithNetHTTP: a head parseSimpleHead takes is read as
// http.ReadResponse reads it (status, headers, body length, where the body
// starts); one it leaves is untouched for http.ReadResponse. The common
// shape must be taken, else the fast path's saving silently goes.
func TestSimpleHeadAgreesWithNetHTTP(t *testing.T) {
	for _, c := range []struct {
		head  string
		taken bool
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nDate: x\r\n\r\n", true},
		{"HTTP/1.1 404 Not Found\r\ncontent-length:0\r\nx-odd_name:  v \t\r\nX-Odd_Name: w\r\n\r\n", true},
		{"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Bin: \xff\xfe\r\n\r\n", true},
		{"HTTP/1.1 599 Whatever it says\r\nContent-Length: 1\r\n\r\n", true},
		{"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 10\r\n\r\n", true},
		{"HTTP/1.1 200 OK\r\n\r\n", false},                                           // no length: until close
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n", false}, // net/http decides
		{"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTrailer: X\r\n\r\n", false},
		{"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", false},
		{"HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\n", false},
		{"HTTP/1.1 304 Not Modified\r\nContent-Length: 2\r\n\r\n", false},
		{"HTTP/1.1 103 Early Hints\r\nContent-Length: 0\r\n\r\n", false},
		{"HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n folded\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nBad Name: v\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: a\x00b\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\nX: bare LF\r\n\r\n", false},
		{"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n", false},
		{"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\n", false},
	} {
		raw := c.head + "bodyrest"
		br := bufio.NewReader(strings.NewReader(raw))
		br.Peek(1)
		got := http.Header{}
		h, ok := parseSimpleHead(br, got)
		if ok != c.taken {
			t.Errorf("%q: taken %v, want %v", c.head, ok, c.taken)
		}
		if !ok {
			if len(got) != 0 || br.Buffered() != len(raw) {
				t.Errorf("%q: left, yet %d headers written and %d bytes read", c.head, len(got), len(raw)-br.Buffered())
			}
			continue
		}
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), &http.Request{Method: "GET"})
		if err != nil {
			t.Errorf("%q: taken, but net/http refuses it: %v", c.head, err)
			continue
		}
		if h.code != resp.StatusCode || h.length != resp.ContentLength || !maps.EqualFunc(got, resp.Header, slices.Equal) {
			t.Errorf("%q: got %d, length %d, %v; net/http reads %d, %d, %v", c.head, h.code, h.length, got, resp.StatusCode, resp.ContentLength, resp.Header)
		}
		if h.sse != strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Errorf("%q: sse %v", c.head, h.sse)
		}
		if rest, _ := io.ReadAll(br); string(rest) != "bodyrest" {
			t.Errorf("%q: the body starts at %q", c.head, rest)
		}
	}
}
