package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Upstream timeouts. Client-side reads have no overall deadline (a slow
// upload must finish), and neither does a response body (long polls, SSE,
// WebSocket); a stuck upstream is bounded by upstreamHeaderTimeout and the
// transport's keep-alive probes.
const (
	dialTimeout           = 5 * time.Second
	upstreamHeaderTimeout = 2 * time.Minute
	upstreamIdleTimeout   = 90 * time.Second
	retryAfterSecs        = "5"
	// maxResponseHeaderBytes caps an upstream's response header block (1xx
	// interim responses included), as http.Transport's MaxResponseHeaderBytes
	// does: beyond it the client gets 502 and the rest is never read, so a
	// compromised container cannot make the proxy (and the reconciler and API
	// in its process) buffer a header of any size.
	maxResponseHeaderBytes = 1 << 20
)

// newTransport is the upstream transport, tuned for many requests to few
// hosts: enough idle keep-alive connections per target that a busy service
// never reconnects per request (net/http's default of 2 per host is what
// makes a bare httputil.ReverseProxy slow), and no HTTP/2 or compression
// negotiation the containers do not need.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:           4096,
		MaxIdleConnsPerHost:    512,
		IdleConnTimeout:        upstreamIdleTimeout,
		ResponseHeaderTimeout:  upstreamHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true,
		ForceAttemptHTTP2:      false,
		WriteBufferSize:        16 << 10,
		ReadBufferSize:         16 << 10,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
}

// bufferPool recycles the copy buffers of response bodies (32 KiB each,
// otherwise allocated per request).
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (bp *bufferPool) Get() []byte  { return *(bp.p.Get().(*[]byte)) }
func (bp *bufferPool) Put(b []byte) { bp.p.Put(&b) }

// newReverseProxy forwards a request whose URL already names its target
// (see serveRoute), setting the X-Forwarded-* headers by the trust rules.
func (p *Proxy) newReverseProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:   p.rewrite,
		Transport: p.transport,
		// A status below 100 parses but would panic in WriteHeader.
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode < 100 {
				return errBadStatus
			}
			return nil
		},
		BufferPool:   p.bufs,
		ErrorHandler: p.upstreamError,
		ErrorLog:     nil,
	}
}

// rewrite sets the forwarding headers. Client-sent X-Forwarded-* are kept
// only from a trusted peer; ReverseProxy has already removed them from Out.
// Out keeps In's Host: the upstream sees the name the client asked for.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	xff, proto, host, trusted := p.forwarded(pr.In)
	pr.Out.Header["X-Forwarded-For"] = []string{xff}
	pr.Out.Header["X-Forwarded-Proto"] = []string{proto}
	pr.Out.Header["X-Forwarded-Host"] = []string{host}
	if !trusted {
		for _, k := range spoofable {
			delete(pr.Out.Header, k)
		}
	}
}

// spoofable are client headers that upstreams read as the client's address,
// port or the prefix they are mounted at. The proxy does not set them; like
// X-Forwarded-For they pass only from a peer in trusted_proxies.
var spoofable = [...]string{"X-Real-Ip", "X-Forwarded-Port", "X-Forwarded-Prefix"}

func isSpoofable(k string) bool {
	return k == spoofable[0] || k == spoofable[1] || k == spoofable[2]
}

// forwarded returns the X-Forwarded-For/-Proto/-Host values for in: the
// peer appended to (trusted) or replacing (untrusted) the client's values;
// trusted reports whether the peer is in trusted_proxies.
func (p *Proxy) forwarded(in *http.Request) (xff, proto, host string, trusted bool) {
	peer := peerIP(in.RemoteAddr)
	trusted = p.settings.Load().trusts(peer)
	xff = peer
	if prior := in.Header["X-Forwarded-For"]; trusted && len(prior) > 0 {
		xff = strings.Join(prior, ", ") + ", " + peer
	}
	proto = "http"
	if in.TLS != nil {
		proto = "https"
	}
	if v := in.Header["X-Forwarded-Proto"]; trusted && len(v) > 0 {
		proto = v[0]
	}
	host = in.Host
	if v := in.Header["X-Forwarded-Host"]; trusted && len(v) > 0 {
		host = v[0]
	}
	return xff, proto, host, trusted
}

func peerIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}

func (s *settings) trusts(ip string) bool {
	if len(s.trusted) == 0 {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// upstreamError answers a request the upstream did not. A failure to
// connect, when the request may be retried, is handed back to proxyOnce
// unanswered.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if sw, ok := w.(*statusWriter); ok && sw.mayRetry && isDialError(err) && r.Context().Err() == nil {
		sw.dialErr = err
		return
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads an answer. 499 as nginx counts it.
		w.WriteHeader(499)
	case isTimeout(err):
		http.Error(w, "upstream timed out", http.StatusGatewayTimeout)
	default:
		p.log.Debug("upstream error", "host", r.Host, "path", r.URL.Path, "upstream", r.URL.Host, "error", err)
		http.Error(w, "upstream unavailable", http.StatusBadGateway)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// statusWriter records the status code of a response. Unwrap lets
// http.ResponseController (which ReverseProxy uses to flush and to hijack
// for WebSocket) reach the server's writer. With mayRetry, upstreamError
// leaves a failure to connect in dialErr instead of answering.
type statusWriter struct {
	http.ResponseWriter
	code     int
	mayRetry bool
	dialErr  error
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serveRoute forwards r, whose path cp is, to a target of the route's
// service: the cleaned path (less the route's prefix with strip_prefix).
func (p *Proxy) serveRoute(w http.ResponseWriter, r *http.Request, rt route, cp cleanPath, st *settings) {
	svc := rt.svc
	if st.maxBody > 0 {
		if r.ContentLength > st.maxBody {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			svc.metrics.role("none").observe(http.StatusRequestEntityTooLarge, 0)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, st.maxBody)
		}
	}
	if svc.StripPrefix && rt.prefix != "/" {
		cp = cp.strip(rt.prefix)
	}
	// Both set: ReverseProxy's transport writes RawPath, which is a valid
	// encoding of Path (escapeSegment).
	r.URL.Path, r.URL.RawPath = cp.decoded(), cp.escaped()
	start := time.Now()
	svc.metrics.inflight.Inc()
	defer svc.metrics.inflight.Dec()
	if fastPath(r) {
		p.serveFast(w, r, svc, start)
		return
	}
	p.serveProxied(w, r, svc, start)
}

// serveProxied forwards r through httputil.ReverseProxy. A retryable
// request whose target could not be connected to goes to another target
// once (docs/guides/proxy-and-tls.md, retries).
func (p *Proxy) serveProxied(w http.ResponseWriter, r *http.Request, svc *Service, start time.Time) {
	prefer := p.sticky.preferredRole(svc, r)
	mayRetry := retryable(r)
	var last *Target
	var lastPin bool
	for attempt := 0; attempt < 2; attempt++ {
		t, split := svc.lb.pickOther(prefer, last)
		if t == nil {
			break
		}
		if last != nil {
			svc.metrics.retries.Inc()
		}
		p.sticky.stick(w, svc, prefer, t, split)
		pin := pinned(prefer, split)
		err := p.proxyOnce(w, r, t, pin, mayRetry && attempt == 0, start)
		if err == nil {
			return
		}
		last, lastPin = t, pin
		p.log.Debug("target refused; trying another", "service", svc.key(), "target", t.Addr, "error", err)
	}
	if last == nil {
		noTarget(w, svc)
		return
	}
	http.Error(w, "upstream unavailable", http.StatusBadGateway)
	last.metrics.record(http.StatusBadGateway, time.Since(start), lastPin)
}

// proxyOnce forwards r to t and counts the answer. With mayRetry, a failure
// to connect to t is returned instead, with nothing written to w and
// nothing counted: the caller may send r elsewhere.
func (p *Proxy) proxyOnce(w http.ResponseWriter, r *http.Request, t *Target, pin, mayRetry bool, start time.Time) error {
	defer release(t)
	defer func() {
		// ReverseProxy panics with http.ErrAbortHandler when the body copy
		// fails after the header went out: count it, then let net/http
		// reset the client's connection.
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				t.metrics.record(abortCode(r), time.Since(start), pin)
			}
			panic(v)
		}
	}()
	// The request is ours (we are the last handler): pointing its URL at the
	// target saves ReverseProxy a second URL copy.
	r.URL.Scheme, r.URL.Host = "http", t.Addr
	sw := &statusWriter{ResponseWriter: w, mayRetry: mayRetry}
	p.rp.ServeHTTP(sw, r)
	if sw.dialErr != nil {
		return sw.dialErr
	}
	code := sw.code
	if code == 0 {
		code = http.StatusOK
	}
	t.metrics.record(code, time.Since(start), pin)
	return nil
}

// retryable reports whether r may go to a second target when the
// connection to the first could not be made: an idempotent method (RFC 9110
// 9.2.2) without a body. A body is streamed from the client as it is read,
// so it could not be sent again without buffering it whole; such requests
// are not retried.
func retryable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
	default:
		return false
	}
	return r.ContentLength == 0 && (r.Body == nil || r.Body == http.NoBody)
}

func noTarget(w http.ResponseWriter, svc *Service) {
	w.Header().Set("Retry-After", retryAfterSecs)
	http.Error(w, "no ready container for this service", http.StatusServiceUnavailable)
	svc.metrics.role("none").observe(http.StatusServiceUnavailable, 0)
}

// abortCode is how the figures count a response cut short after its
// header: the client's leaving (499), else the upstream's failure (502).
func abortCode(r *http.Request) int {
	if r.Context().Err() != nil {
		return 499
	}
	return http.StatusBadGateway
}

// abortResponse resets the client's connection, as ReverseProxy does when a
// body copy fails: a chunked response then lacks its last chunk and a sized
// one stays short, so the client sees the failure instead of a complete
// answer. Outside an http.Server (a test's recorder) there is nothing to
// reset.
func abortResponse(r *http.Request) {
	if r.Context().Value(http.ServerContextKey) != nil {
		panic(http.ErrAbortHandler)
	}
}

// serveFast forwards a body-less idempotent request on the fast path. A
// target that cannot be connected to (it just died) is skipped for another,
// once.
func (p *Proxy) serveFast(w http.ResponseWriter, r *http.Request, svc *Service, start time.Time) {
	uri := r.URL.RawPath
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		uri += "?" + r.URL.RawQuery
	}
	var last *Target
	var lastPin bool
	prefer := p.sticky.preferredRole(svc, r)
	for attempt := 0; attempt < 2; attempt++ {
		t, split := svc.lb.pickOther(prefer, last)
		if t == nil {
			break
		}
		if last != nil {
			svc.metrics.retries.Inc()
		}
		p.sticky.stick(w, svc, prefer, t, split)
		code, err := p.forwardFast(w, r, t.Addr, uri)
		release(t)
		pin := pinned(prefer, split)
		switch {
		case err == nil:
			t.metrics.record(code, time.Since(start), pin)
			return
		case errors.Is(err, errBodyCut):
			t.metrics.record(abortCode(r), time.Since(start), pin)
			abortResponse(r)
			return
		case !isDialError(err) || r.Context().Err() != nil || attempt > 0:
			t.metrics.record(p.errorCode(w, r, err), time.Since(start), pin)
			return
		}
		last, lastPin = t, pin
		p.log.Debug("target refused; trying another", "service", svc.key(), "target", t.Addr, "error", err)
	}
	if last == nil {
		noTarget(w, svc)
		return
	}
	http.Error(w, "upstream unavailable", http.StatusBadGateway)
	last.metrics.record(http.StatusBadGateway, time.Since(start), lastPin)
}

func isDialError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// errorCode answers a failed fast-path request and returns the code sent.
func (p *Proxy) errorCode(w http.ResponseWriter, r *http.Request, err error) int {
	switch {
	case r.Context().Err() != nil:
		w.WriteHeader(499)
		return 499
	case isTimeout(err):
		http.Error(w, "upstream timed out", http.StatusGatewayTimeout)
		return http.StatusGatewayTimeout
	default:
		p.log.Debug("upstream error", "host", r.Host, "path", r.URL.Path, "error", err)
		http.Error(w, "upstream unavailable", http.StatusBadGateway)
		return http.StatusBadGateway
	}
}
