package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

// TestOwnCertificate: a service's tls_cert/tls_key are served over HTTPS,
// and plain HTTP to that host redirects with 308 to the real HTTPS port.
func TestOwnCertificate(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t, "own.test")
	os.WriteFile(filepath.Join(dir, "own.crt"), certPEM, 0o644)
	os.WriteFile(filepath.Join(dir, "own.key"), keyPEM, 0o600)
	b := backend(t, "web")
	host, port, _ := net.SplitHostPort(b.Listener.Addr().String())
	p := New(Options{HTTPAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", DataDir: t.TempDir(), IPs: fakeIPs{"c1": host}})
	defer p.Shutdown(context.Background())
	d := &config.Desired{Root: dir,
		Cluster: config.Cluster{Proxy: config.Proxy{Enabled: true}, ACME: config.ACME{TLS: config.TLSOff}},
		Projects: []*config.Project{{Name: "p", Services: []*config.Service{{Project: "p", Name: "web",
			Domains: []string{"own.test"}, Routes: []string{"/"}, Port: atoi(port), TLSCert: "own.crt", TLSKey: "own.key"}}}}}
	if err := p.Sync(context.Background(), d, []diff.Container{{ID: "c1", Project: "p", Service: "web", State: "running"}}, ""); err != nil {
		t.Fatal(err)
	}
	httpAddr, httpsAddr := p.Addrs()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	c := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "own.test"},
		DialContext: func(ctx context.Context, n, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, n, httpsAddr)
		}}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get("https://own.test/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "web /x") || !strings.Contains(string(body), "proto=https") {
		t.Errorf("HTTPS answer %q", body)
	}
	// HTTP/2 from the client, HTTP/1.1 to the upstream.
	h2 := c.Transport.(*http.Transport).Clone()
	h2.ForceAttemptHTTP2 = true
	resp, err = (&http.Client{Transport: h2}).Get("https://own.test/h2")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || !strings.Contains(string(body), "web /h2") {
		t.Errorf("HTTP/2: %s %q", resp.Proto, body)
	}
	req, _ := http.NewRequest("GET", "http://"+httpAddr+"/x?y=1", nil)
	req.Host = "own.test"
	resp, err = (&http.Client{CheckRedirect: c.CheckRedirect}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, hp, _ := net.SplitHostPort(httpsAddr)
	if want := "https://own.test:" + hp + "/x?y=1"; resp.StatusCode != 308 || resp.Header.Get("Location") != want {
		t.Errorf("plain HTTP: %d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}

func selfSigned(t *testing.T, host string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// TestRemovedDomainIsUnmanaged: a domain no longer routed loses its managed
// certificate: certmagic stops renewing it and its plain HTTP is no longer
// redirected to an HTTPS that has nothing to serve it.
func TestRemovedDomainIsUnmanaged(t *testing.T) {
	m := newTLSManager(Options{DataDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	defer m.stop()
	internal := config.ACME{TLS: config.TLSInternal}
	m.update(context.Background(), tlsUpdate{acme: internal, managed: []string{"gone.test", "kept.test"}})
	deadline := time.Now().Add(30 * time.Second)
	for !(m.hasCertificate("gone.test") && m.hasCertificate("kept.test")) {
		if time.Now().After(deadline) {
			t.Fatal("the internal CA issued no certificates")
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.update(context.Background(), tlsUpdate{acme: internal, managed: []string{"kept.test"}})
	if m.hasCertificate("gone.test") {
		t.Error("a domain gone from the table still has a managed certificate")
	}
	if !m.hasCertificate("kept.test") {
		t.Error("the domain still routed lost its certificate")
	}
}
