package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

// TestProxyACME runs Pebble in-process: serve obtains a certificate for a
// domain through its own HTTP-01 handler on the proxy's HTTP port, serves
// HTTPS that verifies against Pebble's root, and redirects HTTP to HTTPS. A
// domain the CA refuses keeps being served over HTTP, with the reason
// logged, and does not hold up the other.
func TestProxyACME(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("acme")
	const domain = "shop.acme.test"
	ps := newProxyPorts(t)
	const refused = "refused.acme.test"
	dir, root := startPebble(t, ps.http, startDNS(t), refused)

	// The serve process trusts the ACME directory's TLS through
	// SSL_CERT_FILE; the certificate it obtains chains to Pebble's root.
	caFile := filepath.Join(t.TempDir(), "acme-server.pem")
	if err := os.WriteFile(caFile, dir.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	ps.start(t, env, map[string]string{
		"cluster.toml":                    fmt.Sprintf("[acme]\ntls = \"acme\"\nca = %q\nemail = \"ops@acme.test\"\n", dir.url),
		"services/" + p + "/service.toml": services(routed("web", imageV1, 1, domain), routed("other", imageV1, 1, refused)),
	}, "SSL_CERT_FILE="+caFile)

	waitHTTPS(t, ps, domain, root)
	checkRedirect(t, ps, domain)
	// "other" starts beside web: wait for it rather than ask it once.
	waitFor(t, 30*time.Second, func() (bool, string) {
		resp, body := request(t, ps.http, "GET", refused, "/", nil, nil)
		return resp.StatusCode == 200 && body == "v1",
			fmt.Sprintf("a domain without a certificate over HTTP: %d %q, want 200 v1", resp.StatusCode, body)
	})
	waitFor(t, 30*time.Second, func() (bool, string) {
		logs := ps.logs.String()
		return strings.Contains(logs, refused) && strings.Contains(logs, "will retry") && strings.Contains(logs, "rejectedIdentifier"),
			"serve does not log why " + refused + " has no certificate"
	})
	if _, err := os.Stat(filepath.Join(ps.dataDir, "certs", "certificates")); err != nil {
		t.Errorf("no certificates stored under <data-dir>/certs: %v", err)
	}
}

// TestProxyInternalTLS: tls = "internal" serves HTTPS from a local CA whose
// root is written to <data-dir>/certs/internal-ca.pem.
func TestProxyInternalTLS(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("itls")
	const domain = "dev.internal.test"
	ps := startProxyServe(t, env, map[string]string{
		"cluster.toml":                    "[acme]\ntls = \"internal\"\n",
		"services/" + p + "/service.toml": routed("web", imageV1, 1, domain).String(),
	})
	rootFile := filepath.Join(ps.dataDir, "certs", "internal-ca.pem")
	var root *x509.CertPool
	waitFor(t, 60*time.Second, func() (bool, string) {
		b, err := os.ReadFile(rootFile)
		if err != nil {
			return false, err.Error()
		}
		root = x509.NewCertPool()
		return root.AppendCertsFromPEM(b), "root not PEM"
	})
	waitHTTPS(t, ps, domain, root)
	checkRedirect(t, ps, domain)
}

// waitHTTPS polls GET https://domain/ through the proxy, verifying the
// certificate against root, until it answers v1.
func waitHTTPS(t *testing.T, ps *proxyServe, domain string, root *x509.CertPool) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{RootCAs: root, ServerName: domain},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, ps.https)
		},
	}}
	waitFor(t, 90*time.Second, func() (bool, string) {
		resp, err := c.Get("https://" + domain + "/")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && string(b) == "v1" && resp.TLS != nil, fmt.Sprintf("%d %q", resp.StatusCode, b)
	})
}

func checkRedirect(t *testing.T, ps *proxyServe, domain string) {
	t.Helper()
	resp, _ := request(t, ps.http, "GET", domain, "/some/path?q=1", nil, nil)
	_, port, _ := net.SplitHostPort(ps.https)
	want := "https://" + domain + ":" + port + "/some/path?q=1"
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("plain HTTP: %d Location %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}

type acmeDir struct {
	url string
	pem []byte // the directory server's certificate
}

// startPebble runs Pebble's CA, VA and WFE in-process. The VA validates
// HTTP-01 on the proxy's port, resolving names with dnsAddr.
func startPebble(t *testing.T, proxyHTTP, dnsAddr string, blocked ...string) (acmeDir, *x509.CertPool) {
	t.Helper()
	// Validate at once and never reject a nonce (Pebble's defaults sleep and
	// reject 5% to keep clients honest). Only this test reads them.
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	os.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	_, port, _ := net.SplitHostPort(proxyHTTP)
	var httpPort int
	fmt.Sscan(port, &httpPort)
	logger := log.New(io.Discard, "pebble ", 0)
	if testing.Verbose() {
		logger = log.New(os.Stderr, "pebble ", log.Ltime)
	}
	store := db.NewMemoryStore()
	for _, b := range blocked {
		if err := store.AddBlockedDomain(b); err != nil {
			t.Fatal(err)
		}
	}
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, httpPort, 0, false, dnsAddr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 1, 1)
	ts := httptest.NewUnstartedServer(front.Handler())
	ts.StartTLS()
	t.Cleanup(ts.Close)
	root := x509.NewCertPool()
	if !root.AppendCertsFromPEM(authority.GetRootCert(0).PEM()) {
		t.Fatal("pebble root is not PEM")
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	return acmeDir{url: ts.URL + wfe.DirectoryPath, pem: pemBytes}, root
}

// startDNS answers every A query with 127.0.0.1 (and AAAA with nothing), so
// Pebble's VA reaches the proxy for any test domain.
func startDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Pebble's VA asks over TCP; UDP on the same port for good measure.
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
					A: net.ParseIP("127.0.0.1")})
			}
		}
		w.WriteMsg(m)
	})
	for _, srv := range []*dns.Server{{Listener: ln, Handler: h}, {PacketConn: pc, Handler: h}} {
		go srv.ActivateAndServe()
		t.Cleanup(func() { srv.Shutdown() })
	}
	return ln.Addr().String()
}
