package dockertest

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// EngineLockFile is the file the e2e packages lock for their whole run:
// the Swarm tests turn the shared engine into a swarm, which the plain
// Docker tests must never see, and `go test ./...` runs packages in
// parallel.
const EngineLockFile = "orca-sync-e2e.lock"

// LockEngine takes the engine lock (an flock on EngineLockFile in
// os.TempDir()), waiting for another package's run to end. The returned
// func releases it.
func LockEngine() (func(), error) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), EngineLockFile), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("open the e2e engine lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("take the e2e engine lock: %w", err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
