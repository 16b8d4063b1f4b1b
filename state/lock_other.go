//go:build !unix

package state

import "errors"

// LockFile is the name of the data dir's lock, <data-dir>/lock.
const LockFile = "lock"

// DirLock is the data dir's lock; see lock.go. Without flock(2) there is
// none, and the commands that need it refuse to run rather than run unguarded.
type DirLock struct{}

// InUseError is returned by LockDataDir when another process holds the lock.
type InUseError struct {
	Dir     string
	PID     int
	Command string
}

func (e *InUseError) Error() string { return "data dir " + e.Dir + " is in use" }

// LockDataDir fails: this system has no flock(2).
func LockDataDir(dir, command string) (*DirLock, error) {
	return nil, errors.New("lock data dir: not supported on this system (orca-sync runs on Linux Docker hosts)")
}

// Unlock does nothing.
func (l *DirLock) Unlock() error { return nil }
