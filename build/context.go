package build

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// tarContext streams dir as a build context: regular files, directories
// and symlinks, with their modes and zero times, so that the same tree makes
// the same archive and the builder's cache holds across commits that did not
// change a file. The context's .dockerignore is honoured as the docker CLI
// does (the Dockerfile and .dockerignore are always sent).
func tarContext(dir, dockerfile string) io.Reader {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(pw, dir, dockerfile)) }()
	return pr
}

// ignored reads dir's .dockerignore (nil when there is none).
func ignored(dir string) (*patternmatcher.PatternMatcher, error) {
	f, err := os.Open(filepath.Join(dir, ".dockerignore"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read .dockerignore: %w", err)
	}
	return patternmatcher.New(patterns)
}

func writeTar(w io.Writer, dir, dockerfile string) error {
	pm, err := ignored(dir)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if skip, err := excluded(pm, rel, dockerfile); err != nil || skip {
			if err == nil && e.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return err
		}
		return writeEntry(tw, p, rel, e)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// excluded reports whether .dockerignore leaves rel out; the Dockerfile and
// .dockerignore are always sent, as the docker CLI sends them.
func excluded(pm *patternmatcher.PatternMatcher, rel, dockerfile string) (bool, error) {
	if pm == nil || rel == dockerfile || rel == ".dockerignore" {
		return false, nil
	}
	return pm.MatchesOrParentMatches(rel)
}

// writeEntry writes one file, directory or symlink with zero times and
// owners.
func writeEntry(tw *tar.Writer, p, rel string, e fs.DirEntry) error {
	fi, err := e.Info()
	if err != nil {
		return err
	}
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	}
	h, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	h.Name = rel
	h.ModTime, h.AccessTime, h.ChangeTime = time.Unix(0, 0), time.Time{}, time.Time{}
	h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
	h.Format = tar.FormatPAX
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}
