// Package proxy is orca-sync's built-in reverse proxy: HTTP and HTTPS
// servers that route by host and path prefix to the ready containers of a
// service, with certificates from certmagic (ACME, a local CA, or the
// service's own files).
//
// The shape follows kamal-proxy: a route table (host → longest prefix) points
// at a Service, whose LoadBalancer holds its Targets. The table is swapped
// atomically; apply drives targets in and out (RouteIn, RouteOut, with drain),
// and Sync rebuilds everything from the live containers after each sync.
package proxy

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ContainerIPs finds where a container is reached. Reading that is the
// container runtime's business; cmd/orca-sync adapts the runtime to it, so the
// proxy needs nothing of Docker.
type ContainerIPs interface {
	// ContainerIP is id's IPv4 address on network, "" when it has none.
	ContainerIP(ctx context.Context, id, network string) (string, error)
}

// Options configure a Proxy.
type Options struct {
	// HTTPAddr and HTTPSAddr, when set, override [proxy] http_port and
	// https_port (e.g. "127.0.0.1:8080").
	HTTPAddr, HTTPSAddr string
	// DataDir holds certs/ (certificates, ACME account, the internal CA).
	DataDir string
	// IPs reads the address of a live container Sync has not routed yet.
	IPs      ContainerIPs
	Registry prometheus.Registerer
	// ACMERoots, when set, are the roots trusted for the ACME directory's
	// own TLS (a private CA such as Pebble); nil uses the system's.
	ACMERoots *x509.CertPool
	Log       *slog.Logger
	// StickyKey signs the sticky canary cookie (HMAC-SHA256; 32 random
	// bytes kept in state.db, so cookies survive a restart). Empty: a
	// random key for this process.
	StickyKey []byte
	// DropCookie names a cookie never forwarded to a target: the
	// dashboard's session, which a browser sends to every port of a host,
	// so an app on the dashboard's host name would otherwise receive it
	// (docs/guides/dashboard.md). Empty: none.
	DropCookie string
}

// settings are the cluster-wide knobs, swapped whole on each Sync.
type settings struct {
	trusted []netip.Prefix
	maxBody int64
	// httpsPort is the port in redirect locations (443 is left out).
	httpsPort int
}

// Proxy routes requests to targets. Its methods are safe for concurrent use.
type Proxy struct {
	opts     Options
	log      *slog.Logger
	table    atomic.Pointer[table]
	settings atomic.Pointer[settings]
	metrics  *metrics

	transport *http.Transport
	rp        *httputil.ReverseProxy
	pool      *upstreamPool
	bufs      *bufferPool
	tls       *tlsManager
	sticky    *stickySigner

	mu       sync.Mutex // guards services, leaving, servers; writers of the table
	services map[string]*Service
	// leaving are services gone from git whose containers still run: out
	// of the table, but RouteOut still finds their targets to drain them.
	leaving  map[string]*Service
	weights  map[string]int // canary percent by service key
	httpSrv  *server
	httpsSrv *server
}

// New returns a proxy with an empty table; Sync starts its servers.
func New(opts Options) *Proxy {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{opts: opts, log: opts.Log, metrics: newMetrics(opts.Registry),
		transport: newTransport(), pool: newUpstreamPool(), bufs: newBufferPool(), sticky: newStickySigner(opts.StickyKey),
		services: map[string]*Service{}, leaving: map[string]*Service{}, weights: map[string]int{}}
	p.table.Store(buildTable(nil))
	p.settings.Store(&settings{httpsPort: 443})
	p.rp = p.newReverseProxy()
	p.tls = newTLSManager(opts, p.log)
	return p
}

// ServeHTTP routes one request (the HTTPS server's handler, and the HTTP
// server's once redirects and ACME challenges are dealt with). The path is
// cleaned first (path.go): the cleaned path is routed and forwarded.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, ok := requestPath(r)
	if !ok {
		http.Error(w, "no route for this path", http.StatusNotFound)
		return
	}
	cp, err := parsePath(raw)
	if err != nil {
		http.Error(w, "ambiguous request path: an encoded /, \\ or NUL, or .. above the root", http.StatusBadRequest)
		return
	}
	rs := p.table.Load().lookup(hostOnly(r.Host))
	if rs == nil {
		http.Error(w, "no service is routed for this host", http.StatusNotFound)
		return
	}
	rt, ok := match(rs, cp.decoded())
	if !ok {
		http.Error(w, "no route for this path", http.StatusNotFound)
		return
	}
	if p.opts.DropCookie != "" {
		dropCookie(r.Header, p.opts.DropCookie)
	}
	p.serveRoute(w, r, rt, cp, p.settings.Load())
}

// dropCookie removes the cookie name from h's Cookie headers, leaving the
// others as they were; a header left empty goes.
func dropCookie(h http.Header, name string) {
	vs := h["Cookie"]
	if len(vs) == 0 {
		return
	}
	out := vs[:0:0]
	changed := false
	for _, v := range vs {
		if !strings.Contains(v, name+"=") {
			out = append(out, v)
			continue
		}
		changed = true
		var keep []string
		for part := range strings.SplitSeq(v, ";") {
			if k, _, _ := strings.Cut(strings.TrimSpace(part), "="); k != name {
				keep = append(keep, strings.TrimSpace(part))
			}
		}
		if len(keep) > 0 {
			out = append(out, strings.Join(keep, "; "))
		}
	}
	switch {
	case !changed:
	case len(out) == 0:
		delete(h, "Cookie")
	default:
		h["Cookie"] = out
	}
}

// serveHTTP is the plain-HTTP handler: ACME HTTP-01 challenges, then a 308
// to HTTPS for hosts that have a certificate, else the proxy.
func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") && p.tls.handleChallenge(w, r) {
		return
	}
	host := hostOnly(r.Host)
	if p.tls.hasCertificate(host) {
		loc := "https://" + host
		if port := p.settings.Load().httpsPort; port != 443 {
			loc += ":" + strconv.Itoa(port)
		}
		http.Redirect(w, r, loc+r.URL.RequestURI(), http.StatusPermanentRedirect)
		return
	}
	p.ServeHTTP(w, r)
}

// Stats returns the in-memory figures of a service, per role ("stable",
// "canary"; "none" counts answers given without a target: 413, 503).
func (p *Proxy) Stats(project, service string) map[string]RoleStats {
	p.mu.Lock()
	s := p.services[project+"/"+service]
	p.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.metrics.stats()
}

// Addrs returns the addresses the servers listen on ("" when not listening).
func (p *Proxy) Addrs() (httpAddr, httpsAddr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.httpSrv.addr(), p.httpsSrv.addr()
}

// Shutdown stops the servers, letting requests in flight finish until ctx ends.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	srvs := []*server{p.httpSrv, p.httpsSrv}
	p.mu.Unlock()
	var errs []error
	for _, s := range srvs {
		if s != nil {
			errs = append(errs, s.srv.Shutdown(ctx))
		}
	}
	p.tls.stop()
	p.transport.CloseIdleConnections()
	return errors.Join(errs...)
}

// server is one listening http.Server.
type server struct {
	srv *http.Server
	ln  net.Listener
}

func (s *server) addr() string {
	if s == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// listen starts the servers not yet running. HTTPS runs only when some
// domain can have a certificate.
func (p *Proxy) listen(httpPort, httpsPort int, wantTLS bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	if p.httpSrv == nil {
		s, err := p.startServer(orPort(p.opts.HTTPAddr, httpPort), http.HandlerFunc(p.serveHTTP), false)
		if err != nil {
			errs = append(errs, err)
		}
		p.httpSrv = s
	}
	if p.httpsSrv == nil && wantTLS {
		s, err := p.startServer(orPort(p.opts.HTTPSAddr, httpsPort), p, true)
		if err != nil {
			errs = append(errs, err)
		}
		p.httpsSrv = s
	}
	return errors.Join(errs...)
}

func orPort(addr string, port int) string {
	if addr != "" {
		return addr
	}
	return ":" + strconv.Itoa(port)
}

func (p *Proxy) startServer(addr string, h http.Handler, useTLS bool) (*server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("proxy listen %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler: h,
		// No ReadTimeout or WriteTimeout: a slow upload, a long poll and a
		// WebSocket must survive. Headers must come quickly, and idle
		// keep-alive connections are closed.
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	if useTLS {
		srv.TLSConfig = p.tls.tlsConfig()
		ln = tlsListener(ln, srv.TLSConfig)
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("proxy server stopped", "addr", addr, "error", err)
		}
	}()
	p.log.Info("proxy listening", "addr", ln.Addr().String(), "tls", useTLS)
	return &server{srv: srv, ln: ln}, nil
}
