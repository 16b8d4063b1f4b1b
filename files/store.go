package files

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/orca-sync/orca-sync/config"
)

// Dir is the store's directory under the data dir.
const Dir = "files"

// Names under the store's directory: <hash> is a snapshot; rw-<hash>-<id> a
// container's writable copy of one (which keeps the snapshot in use, so an
// undo can copy it again); .tmp-<hash>-<id> a copy in progress (renamed
// to <hash> once complete, so a crash leaves only a .tmp that the next prune
// removes); .stale-<hash>-<id> a snapshot found changed by hand, set aside
// for the containers that still mount it.
const (
	tmpPrefix   = ".tmp-"
	stalePrefix = ".stale-"
	rwPrefix    = "rw-"
)

var hashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Store keeps the snapshots of one data dir. Containers bind-mount them by
// their absolute path, so the data dir must be seen at the same path by
// orca-sync and by Docker. It is safe for concurrent use.
type Store struct {
	root   string
	hasher *Hasher
	log    *slog.Logger

	// copyMu makes one copy at a time: two rollouts that need the same
	// content copy it once.
	copyMu sync.Mutex
	mu     sync.Mutex
	// leases count, per hash or rw- name, the containers being made with
	// it: a prune leaves those alone until they are created.
	leases map[string]int
}

// NewStore opens (creating it) the store of dataDir.
func NewStore(dataDir string, h *Hasher, log *slog.Logger) (*Store, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("files store: %w", err)
	}
	root := filepath.Join(abs, Dir)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("files store: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{root: root, hasher: h, log: log, leases: map[string]int{}}, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// Hasher is the store's hasher.
func (s *Store) Hasher() *Hasher { return s.hasher }

func (s *Store) lease(name string) func() {
	s.mu.Lock()
	s.leases[name]++
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.leases[name]--; s.leases[name] <= 0 {
				delete(s.leases, name)
			}
			s.mu.Unlock()
		})
	}
}

// Snapshot returns the read-only snapshot whose content hash is want,
// copying it from src first when the store lacks it (or holds it changed
// by hand). With want "" the content src has now is snapshotted. The
// snapshot is leased until release is called: call it once the container
// that mounts it exists (or failed to).
func (s *Store) Snapshot(ctx context.Context, src, want string) (path string, release func(), err error) {
	if want != "" && !hashRE.MatchString(want) {
		return "", nil, fmt.Errorf("snapshot of %s: %q is not a content hash", src, want)
	}
	s.copyMu.Lock()
	defer s.copyMu.Unlock()
	if want != "" {
		release = s.lease(want)
		final := filepath.Join(s.root, want)
		ok, err := s.intact(ctx, final, want)
		if err != nil {
			release()
			return "", nil, err
		}
		if ok {
			return final, release, nil
		}
	}
	got, err := s.copyIn(ctx, src, want)
	if err != nil {
		if release != nil {
			release()
		}
		return "", nil, err
	}
	if release == nil {
		release = s.lease(got)
	}
	return filepath.Join(s.root, got), release, nil
}

// intact reports whether the snapshot at final exists with the content its
// name says. One changed by hand is set aside (the containers that mount it
// keep it until they are replaced) so a fresh copy can take its name.
func (s *Store) intact(ctx context.Context, final, want string) (bool, error) {
	if _, err := os.Lstat(final); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	got, err := s.hasher.Hash(ctx, final)
	if err == nil && got == want {
		return true, nil
	}
	aside := filepath.Join(s.root, stalePrefix+want+"-"+randomID())
	if rerr := os.Rename(final, aside); rerr != nil {
		return false, fmt.Errorf("set aside snapshot %s changed by hand: %w", want[:12], rerr)
	}
	s.log.Warn("snapshot changed on the host by hand: set aside, copying it again", "snapshot", final, "aside", aside)
	return false, nil
}

// copyIn copies src to a temporary name, checks its hash, makes it
// read-only and renames it into place. It returns the hash.
func (s *Store) copyIn(ctx context.Context, src, want string) (string, error) {
	tmp := filepath.Join(s.root, tmpPrefix+want+"-"+randomID())
	if want == "" {
		tmp = filepath.Join(s.root, tmpPrefix+"new-"+randomID())
	}
	got, digests, err := copyTree(ctx, src, tmp, false)
	if err == nil && want != "" && got != want {
		err = fmt.Errorf("the content of %s changed since it was planned (hash %s, planned %s)", src, got[:12], want[:12])
	}
	if err != nil {
		removeTree(tmp)
		return "", fmt.Errorf("snapshot %s: %w", src, err)
	}
	final := filepath.Join(s.root, got)
	if _, err := os.Lstat(final); err == nil {
		removeTree(tmp) // with want "", the content may be there already
		return got, nil
	}
	if err := os.Rename(tmp, final); err != nil {
		removeTree(tmp)
		return "", fmt.Errorf("snapshot %s: %w", src, err)
	}
	s.hasher.rememberTree(final, digests)
	s.log.Info("snapshot made", "source", src, "snapshot", final)
	return got, nil
}

// Writable makes a container's own writable copy of a snapshot, leased like
// one.
func (s *Store) Writable(ctx context.Context, snapshot string) (path string, release func(), err error) {
	name := rwPrefix + filepath.Base(snapshot) + "-" + randomID()
	release = s.lease(name)
	dst := filepath.Join(s.root, name)
	if _, _, err := copyTree(ctx, snapshot, dst, true); err != nil {
		removeTree(dst)
		release()
		return "", nil, fmt.Errorf("writable copy of %s: %w", snapshot, err)
	}
	return dst, release, nil
}

// SnapshotHash returns the hash a host path names when it is a snapshot of
// this store (a writable copy is not one).
func (s *Store) SnapshotHash(hostPath string) (string, bool) {
	rel, err := filepath.Rel(s.root, filepath.Clean(hostPath))
	if err != nil || !hashRE.MatchString(rel) {
		return "", false
	}
	return rel, true
}

// Modified reports whether a snapshot's content no longer matches its hash
// (changed, or removed, on the host by hand).
func (s *Store) Modified(ctx context.Context, hostPath string) bool {
	want, ok := s.SnapshotHash(hostPath)
	if !ok {
		return false
	}
	got, err := s.hasher.Hash(ctx, hostPath)
	return err != nil || got != want
}

// Prune removes everything of the store that no container uses (inUse are
// the bind-mount sources of every container, of any role) and that is not
// leased: old snapshots, writable copies of removed containers, copies a
// crash left half-made. It returns what it removed.
func (s *Store) Prune(ctx context.Context, inUse []string) ([]string, error) {
	used := map[string]bool{}
	for _, p := range inUse {
		rel, err := filepath.Rel(s.root, filepath.Clean(p))
		if err != nil || !config.Within(s.root, filepath.Clean(p)) || rel == "." {
			continue
		}
		name := strings.SplitN(filepath.ToSlash(rel), "/", 2)[0]
		used[name] = true
		if h, ok := strings.CutPrefix(name, rwPrefix); ok {
			h, _, _ = strings.Cut(h, "-")
			used[h] = true // the snapshot a writable copy was made from
		}
	}
	des, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("prune snapshots: %w", err)
	}
	var removed []string
	var errs []error
	for _, de := range des {
		if ctx.Err() != nil {
			break
		}
		name := de.Name()
		owner, ok := ownerOf(name)
		if !ok {
			continue
		}
		s.mu.Lock()
		if s.leases[owner] == 0 && !used[owner] && !used[name] {
			if err := removeTree(filepath.Join(s.root, name)); err != nil {
				errs = append(errs, err)
			} else {
				removed = append(removed, name)
			}
		}
		s.mu.Unlock()
	}
	return removed, errors.Join(errs...)
}

// ownerOf is the lease and use name an entry of the store belongs to: a
// .tmp or .stale copy belongs to its hash.
func ownerOf(name string) (string, bool) {
	switch {
	case hashRE.MatchString(name), strings.HasPrefix(name, rwPrefix):
		return name, true
	case strings.HasPrefix(name, tmpPrefix), strings.HasPrefix(name, stalePrefix):
		rest := strings.TrimPrefix(strings.TrimPrefix(name, tmpPrefix), stalePrefix)
		h, _, _ := strings.Cut(rest, "-")
		return h, true
	}
	return "", false
}

// removeTree removes a snapshot, making its directories writable first.
func removeTree(p string) error {
	_ = filepath.WalkDir(p, func(q string, de fs.DirEntry, err error) error {
		if err == nil && de.IsDir() {
			_ = os.Chmod(q, 0o700)
		}
		return nil
	})
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
