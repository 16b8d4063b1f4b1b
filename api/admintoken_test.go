package api

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
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

// TestEnsureAdminTokenRefusesOpenFile: a token file that group or others may
// access is refused with the command that fixes it, and is not changed.
func TestEnsureAdminTokenRefusesOpenFile(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620} {
		dir := t.TempDir()
		path := filepath.Join(dir, AdminTokenFile)
		if err := os.WriteFile(path, []byte("chosen-by-hand\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := EnsureAdminToken(dir)
		if err == nil {
			t.Fatalf("mode %04o: accepted", mode)
		}
		if want := "chmod 600 " + path; !strings.Contains(err.Error(), want) {
			t.Errorf("mode %04o: error %q does not say %q", mode, err, want)
		}
		if strings.Contains(err.Error(), "chosen-by-hand") {
			t.Errorf("the error quotes the token: %v", err)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != mode {
			t.Errorf("mode changed to %04o", fi.Mode().Perm())
		}
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := EnsureAdminToken(dir); err != nil || got != "chosen-by-hand" {
			t.Errorf("after chmod 600: %q, %v", got, err)
		}
	}
}
