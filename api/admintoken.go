package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// AdminTokenFile is the name of the generated admin token in the data dir.
const AdminTokenFile = "admin.token"

// EnsureAdminToken makes sure <dataDir>/admin.token exists (mode 0600, 32
// random bytes, hex) and returns its value. An existing file is read, never
// replaced.
func EnsureAdminToken(dataDir string) (string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	path := filepath.Join(dataDir, AdminTokenFile)
	token, err := readAdminToken(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return token, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("admin token: random: %w", err)
	}
	token = hex.EncodeToString(raw)
	if err := writeNewFile(path, []byte(token+"\n")); err != nil {
		if errors.Is(err, fs.ErrExist) { // another process won the race
			return readAdminToken(path)
		}
		return "", fmt.Errorf("admin token: %w", err)
	}
	return token, nil
}

// readAdminToken reads the token file, refusing one that group or others
// may access: whoever can read it holds the admin role (docs/reference/api.md).
func readAdminToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("admin token: %s has mode %04o, open to group or others: restrict it with `chmod 600 %s`, or delete it to generate a new one", path, perm, path)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return "", fmt.Errorf("admin token: read %s: %w", path, err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("admin token: %s is empty; delete it to generate a new one", path)
	}
	return token, nil
}

// writeNewFile creates path with mode 0600, failing if it exists, and syncs
// it; a partly written file is removed.
func writeNewFile(path string, data []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}
