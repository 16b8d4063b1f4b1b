package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/caddyserver/certmagic"
)

// Internal CA files under <data-dir>/certs. The root is what a developer
// adds to a browser or passes to curl --cacert.
const (
	internalRootFile = "internal-ca.pem"
	internalKeyFile  = "internal-ca-key.pem"
	internalLeafLife = 7 * 24 * time.Hour
)

// internalCA is tls = "internal": a local root that orca-sync creates once
// and keeps, issuing short-lived leaf certificates through certmagic (which
// stores and renews them like ACME ones).
type internalCA struct {
	root *x509.Certificate
	key  *ecdsa.PrivateKey
}

var _ certmagic.Issuer = (*internalCA)(nil)

func (*internalCA) IssuerKey() string { return "orca-sync-internal" }

func (ca *internalCA) Issue(_ context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("internal CA: CSR signature: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: firstOf(csr.DNSNames)},
		DNSNames:     csr.DNSNames,
		IPAddresses:  csr.IPAddresses,
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(internalLeafLife),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.root, csr.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("internal CA: sign: %w", err)
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.root.Raw})...)
	return &certmagic.IssuedCertificate{Certificate: chain}, nil
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// loadOrCreateCA reads the internal CA from dir, creating it the first time.
func loadOrCreateCA(dir string) (*internalCA, error) {
	rootPath, keyPath := filepath.Join(dir, internalRootFile), filepath.Join(dir, internalKeyFile)
	rootPEM, rerr := os.ReadFile(rootPath)
	keyPEM, kerr := os.ReadFile(keyPath)
	if errors.Is(rerr, os.ErrNotExist) && errors.Is(kerr, os.ErrNotExist) {
		return createCA(dir, rootPath, keyPath)
	}
	if err := errors.Join(rerr, kerr); err != nil {
		return nil, fmt.Errorf("internal CA: %w", err)
	}
	rb, _ := pem.Decode(rootPEM)
	kb, _ := pem.Decode(keyPEM)
	if rb == nil || kb == nil {
		return nil, fmt.Errorf("internal CA: %s or %s is not PEM", rootPath, keyPath)
	}
	root, err := x509.ParseCertificate(rb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("internal CA: %s: %w", rootPath, err)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("internal CA: %s: %w", keyPath, err)
	}
	return &internalCA{root: root, key: key}, nil
}

func createCA(dir, rootPath, keyPath string) (*internalCA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("internal CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "orca-sync internal CA (" + host + ")", Organization: []string{"orca-sync"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("internal CA: create root: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	// The key first: a root without its key would be unusable next start.
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, fmt.Errorf("internal CA: %w", err)
	}
	if err := os.WriteFile(rootPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, fmt.Errorf("internal CA: %w", err)
	}
	root, _ := x509.ParseCertificate(der)
	return &internalCA{root: root, key: key}, nil
}
