package backup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/orca-sync/orca-sync/config"
)

// Target is where archives are kept: a directory or an S3 bucket.
type Target interface {
	// Name names the target in reports; it never holds a key.
	Name() string
	// Put writes an archive of size bytes atomically: until it is whole,
	// no object or file of that name exists.
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	// List returns the archives the target holds (names ending in .tar.gz).
	List(ctx context.Context) ([]Object, error)
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	Delete(ctx context.Context, name string) error
}

// Object is an archive a target holds.
type Object struct {
	Name string
	Size int64
}

// NewTarget makes the target of one [[backup.targets]] entry, its secrets
// resolved.
func NewTarget(t config.BackupTarget) (Target, error) {
	switch t.Type {
	case config.BackupLocal:
		return localTarget{dir: t.Path}, nil
	case config.BackupS3:
		return newS3Target(t)
	}
	return nil, fmt.Errorf("backup target type %q", t.Type)
}

// localTarget is a directory of the host.
type localTarget struct{ dir string }

var _ Target = localTarget{}

func (l localTarget) Name() string { return l.dir }

// Put writes to a hidden temporary file (its name does not end in .tar.gz),
// syncs it and renames it into place.
func (l localTarget) Put(_ context.Context, name string, r io.Reader, _ int64) error {
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", l.dir, err)
	}
	l.removeLeftovers(time.Now().Add(-partialMaxAge))
	tmp := filepath.Join(l.dir, "."+name+"."+randomSuffix()+partialExt)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(tmp, filepath.Join(l.dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s into %s: %w", name, l.dir, err)
	}
	return nil
}

// A .partial file is a write in progress, or one a crash cut short; after
// partialMaxAge it can only be the latter (a host sharing the directory may
// be writing a younger one).
const (
	partialExt    = ".partial"
	partialMaxAge = 24 * time.Hour
)

// removeLeftovers removes the .partial files modified before cutoff.
func (l localTarget) removeLeftovers(cutoff time.Time) {
	entries, _ := os.ReadDir(l.dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(e.Name(), partialExt) {
			continue
		}
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(l.dir, e.Name()))
		}
	}
}

func (l localTarget) List(context.Context) ([]Object, error) {
	entries, err := os.ReadDir(l.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", l.dir, err)
	}
	var out []Object
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), archiveExt) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, Object{Name: e.Name(), Size: info.Size()})
	}
	return out, nil
}

func (l localTarget) Get(_ context.Context, name string) (io.ReadCloser, error) {
	f, err := os.Open(filepath.Join(l.dir, filepath.Base(name)))
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	return f, nil
}

func (l localTarget) Delete(_ context.Context, name string) error {
	if err := os.Remove(filepath.Join(l.dir, filepath.Base(name))); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete archive: %w", err)
	}
	return nil
}

func randomSuffix() string {
	b := make([]byte, 6)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// expired lists the archives of objs dated before now minus days.
func expired(objs []Object, days int, now time.Time) []string {
	if days <= 0 {
		return nil
	}
	cutoff := now.Add(-time.Duration(days) * 24 * time.Hour)
	var out []string
	for _, o := range objs {
		if t, ok := archiveTime(o.Name); ok && t.Before(cutoff) {
			out = append(out, o.Name)
		}
	}
	return out
}
