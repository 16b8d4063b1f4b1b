package api

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

func TestEnsureAdminToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, err := EnsureAdminToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := hex.DecodeString(first); err != nil || len(raw) != 32 {
		t.Fatalf("token %q is not 32 bytes of hex", first)
	}
	fi, err := os.Stat(filepath.Join(dir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("mode %o, want 600", perm)
	}
	second, err := EnsureAdminToken(dir)
	if err != nil || second != first {
		t.Fatalf("second call = %q, %v; want %q", second, err, first)
	}
}

func TestEnsureAdminTokenKeepsExisting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, AdminTokenFile)
	if err := os.WriteFile(path, []byte("  chosen-by-hand\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := EnsureAdminToken(dir)
	if err != nil || got != "chosen-by-hand" {
		t.Fatalf("got %q, %v", got, err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureAdminToken(dir); err == nil {
		t.Fatal("empty token file: no error")
	}
}
