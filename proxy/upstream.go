package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// The fast path forwards body-less idempotent requests (GET, HEAD, OPTIONS —
// most traffic) over a small HTTP/1.1 client of its own: the request is
// written and the response read on the handler's goroutine, where
// net/http's Transport hands every request to two more goroutines per
// connection and clones the request and its headers. Profiles of
// httputil.ReverseProxy put that hand-off and cloning at the top once
// syscalls are set aside. Requests with a body, upgrades (WebSocket) and
// everything else take httputil.ReverseProxy, whose transport knows when a
// request may be retried on a fresh connection. A body-less idempotent
// request always may, so a keep-alive connection the upstream closed while
// idle costs a redial, never an error.

// upConn is one keep-alive connection to a target.
type upConn struct {
	c    net.Conn
	lim  *capReader // under br: caps the response header
	br   *bufio.Reader
	bw   *bufio.Writer
	body io.LimitedReader // a sized body parsed by parseSimpleHead
	used time.Time        // when it went idle
}

// upstreamPool keeps idle connections per target address.
type upstreamPool struct {
	mu      sync.Mutex
	idle    map[string][]*upConn
	dialer  net.Dialer
	maxIdle int
}

func newUpstreamPool() *upstreamPool {
	return &upstreamPool{idle: map[string][]*upConn{}, maxIdle: 512,
		dialer: net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}}
}

// get returns an idle connection to addr (reused=true) or dials one.
func (p *upstreamPool) get(ctx context.Context, addr string, fresh bool) (*upConn, bool, error) {
	if !fresh {
		p.mu.Lock()
		for cs := p.idle[addr]; len(cs) > 0; cs = p.idle[addr] {
			uc := cs[len(cs)-1]
			p.idle[addr] = cs[:len(cs)-1]
			if time.Since(uc.used) < upstreamIdleTimeout {
				p.mu.Unlock()
				return uc, true, nil
			}
			uc.c.Close()
		}
		p.mu.Unlock()
	}
	c, err := p.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	lim := &capReader{r: c, n: math.MaxInt64}
	return &upConn{c: c, lim: lim, br: bufio.NewReaderSize(lim, 16<<10), bw: bufio.NewWriterSize(c, 4<<10)}, false, nil
}

// errHeaderTooLarge ends a response whose header passed maxResponseHeaderBytes.
var errHeaderTooLarge = fmt.Errorf("upstream response header over %d bytes", maxResponseHeaderBytes)

// capReader passes reads through while n bytes are left, then fails them
// with errHeaderTooLarge; exchange sets n while it reads a header, as
// net/http's transport limits its connection's reads.
type capReader struct {
	r io.Reader
	n int64
}

func (cr *capReader) Read(b []byte) (int, error) {
	if cr.n <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(b)) > cr.n {
		b = b[:cr.n]
	}
	n, err := cr.r.Read(b)
	cr.n -= int64(n)
	return n, err
}

// put gives uc back. get takes the newest connection, so after a burst the
// oldest sit at the bottom of the stack; those idle past
// upstreamIdleTimeout are closed here rather than kept open for ever.
func (p *upstreamPool) put(addr string, uc *upConn) {
	uc.used = time.Now()
	p.mu.Lock()
	cs := p.idle[addr]
	n := 0
	for n < len(cs) && uc.used.Sub(cs[n].used) >= upstreamIdleTimeout {
		n++
	}
	expired := slices.Clone(cs[:n])
	if n > 0 {
		m := copy(cs, cs[n:])
		clear(cs[m:]) // no closed connection stays reachable
		cs = cs[:m]
	}
	keep := len(cs) < p.maxIdle
	if keep {
		cs = append(cs, uc)
	}
	p.idle[addr] = cs
	p.mu.Unlock()
	for _, e := range expired {
		e.c.Close()
	}
	if !keep {
		uc.c.Close()
	}
}

// closeIdle closes the idle connections to addr (a target that left).
func (p *upstreamPool) closeIdle(addr string) {
	p.mu.Lock()
	cs := p.idle[addr]
	delete(p.idle, addr)
	p.mu.Unlock()
	for _, uc := range cs {
		uc.c.Close()
	}
}

// fastPath reports whether r can take the fast path.
func fastPath(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		return false
	}
	return r.Body == http.NoBody && r.ContentLength == 0 && r.Header["Upgrade"] == nil && r.Trailer == nil
}

// hopHeaders are connection-level headers never forwarded (RFC 9110 7.6.1).
func isHop(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded":
		// The forwarding headers are the proxy's to set (as ReverseProxy's
		// Rewrite drops them): a client must not spoof them past us.
		return true
	}
	return false
}

// inConnection reports whether k is named by a Connection header value.
func inConnection(conn []string, k string) bool {
	for _, v := range conn {
		for f := range strings.SplitSeq(v, ",") {
			if http.CanonicalHeaderKey(strings.TrimSpace(f)) == k {
				return true
			}
		}
	}
	return false
}

// errBodyCut marks a response whose body failed after its header was
// written to the client: the client's connection must be reset.
var errBodyCut = errors.New("response body cut short after its header was sent")

// errBeforeResponse marks a failure on a reused connection before any of the
// response arrived: the request may go again on a fresh connection.
var errBeforeResponse = errors.New("connection closed before the response")

// forwardFast sends r to addr and copies the response to w. It returns the
// status code written, or an error: errBodyCut when the header was written
// and the body failed, else nothing was written.
func (p *Proxy) forwardFast(w http.ResponseWriter, r *http.Request, addr, uri string) (int, error) {
	for attempt := 0; ; attempt++ {
		uc, reused, err := p.pool.get(r.Context(), addr, attempt > 0)
		if err != nil {
			return 0, err
		}
		code, err := p.exchange(w, r, uc, addr, uri)
		if err == nil || !(reused && errors.Is(err, errBeforeResponse)) || attempt > 0 {
			return code, err
		}
	}
}

// exchange does one request/response on uc, giving uc back to the pool when
// the response ended cleanly.
func (p *Proxy) exchange(w http.ResponseWriter, r *http.Request, uc *upConn, addr, uri string) (int, error) {
	if err := p.writeRequest(uc.bw, r, uri); err != nil {
		uc.c.Close()
		return 0, errors.Join(errBeforeResponse, err)
	}
	// The client going away, or an upstream that sends no header within
	// upstreamHeaderTimeout, ends the wait. Watching the client costs a
	// context.AfterFunc (allocations and a lock), so it starts only when the
	// upstream is slower than headerPatience or the answer is not buffered
	// whole: most answers never block the goroutine at all.
	start := time.Now()
	uc.c.SetReadDeadline(start.Add(headerPatience))
	uc.lim.n = maxResponseHeaderBytes // the header and any 1xx before it
	var stop func() bool
	_, err := uc.br.Peek(1)
	if err != nil && isTimeout(err) && r.Context().Err() == nil {
		uc.c.SetReadDeadline(start.Add(upstreamHeaderTimeout))
		stop = watch(r, uc) // after the deadline: its past deadline wins
		_, err = uc.br.Peek(1)
	}
	if err != nil {
		if stop != nil {
			stop()
		}
		uc.c.Close()
		return 0, p.headError(r, err)
	}
	if r.Method != http.MethodHead {
		if h, ok := parseSimpleHead(uc.br, w.Header()); ok {
			uc.lim.n = math.MaxInt64
			switch {
			case stop == nil && int64(uc.br.Buffered()) >= h.length:
				stop = noWatch // the body is read from the buffer: nothing blocks
			case stop == nil:
				p.clearDeadline(r, uc)
				stop = watch(r, uc)
			default:
				p.clearDeadline(r, uc)
			}
			return p.simpleBody(w, uc, addr, h, stop)
		}
	}
	if stop == nil {
		uc.c.SetReadDeadline(start.Add(upstreamHeaderTimeout))
		stop = watch(r, uc)
	}
	resp, err := readResponse(uc.br, r)
	uc.lim.n = math.MaxInt64
	if err != nil {
		stop()
		uc.c.Close()
		return 0, p.headError(r, err)
	}
	p.clearDeadline(r, uc)
	code := resp.StatusCode
	copyResponseHeader(w.Header(), resp)
	w.WriteHeader(code)
	ok := p.copyBody(w, resp.Body, resp.ContentLength < 0 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"))
	// Bytes already buffered past the response's framing (a second response,
	// a body sent with a HEAD or 304) would be read as the answer to the
	// next request on this connection: it is not reused.
	reuse := stop() && ok && !resp.Close && uc.br.Buffered() == 0
	if !reuse {
		// Closing first: Body.Close would otherwise read what is left.
		uc.c.Close()
	}
	resp.Body.Close()
	if ok { // the body ended: its trailers are complete
		for k, vv := range resp.Trailer {
			w.Header()[http.TrailerPrefix+k] = vv
		}
	}
	if !ok {
		return code, errBodyCut
	}
	if reuse {
		p.pool.put(addr, uc)
	}
	return code, nil
}

// simpleBody sends the answer whose head parseSimpleHead read: a body of
// h.length bytes.
func (p *Proxy) simpleBody(w http.ResponseWriter, uc *upConn, addr string, h simpleHead, stop func() bool) (int, error) {
	w.WriteHeader(h.code)
	uc.body = io.LimitedReader{R: uc.br, N: h.length}
	ok := p.copyBody(w, &uc.body, h.sse) && uc.body.N == 0 // short: the upstream closed early
	reuse := stop() && ok && uc.br.Buffered() == 0
	if !reuse {
		uc.c.Close()
	}
	if !ok {
		return h.code, errBodyCut
	}
	if reuse {
		p.pool.put(addr, uc)
	}
	return h.code, nil
}

// headerPatience is how long the fast path waits for an upstream's first
// byte before it watches the client as well (see exchange).
const headerPatience = 50 * time.Millisecond

// watch makes the client's leaving end uc's reads at once; the returned
// stop reports whether it had not fired (as context.AfterFunc's does).
func watch(r *http.Request, uc *upConn) func() bool {
	return context.AfterFunc(r.Context(), func() { uc.c.SetReadDeadline(time.Unix(1, 0)) })
}

func noWatch() bool { return true }

// headError classifies a failure to read the response head: one that may
// mean a reused connection was already closed is errBeforeResponse.
func (p *Proxy) headError(r *http.Request, err error) error {
	if isTimeout(err) && r.Context().Err() == nil {
		return err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
		return errors.Join(errBeforeResponse, err)
	}
	return err
}

// clearDeadline lifts the head's read deadline for the body, which may take
// as long as it needs.
func (p *Proxy) clearDeadline(r *http.Request, uc *upConn) {
	uc.c.SetReadDeadline(time.Time{})
	if r.Context().Err() != nil {
		// The client left while the header was read: AfterFunc's past
		// deadline was just cleared, and a silent body (SSE, long poll)
		// would hold the connection and this goroutine until it spoke.
		uc.c.SetReadDeadline(time.Unix(1, 0))
	}
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")
}

// errBadStatus is a status code net/http parses but cannot send on (below
// 100: WriteHeader would panic).
var errBadStatus = errors.New("upstream sent a status code below 100")

// readResponse reads the response, skipping 1xx interim ones.
func readResponse(br *bufio.Reader, r *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, r)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode < 100 {
			return nil, errBadStatus
		}
		if resp.StatusCode >= 200 {
			return resp, nil
		}
	}
}

// writeRequest writes r's request line and headers (it has no body).
func (p *Proxy) writeRequest(bw *bufio.Writer, r *http.Request, uri string) error {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	xff, proto, host, trusted := p.forwarded(r)
	conn := r.Header["Connection"]
	for k, vv := range r.Header {
		if isHop(k) || (conn != nil && inConnection(conn, k)) || (!trusted && isSpoofable(k)) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if te := r.Header["Te"]; len(te) == 1 && te[0] == "trailers" {
		bw.WriteString("Te: trailers\r\n")
	}
	bw.WriteString("X-Forwarded-For: ")
	bw.WriteString(xff)
	bw.WriteString("\r\nX-Forwarded-Proto: ")
	bw.WriteString(proto)
	bw.WriteString("\r\nX-Forwarded-Host: ")
	bw.WriteString(host)
	bw.WriteString("\r\n\r\n")
	return bw.Flush()
}

func copyResponseHeader(dst http.Header, resp *http.Response) {
	conn := resp.Header["Connection"]
	for k, vv := range resp.Header {
		if k == "Connection" || k == "Keep-Alive" || k == "Proxy-Connection" || k == "Transfer-Encoding" ||
			k == "Upgrade" || k == "Trailer" || (conn != nil && inConnection(conn, k)) {
			continue
		}
		if k == "Set-Cookie" && len(dst[k]) > 0 { // beside the proxy's sticky cookie
			dst[k] = append(dst[k], vv...)
			continue
		}
		dst[k] = vv // the response is ours: no copy needed
	}
	if len(resp.Trailer) > 0 {
		keys := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		dst["Trailer"] = []string{strings.Join(keys, ", ")}
	}
}

// copyBody streams the body to the client. A response of unknown length
// (chunked, an SSE stream) is flushed after every read so nothing waits in
// a buffer. It reports whether the body ended cleanly.
func (p *Proxy) copyBody(w http.ResponseWriter, body io.Reader, flush bool) bool {
	buf := p.bufs.Get()
	defer p.bufs.Put(buf)
	fl, _ := w.(http.Flusher)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return false
			}
			if flush && fl != nil {
				fl.Flush()
			}
		}
		if rerr == io.EOF {
			return true
		}
		if rerr != nil {
			return false
		}
	}
}
