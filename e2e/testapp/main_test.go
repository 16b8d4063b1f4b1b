package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func envLookup(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func startApp(t *testing.T, kv ...string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(newApp(envLookup(kv...)).handler())
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestVersion(t *testing.T) {
	srv := startApp(t, "VERSION", "v1")
	code, h, body := do(t, "GET", srv.URL+"/", "")
	if code != 200 || body != "v1" || h.Get("X-Version") != "v1" {
		t.Fatalf("GET / = %d %q X-Version=%q, want 200 v1 v1", code, body, h.Get("X-Version"))
	}
	if code, _, _ := do(t, "GET", srv.URL+"/nope", ""); code != 404 {
		t.Fatalf("GET /nope = %d, want 404", code)
	}
}

func TestHealthzToggle(t *testing.T) {
	srv := startApp(t, "VERSION", "v1")
	check := func(want int) {
		t.Helper()
		if code, _, body := do(t, "GET", srv.URL+"/healthz", ""); code != want {
			t.Fatalf("GET /healthz = %d %q, want %d", code, body, want)
		}
	}
	check(200)
	do(t, "POST", srv.URL+"/healthz/fail", "")
	check(500)
	do(t, "POST", srv.URL+"/healthz/ok", "")
	check(200)

	failing := startApp(t, "VERSION", "broken", "HEALTHZ_FAIL", "1")
	if code, _, _ := do(t, "GET", failing.URL+"/healthz", ""); code != 500 {
		t.Fatalf("HEALTHZ_FAIL=1: GET /healthz = %d, want 500", code)
	}
}

func TestHealthcheckCommand(t *testing.T) {
	srv := startApp(t)
	if got := healthcheck(srv.URL + "/healthz"); got != 0 {
		t.Fatalf("healthy: exit %d, want 0", got)
	}
	do(t, "POST", srv.URL+"/healthz/fail", "")
	if got := healthcheck(srv.URL + "/healthz"); got != 1 {
		t.Fatalf("unhealthy: exit %d, want 1", got)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if got := healthcheck("http://" + addr + "/healthz"); got != 1 {
		t.Fatalf("down: exit %d, want 1", got)
	}
}

func TestStatusCodes(t *testing.T) {
	srv := startApp(t)
	for _, c := range []int{200, 204, 404, 418, 500, 503} {
		if code, _, _ := do(t, "GET", srv.URL+"/status/"+strconv.Itoa(c), ""); code != c {
			t.Errorf("GET /status/%d = %d", c, code)
		}
	}
	if code, _, _ := do(t, "GET", srv.URL+"/status/abc", ""); code != 400 {
		t.Errorf("GET /status/abc = %d, want 400", code)
	}
}

func TestErrorRate(t *testing.T) {
	all := startApp(t, "VERSION", "v1", "ERROR_RATE", "1")
	none := startApp(t, "VERSION", "v1", "ERROR_RATE", "0")
	half := startApp(t, "VERSION", "v1", "ERROR_RATE", "0.5")
	fails := 0
	for range 200 {
		if code, _, _ := do(t, "GET", all.URL+"/", ""); code != 500 {
			t.Fatalf("ERROR_RATE=1 gave %d", code)
		}
		if code, _, _ := do(t, "GET", none.URL+"/", ""); code != 200 {
			t.Fatalf("ERROR_RATE=0 gave %d", code)
		}
		if code, _, _ := do(t, "GET", half.URL+"/", ""); code == 500 {
			fails++
		}
	}
	if fails < 40 || fails > 160 { // p ~ 1e-17 of a false alarm
		t.Fatalf("ERROR_RATE=0.5 failed %d/200", fails)
	}
}

func TestSlowEnvFile(t *testing.T) {
	t.Setenv("TESTAPP_X", "hello")
	srv := httptest.NewServer(newApp(os.LookupEnv).handler())
	defer srv.Close()

	start := time.Now()
	if code, _, _ := do(t, "GET", srv.URL+"/slow?ms=150", ""); code != 200 || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("slow: %d after %v", code, time.Since(start))
	}
	if _, _, body := do(t, "GET", srv.URL+"/env?name=TESTAPP_X", ""); body != "hello" {
		t.Fatalf("env = %q", body)
	}
	if code, _, _ := do(t, "GET", srv.URL+"/env?name=TESTAPP_UNSET_XYZ", ""); code != 404 {
		t.Fatalf("unset env = %d, want 404", code)
	}
	p := filepath.Join(t.TempDir(), "sub", "f.txt")
	if code, _, body := do(t, "POST", srv.URL+"/file?path="+p, "persist me"); code != 200 {
		t.Fatalf("POST /file = %d %q", code, body)
	}
	if code, _, body := do(t, "GET", srv.URL+"/file?path="+p, ""); code != 200 || body != "persist me" {
		t.Fatalf("GET /file = %d %q", code, body)
	}
	if code, _, _ := do(t, "GET", srv.URL+"/file?path="+p+".missing", ""); code != 404 {
		t.Fatalf("missing file = %d", code)
	}
}

func TestFetch(t *testing.T) {
	upstream := startApp(t, "VERSION", "up")
	srv := startApp(t, "VERSION", "down")
	code, h, body := do(t, "GET", srv.URL+"/fetch?url="+upstream.URL+"/", "")
	if code != 200 || body != "up" || h.Get("X-Upstream-Version") != "up" {
		t.Fatalf("fetch = %d %q %v", code, body, h)
	}
	code, h, _ = do(t, "GET", srv.URL+"/fetch?url="+upstream.URL+"/status/503", "")
	if code != 503 || h.Get("X-Upstream-Status") != "503" || h.Get("X-Fetch-Error") != "" {
		t.Fatalf("fetch 503 = %d %v", code, h)
	}
	code, h, _ = do(t, "GET", srv.URL+"/fetch?url=http://127.0.0.1:1/", "")
	if code != 502 || h.Get("X-Fetch-Error") == "" {
		t.Fatalf("fetch refused = %d %v", code, h)
	}
}

func TestExtras(t *testing.T) {
	srv := startApp(t, "VERSION", "v9")
	if code, h, _ := do(t, "GET", srv.URL+"/redirect?to=/x", ""); code != 302 || h.Get("Location") != "/x" {
		t.Fatalf("redirect = %d %v", code, h)
	}
	if _, h, _ := do(t, "GET", srv.URL+"/cookies", ""); len(h.Values("Set-Cookie")) != 2 {
		t.Fatalf("cookies = %v", h.Values("Set-Cookie"))
	}
	if code, h, body := do(t, "GET", srv.URL+"/sse?n=2&ms=1", ""); code != 200 ||
		h.Get("Content-Type") != "text/event-stream" || body != "id: 0\ndata: v9 0\n\nid: 1\ndata: v9 1\n\n" {
		t.Fatalf("sse = %d %v %q", code, h, body)
	}
	for _, n := range []int{0, 1024, 100 << 10} {
		code, h, body := do(t, "GET", srv.URL+"/bytes/"+strconv.Itoa(n), "")
		if code != 200 || len(body) != n || strings.Trim(body, "x") != "" || h.Get("Content-Length") != strconv.Itoa(n) {
			t.Fatalf("bytes/%d = %d, %d bytes, Content-Length %q", n, code, len(body), h.Get("Content-Length"))
		}
	}
	if code, _, _ := do(t, "GET", srv.URL+"/bytes/99999999999", ""); code != 400 {
		t.Fatalf("bytes over the bound = %d, want 400", code)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/headers", nil)
	req.Header.Set("X-Forwarded-For", "1.2.3.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"X-Forwarded-For":["1.2.3.4"]`) {
		t.Fatalf("headers = %s", b)
	}
}

// --- WebSocket ---

func wsDial(t *testing.T, srv *httptest.Server, key string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "+key+"\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn, br, resp
}

func TestWebSocketHandshakeRFCExample(t *testing.T) {
	srv := startApp(t)
	// RFC 6455 section 1.3 example key and accept value.
	_, _, resp := wsDial(t, srv, "dGhlIHNhbXBsZSBub25jZQ==")
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" ||
		!strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("handshake: %d %v", resp.StatusCode, resp.Header)
	}
	if code, _, _ := do(t, "GET", srv.URL+"/ws", ""); code != 400 {
		t.Fatalf("plain GET /ws = %d, want 400", code)
	}
}

func TestWebSocketEcho(t *testing.T) {
	srv := startApp(t)
	conn, br, resp := wsDial(t, srv, "AAAAAAAAAAAAAAAAAAAAAA==")
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}

	// RFC 6455 section 5.7: a masked single-frame text "Hello" from a client,
	// answered by the unmasked frame 0x81 0x05 "Hello".
	conn.Write([]byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58})
	got := make([]byte, 7)
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x81, 0x05, 'H', 'e', 'l', 'l', 'o'}; !bytes.Equal(got, want) {
		t.Fatalf("echo bytes % x, want % x", got, want)
	}

	w := bufio.NewWriter(conn)
	mask := &[4]byte{1, 2, 3, 4}

	// Binary payloads around the 7-bit, 16-bit and 64-bit length encodings.
	for _, n := range []int{0, 125, 126, 65535, 65536, 70000} {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		if err := wsWriteFrame(w, opBinary, payload, mask); err != nil {
			t.Fatal(err)
		}
		var hdr [2]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			t.Fatal(err)
		}
		if hdr[0] != 0x82 || hdr[1]&0x80 != 0 {
			t.Fatalf("n=%d: header % x (want FIN|binary, unmasked)", n, hdr)
		}
		var ln uint64
		switch l := hdr[1] & 0x7f; {
		case n < 126:
			ln = uint64(l)
		case n <= 0xffff:
			var b [2]byte
			io.ReadFull(br, b[:])
			if l != 126 {
				t.Fatalf("n=%d: len code %d", n, l)
			}
			ln = uint64(binary.BigEndian.Uint16(b[:]))
		default:
			var b [8]byte
			io.ReadFull(br, b[:])
			if l != 127 {
				t.Fatalf("n=%d: len code %d", n, l)
			}
			ln = binary.BigEndian.Uint64(b[:])
		}
		if ln != uint64(n) {
			t.Fatalf("n=%d: echoed length %d", n, ln)
		}
		back := make([]byte, ln)
		if _, err := io.ReadFull(br, back); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back, payload) {
			t.Fatalf("n=%d: payload differs", n)
		}
	}

	// A fragmented text message with a ping in between.
	w.WriteByte(opText) // FIN=0
	w.WriteByte(0x80 | 3)
	w.Write(mask[:])
	for i, c := range []byte("abc") {
		w.WriteByte(c ^ mask[i%4])
	}
	w.Flush()
	wsWriteFrame(w, opPing, []byte("pp"), mask)
	wsWriteFrame(w, opContinuation, []byte("def"), mask) // FIN=1
	fin, op, p, err := wsReadFrame(br, false, 1<<20)
	if err != nil || !fin || op != opPong || string(p) != "pp" {
		t.Fatalf("pong: %v %v %x %q", err, fin, op, p)
	}
	fin, op, p, err = wsReadFrame(br, false, 1<<20)
	if err != nil || !fin || op != opText || string(p) != "abcdef" {
		t.Fatalf("fragmented echo: %v %v %x %q", err, fin, op, p)
	}

	// Close handshake: the server echoes the status code and closes.
	wsWriteFrame(w, opClose, []byte{0x03, 0xe8, 'b', 'y', 'e'}, mask)
	fin, op, p, err = wsReadFrame(br, false, 1<<20)
	if err != nil || op != opClose || !bytes.Equal(p, []byte{0x03, 0xe8}) {
		t.Fatalf("close: %v %v %x %x", err, fin, op, p)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after close: %v, want EOF", err)
	}
}

func TestWebSocketRejectsUnmasked(t *testing.T) {
	srv := startApp(t)
	conn, br, _ := wsDial(t, srv, "AAAAAAAAAAAAAAAAAAAAAA==")
	conn.Write([]byte{0x81, 0x02, 'h', 'i'}) // unmasked client frame
	_, op, p, err := wsReadFrame(br, false, 125)
	if err != nil || op != opClose || binary.BigEndian.Uint16(p) != 1002 {
		t.Fatalf("got %v %x %x, want close 1002", err, op, p)
	}
}
