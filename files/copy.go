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
	"slices"
)

// copyTree copies the file or directory src to dst (which must not exist),
// hashing what it copies, and returns the content hash and the digest of
// each file by relative path. Unless writable, files and directories end
// read-only (exec bits kept): a snapshot is immutable.
func copyTree(ctx context.Context, src, dst string, writable bool) (string, map[string]string, error) {
	digests := map[string]string{}
	var dirs []string
	h, err := walk(ctx, src, func(e entry) (string, error) {
		to := dst
		if e.rel != "" {
			to = filepath.Join(dst, filepath.FromSlash(e.rel))
		}
		switch e.kind {
		case kindDir:
			dirs = append(dirs, to)
			return "", os.Mkdir(to, 0o700)
		case kindSymlink:
			return "", os.Symlink(e.target, to)
		}
		d, err := copyFile(e.path, to, fileMode(e.exec, writable))
		digests[e.rel] = d
		return d, err
	})
	if err != nil {
		return "", nil, err
	}
	// Directories last, deepest first: a read-only one takes no new entries.
	for _, d := range slices.Backward(dirs) {
		if err := os.Chmod(d, dirMode(writable)); err != nil {
			return "", nil, err
		}
	}
	return h, digests, nil
}

func copyFile(src, dst string, mode fs.FileMode) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	sum := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, sum), in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(dst, mode)
	}
	if err != nil {
		return "", fmt.Errorf("copy %s: %w", src, err)
	}
	return hex.EncodeToString(sum.Sum(nil)), nil
}

func fileMode(exec, writable bool) fs.FileMode {
	m := fs.FileMode(0o444)
	if writable {
		m |= 0o200
	}
	if exec {
		m |= 0o111
	}
	return m
}

func dirMode(writable bool) fs.FileMode {
	if writable {
		return 0o755
	}
	return 0o555
}
