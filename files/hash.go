// Package files makes the files of the checkout that services mount deploy
// like code (docs/guides/files.md): it hashes a mount source's content (paths,
// modes, bytes) so the hash enters the container spec, keeps an immutable,
// read-only snapshot of each content under <data-dir>/files/<hash> for
// containers to mount instead of the clone, gives a container that asks for
// it a writable copy of its own, removes what no container uses, and checks
// the host paths a checkout mounts against what the host allows.
package files

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// maxCached bounds the hasher's cache; past it the cache starts over (every
// file is read once more), so checkouts that come and go (pull request
// heads) cannot grow it without end.
const maxCached = 200_000

// Hasher computes content hashes. It remembers the digest of every file it
// read by path, size, modification and change time, inode and mode, so a
// sync where nothing changed stats the files of a mount and reads none.
// It is safe for concurrent use.
type Hasher struct {
	mu    sync.Mutex
	cache map[string]cached
	// reads counts files read, for tests and figures.
	reads int
}

type cached struct {
	id     fileID
	digest string
}

// NewHasher returns a hasher with an empty cache.
func NewHasher() *Hasher { return &Hasher{cache: map[string]cached{}} }

// Reads is how many files the hasher has read so far.
func (h *Hasher) Reads() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reads
}

// Hash returns the content hash of the file or directory at p (a symlink at
// p itself is followed; links below a directory are hashed by their target).
func (h *Hasher) Hash(ctx context.Context, p string) (string, error) {
	return walk(ctx, p, func(e entry) (string, error) {
		if e.kind != kindFile {
			return "", nil
		}
		return h.fileDigest(e.path, e.info)
	})
}

// fileDigest is the sha256 of a file's bytes, from the cache when the file
// is unchanged.
func (h *Hasher) fileDigest(p string, info fs.FileInfo) (string, error) {
	id := idOf(info)
	h.mu.Lock()
	c, ok := h.cache[p]
	h.mu.Unlock()
	if ok && c.id == id {
		return c.digest, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	digest := hex.EncodeToString(sum.Sum(nil))
	h.remember(p, info, digest)
	h.mu.Lock()
	h.reads++
	h.mu.Unlock()
	return digest, nil
}

// remember caches digest for the file at p as info describes it.
func (h *Hasher) remember(p string, info fs.FileInfo, digest string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.cache) >= maxCached {
		h.cache = map[string]cached{}
	}
	h.cache[p] = cached{id: idOf(info), digest: digest}
}

// rememberTree caches the digests a copy computed (by path relative to
// root) for the files now at root, so verifying a fresh snapshot reads
// nothing.
func (h *Hasher) rememberTree(root string, digests map[string]string) {
	for rel, d := range digests {
		p := root
		if rel != "" {
			p = filepath.Join(root, filepath.FromSlash(rel))
		}
		if info, err := os.Lstat(p); err == nil && info.Mode().IsRegular() {
			h.remember(p, info, d)
		}
	}
}
