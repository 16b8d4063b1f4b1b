package files

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// What a content hash covers (docs/guides/files.md): for a file its mode
// and bytes; for a directory every entry below it by relative path — files
// by mode and bytes, directories by path, symlinks by their target. A mode
// is what git records, executable or not, so the host's umask never
// changes a hash; and a snapshot, made read-only, hashes as its source.

const (
	kindFile    = 'f'
	kindDir     = 'd'
	kindSymlink = 'l'
)

// entry is one thing below (or at) the root of a walk.
type entry struct {
	// rel is the slash path below the root, "" for the root itself.
	rel    string
	path   string
	kind   byte
	exec   bool
	target string
	info   fs.FileInfo
}

// walk visits the file or directory at root (a symlink at root is
// followed) in lexical order and returns its content hash. visit returns
// the sha256 hex digest of each regular file's bytes ("" for the others);
// it may copy the entry on the way.
func walk(ctx context.Context, root string, visit func(entry) (string, error)) (string, error) {
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", err
	}
	info, err := os.Stat(real)
	if err != nil {
		return "", err
	}
	sum := sha256.New()
	if info.Mode().IsRegular() {
		e := entry{path: real, kind: kindFile, exec: info.Mode()&0o111 != 0, info: info}
		d, err := visit(e)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(sum, "file\x00%s\x00%s", modeOf(e), d)
		return hex.EncodeToString(sum.Sum(nil)), nil
	}
	if !info.IsDir() {
		return "", fmt.Errorf("%s is neither a file nor a directory", root)
	}
	sum.Write([]byte("dir\x00"))
	err = filepath.WalkDir(real, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		e, err := entryOf(real, p, de)
		if err != nil {
			return err
		}
		d, err := visit(e)
		if err != nil {
			return err
		}
		if e.rel == "" {
			return nil
		}
		payload := d
		if e.kind == kindSymlink {
			payload = e.target
		}
		fmt.Fprintf(sum, "%c\x00%s\x00%s\x00%s\x00", e.kind, e.rel, modeOf(e), payload)
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(sum.Sum(nil)), nil
}

func entryOf(root, p string, de fs.DirEntry) (entry, error) {
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return entry{}, err
	}
	if rel == "." {
		rel = ""
	}
	info, err := de.Info()
	if err != nil {
		return entry{}, err
	}
	e := entry{rel: filepath.ToSlash(rel), path: p, info: info}
	switch m := info.Mode(); {
	case m.IsRegular():
		e.kind, e.exec = kindFile, m&0o111 != 0
	case m.IsDir():
		e.kind = kindDir
	case m&fs.ModeSymlink != 0:
		e.kind = kindSymlink
		if e.target, err = os.Readlink(p); err != nil {
			return entry{}, err
		}
	default:
		return entry{}, fmt.Errorf("%s: a %s cannot be mounted from the checkout", p, m.Type())
	}
	return e, nil
}

func modeOf(e entry) string {
	switch {
	case e.kind == kindSymlink:
		return "l"
	case e.kind == kindDir, e.exec:
		return "755"
	}
	return "644"
}
