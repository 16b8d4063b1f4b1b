//go:build unix

package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestLockDataDirIsExclusive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	held, err := LockDataDir(dir, "serve")
	if err != nil {
		t.Fatal(err)
	}
	// A second open file description conflicts even in the same process, as
	// another process's would.
	_, err = LockDataDir(dir, "apply")
	var inUse *InUseError
	if !errors.As(err, &inUse) {
		t.Fatalf("second lock: %v, want an *InUseError", err)
	}
	want := fmt.Sprintf("data dir %s is in use by orca-sync serve (pid %d)", dir, os.Getpid())
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if err := held.Unlock(); err != nil {
		t.Fatal(err)
	}
	again, err := LockDataDir(dir, "apply")
	if err != nil {
		t.Fatalf("after Unlock: %v", err)
	}
	defer again.Unlock()
	if fi, err := os.Stat(filepath.Join(dir, LockFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file: %v %v, want mode 0600", fi, err)
	}
}
