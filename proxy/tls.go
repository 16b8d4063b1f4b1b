package proxy

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/certmagic"
	"github.com/orca-sync/orca-sync/config"
	"go.uber.org/zap"
)

// certSpec is a service's own certificate files.
type certSpec struct{ service, cert, key string }

// tlsUpdate is what Sync hands the TLS manager.
type tlsUpdate struct {
	acme     config.ACME
	httpAddr string   // where HTTP-01 challenges arrive
	managed  []string // hosts that get a certificate from the issuer
	own      []certSpec
}

// tlsManager keeps the certificates of the routed domains in a certmagic
// cache: managed ones (ACME or the internal CA, obtained in the background
// with certmagic's retries and backoff, so a failing domain never blocks
// another or the sync) and the services' own files.
type tlsManager struct {
	log   *slog.Logger
	opts  Options
	cache *certmagic.Cache

	// configured is set once a certmagic.Config was made: before, the
	// cache holds no certificate.
	configured atomic.Bool

	mu       sync.Mutex
	magic    *certmagic.Config // nil until the first update with TLS on
	acmeIss  *certmagic.ACMEIssuer
	issuerID string          // mode+CA+email the config was built for
	managing map[string]bool // hosts handed to ManageAsync
	ownHash  map[string]string
	ctx      context.Context
	cancel   context.CancelFunc
}

func newTLSManager(opts Options, log *slog.Logger) *tlsManager {
	m := &tlsManager{log: log, opts: opts, managing: map[string]bool{}, ownHash: map[string]string{}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			return m.magic, nil
		},
		Logger: zapLogger(log),
	})
	return m
}

func (m *tlsManager) stop() {
	m.cancel()
	m.cache.Stop()
}

func (m *tlsManager) certDir() string { return filepath.Join(m.opts.DataDir, "certs") }

// update brings the managed and own certificates in line with the table.
func (m *tlsManager) update(ctx context.Context, u tlsUpdate) {
	magic, fresh, gone := m.plan(ctx, u)
	if len(gone) > 0 {
		// No longer routed: certmagic stops renewing them and plain HTTP to
		// them is no longer redirected. (Called without m.mu, as below.)
		subjects := make([]certmagic.SubjectIssuer, len(gone))
		for i, h := range gone {
			subjects[i] = certmagic.SubjectIssuer{Subject: h}
		}
		m.cache.RemoveManaged(subjects)
	}
	if len(fresh) == 0 {
		return
	}
	// ManageAsync loads what storage has and obtains the rest in the
	// background, retrying with backoff; errors are logged through zap.
	// Called without m.mu: certmagic's maintenance asks for the config.
	if err := magic.ManageAsync(m.ctx, fresh); err != nil {
		m.log.Error("managing certificates", "domains", fresh, "error", err)
		m.mu.Lock()
		for _, h := range fresh {
			delete(m.managing, h)
		}
		m.mu.Unlock()
	}
}

// plan configures certmagic for u and returns the hosts to start managing
// and those managed before that u no longer routes.
func (m *tlsManager) plan(ctx context.Context, u tlsUpdate) (_ *certmagic.Config, fresh, gone []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for h := range m.managing {
		if u.acme.TLS == config.TLSOff || !slices.Contains(u.managed, h) {
			gone = append(gone, h)
			delete(m.managing, h)
		}
	}
	if u.acme.TLS == config.TLSOff && len(u.own) == 0 {
		return nil, nil, gone
	}
	id := u.acme.TLS + "|" + u.acme.CA + "|" + u.acme.Email
	if m.magic == nil || id != m.issuerID {
		if err := m.configure(u); err != nil {
			m.log.Error("TLS is not available; domains are served over HTTP", "error", err)
			return nil, nil, gone
		}
		m.issuerID = id
		m.managing = map[string]bool{}
	}
	m.cacheOwn(ctx, u.own)
	if u.acme.TLS == config.TLSOff {
		return nil, nil, gone
	}
	for _, h := range u.managed {
		if m.managing[h] {
			continue
		}
		m.managing[h] = true // once: a wildcard is warned about once
		if strings.HasPrefix(h, "*.") && u.acme.TLS == config.TLSACME {
			m.log.Warn("no certificate for a wildcard domain: HTTP-01 cannot prove it (use tls_cert/tls_key)", "domain", h)
			continue
		}
		fresh = append(fresh, h)
	}
	slices.Sort(fresh)
	return m.magic, fresh, gone
}

// configure builds the certmagic config for the TLS mode. m.mu is held.
func (m *tlsManager) configure(u tlsUpdate) error {
	magic := certmagic.New(m.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: m.certDir()},
		OCSP:    certmagic.OCSPConfig{DisableStapling: true},
		Logger:  zapLogger(m.log),
	})
	switch u.acme.TLS {
	case config.TLSACME:
		host, port := splitListen(u.httpAddr)
		iss := certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
			CA: u.acme.CA, Email: u.acme.Email, Agreed: true,
			DisableTLSALPNChallenge: true,
			// Our own HTTP server holds this address; certmagic, failing to
			// bind it, leaves the challenge to HandleHTTPChallenge.
			ListenHost: host, AltHTTPPort: port,
			TrustedRoots: m.opts.ACMERoots,
			Logger:       zapLogger(m.log),
		})
		magic.Issuers = []certmagic.Issuer{iss}
		m.acmeIss = iss
	case config.TLSInternal:
		ca, err := loadOrCreateCA(m.certDir())
		if err != nil {
			return err
		}
		magic.Issuers = []certmagic.Issuer{ca}
		m.acmeIss = nil
	}
	m.magic = magic
	m.configured.Store(true)
	return nil
}

// cacheOwn loads services' own certificate files, replacing older copies.
func (m *tlsManager) cacheOwn(ctx context.Context, own []certSpec) {
	seen := map[string]bool{}
	for _, c := range own {
		seen[c.service] = true
		hash, err := m.magic.CacheUnmanagedCertificatePEMFile(ctx, c.cert, c.key, nil)
		if err != nil {
			m.log.Error("cannot load the service's tls_cert/tls_key; its domains are served over HTTP", "service", c.service, "error", err)
			continue
		}
		if old := m.ownHash[c.service]; old != "" && old != hash {
			m.cache.Remove([]string{old})
		}
		m.ownHash[c.service] = hash
	}
	for svc, hash := range m.ownHash {
		if !seen[svc] {
			m.cache.Remove([]string{hash})
			delete(m.ownHash, svc)
		}
	}
}

// hasCertificate reports whether HTTPS can be served for host now; only
// then does plain HTTP redirect.
func (m *tlsManager) hasCertificate(host string) bool {
	// Only a certmagic.Config puts certificates in the cache: until one was
	// made, skip the lookup, whose locks and wildcard names (a Split and a
	// Join per label) every plain-HTTP request would otherwise pay.
	if !m.configured.Load() {
		return false
	}
	return len(m.cache.AllMatchingCertificates(host)) > 0
}

func (m *tlsManager) handleChallenge(w http.ResponseWriter, r *http.Request) bool {
	m.mu.Lock()
	iss := m.acmeIss
	m.mu.Unlock()
	return iss != nil && iss.HandleHTTPChallenge(w, r)
}

func (m *tlsManager) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			m.mu.Lock()
			magic := m.magic
			m.mu.Unlock()
			if magic == nil {
				return nil, errNoTLS
			}
			return magic.GetCertificate(hello)
		},
	}
}

func tlsListener(ln net.Listener, cfg *tls.Config) net.Listener { return tls.NewListener(ln, cfg) }

type tlsError string

func (e tlsError) Error() string { return string(e) }

const errNoTLS = tlsError("TLS is not configured")

func splitListen(addr string) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 80
	}
	n, _ := strconv.Atoi(port)
	if host == "::" || host == "0.0.0.0" {
		host = ""
	}
	return host, n
}

// zapLogger forwards certmagic's zap logs to slog.
func zapLogger(log *slog.Logger) *zap.Logger {
	return zap.New(&slogCore{log: log.With("component", "certmagic")})
}
