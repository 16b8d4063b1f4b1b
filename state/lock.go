//go:build unix

package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the name of the data dir's lock, <data-dir>/lock.
const LockFile = "lock"

// DirLock is the exclusive hold of one data dir by one orca-sync process:
// serve takes it for its lifetime, and every command that changes containers
// (apply) takes it for its run, so two writers never change the same
// containers at once (docs/reference/cli.md). It is an flock(2) on
// <data-dir>/lock, released by the kernel when the process ends, however it
// ends; the file records the holder's pid and command for the message of
// whoever is refused.
type DirLock struct {
	f *os.File
}

// InUseError is returned by LockDataDir when another process holds the lock.
type InUseError struct {
	Dir     string
	PID     int    // 0 when the holder had not recorded itself yet
	Command string // "serve", "apply"; "" when unknown
}

func (e *InUseError) Error() string {
	who := "another orca-sync process"
	if e.Command != "" {
		who = "orca-sync " + e.Command
	}
	if e.PID > 0 {
		who += fmt.Sprintf(" (pid %d)", e.PID)
	}
	return fmt.Sprintf("data dir %s is in use by %s", e.Dir, who)
}

// LockDataDir takes the lock of dir (created 0700 if missing) for command,
// without waiting: a held lock is an *InUseError naming its holder.
func LockDataDir(dir, command string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, holderOf(dir, f)
		}
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	if err := record(f, command); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	return &DirLock{f: f}, nil
}

// record writes "<pid> <command>" into the held lock file.
func record(f *os.File, command string) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(fmt.Sprintf("%d %s\n", os.Getpid(), command)), 0)
	return err
}

// holderOf reads who holds the lock; a holder that has not written itself
// yet gives an error without pid.
func holderOf(dir string, f *os.File) *InUseError {
	e := &InUseError{Dir: dir}
	b := make([]byte, 128)
	n, _ := f.ReadAt(b, 0)
	pid, command, _ := strings.Cut(strings.TrimSpace(string(b[:n])), " ")
	if p, err := strconv.Atoi(pid); err == nil && p > 0 {
		e.PID, e.Command = p, command
	}
	return e
}

// Unlock releases the lock. The file stays: removing it would let a process
// that opened it before the removal and one that creates it anew both hold
// "the" lock.
func (l *DirLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the only descriptor releases the flock
	l.f = nil
	return err
}
