package e2e

// Helpers for the proxy tests: serve with the proxy on loopback ports, a
// client that sends requests by Host, a load generator and a WebSocket client.

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/internal/gittest"
)

// proxyServe is serve with its proxy on 127.0.0.1 ports of its own.
type proxyServe struct {
	*daemon
	repo        *gittest.Repo
	url         string
	http, https string // host:port
}

func startProxyServe(t *testing.T, env *Env, files map[string]string, environ ...string) *proxyServe {
	t.Helper()
	ps := newProxyPorts(t)
	ps.start(t, env, files, environ...)
	return ps
}

// newProxyPorts picks the proxy's loopback ports; start runs serve on them.
func newProxyPorts(t *testing.T) *proxyServe {
	return &proxyServe{http: fmt.Sprintf("127.0.0.1:%d", freePort(t)), https: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
}

func (ps *proxyServe) start(t *testing.T, env *Env, files map[string]string, environ ...string) {
	t.Helper()
	repo, srv := newServedRepo(t)
	for f, c := range files {
		repo.WriteFile(f, c)
	}
	repo.Commit("initial")
	repo.Push()
	ps.repo, ps.url = repo, srv.URL("infra.git")
	ps.daemon = startServeEnv(t, env, ps.url, environ, "--http-addr", ps.http, "--https-addr", ps.https)
}

// push commits files and asks serve to sync now.
func (ps *proxyServe) push(t *testing.T, msg string, files map[string]string) {
	t.Helper()
	for f, c := range files {
		ps.repo.WriteFile(f, c)
	}
	ps.repo.Commit(msg)
	ps.repo.Push()
	if code, body := ps.call(http.MethodPost, "/api/v1/sync"); code/100 != 2 {
		t.Fatalf("sync: %d %s", code, body)
	}
}

var proxyClient = &http.Client{
	Timeout:       5 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
}

// request sends method path to the proxy at addr with the Host header host.
func request(t testing.TB, addr, method, host, path string, body io.Reader, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := proxyClient.Do(req)
	if err != nil {
		t.Fatalf("%s http://%s%s: %v", method, host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// answers polls until GET host/ through the proxy answers 200 want.
func (ps *proxyServe) waitAnswer(t *testing.T, host, path, want string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, func() (bool, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+ps.http+path, nil)
		req.Host = host
		resp, err := proxyClient.Do(req)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && string(b) == want, fmt.Sprintf("%s%s: %d %q, want 200 %q", host, path, resp.StatusCode, b, want)
	})
}

// load sends GET / to host through the proxy without pause on several
// keep-alive connections, counting answers by body and every failure.
type load struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	total    atomic.Int64
	mu       sync.Mutex
	bodies   map[string]int
	failures []string
	last     string
	started  time.Time
	elapsed  time.Duration
}

func startLoad(addr, host string, conns int) *load {
	l := &load{stop: make(chan struct{}), bodies: map[string]int{}, started: time.Now()}
	for range conns {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1}}
			for {
				select {
				case <-l.stop:
					return
				case <-time.After(15 * time.Millisecond): // ~250 req/s on 4 connections: enough, and light on a shared machine
				}
				l.one(c, addr, host)
			}
		}()
	}
	return l
}

func (l *load) one(c *http.Client, addr, host string) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Host = host
	resp, err := c.Do(req)
	l.total.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failures = append(l.failures, err.Error())
		return
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		l.failures = append(l.failures, fmt.Sprintf("%d %q %v", resp.StatusCode, b, err))
		return
	}
	l.bodies[string(b)]++
	l.last = string(b)
}

// finish stops the load and reports what it saw.
func (l *load) finish() (total int64, bodies map[string]int, failures []string, rate float64) {
	close(l.stop)
	l.wg.Wait()
	l.elapsed = time.Since(l.started)
	return l.total.Load(), l.bodies, l.failures, float64(l.total.Load()) / l.elapsed.Seconds()
}

// wsEchoThrough opens a WebSocket to host/ws through the proxy, sends msg
// and returns the echo.
func wsEchoThrough(t *testing.T, addr, host, msg string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	keyb := make([]byte, 16)
	rand.Read(keyb)
	key := base64.StdEncoding.EncodeToString(keyb)
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", host, key)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("websocket handshake: %v", err)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("websocket handshake: %s %v", resp.Status, resp.Header)
	}
	// One masked text frame (payload < 126 bytes).
	mask := [4]byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | byte(len(msg))}
	frame = append(frame, mask[:]...)
	for i := range len(msg) {
		frame = append(frame, msg[i]^mask[i%4])
	}
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("websocket read: %v", err)
	}
	n := int(h[1] & 0x7f)
	if n == 126 {
		var b [2]byte
		io.ReadFull(br, b[:])
		n = int(binary.BigEndian.Uint16(b[:]))
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatalf("websocket read: %v", err)
	}
	if h[0]&0x0f != 0x1 {
		t.Fatalf("websocket: opcode %d, want text", h[0]&0x0f)
	}
	return string(payload)
}

// routed is service name of image behind the proxy at domain; a removed
// container is drained for 10 s.
func routed(name, image string, replicas int, domain string) svc {
	s := webApp(image, replicas)
	s.Name, s.Domain, s.Deploy.DrainSecs = name, domain, 10
	return s
}
