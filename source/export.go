package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Export writes the tree of commit sha, read from the clone in Dir without
// any network, into dir, replacing what dir held. It is how a restarted
// orca-sync gets back the last valid commit's files when the branch head is
// invalid: the tracked checkout stays at the head. dir must not overlap Dir.
func (r *Repo) Export(ctx context.Context, sha, dir string) (Commit, error) {
	fail := func(err error) (Commit, error) {
		return Commit{}, fmt.Errorf("export commit %s into %s: %w", sha, dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fail(err)
	}
	if within(r.opts.Dir, abs) || within(abs, r.opts.Dir) {
		return fail(fmt.Errorf("the directory overlaps the main clone %s", r.opts.Dir))
	}
	if err := r.acquire(ctx); err != nil {
		return fail(err)
	}
	defer r.release()
	repo, closeRepo, err := openRepo(r.opts.Dir)
	if err != nil {
		return fail(err)
	}
	defer closeRepo()
	commit, err := repo.CommitObject(plumbing.NewHash(sha))
	if err != nil {
		return fail(err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return fail(err)
	}
	tmp := abs + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return fail(err)
	}
	if err := writeTree(tree, tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return fail(err)
	}
	if err := os.RemoveAll(abs); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, abs); err != nil {
		return fail(err)
	}
	return toCommit(commit), nil
}

// writeTree writes every file and symlink of tree below root (submodules
// are skipped, as a checkout without --recurse-submodules leaves them).
func writeTree(tree *object.Tree, root string) error {
	return tree.Files().ForEach(func(f *object.File) error {
		p := filepath.Join(root, filepath.FromSlash(f.Name))
		if !within(root, p) {
			return fmt.Errorf("%s: path leaves the tree", f.Name)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if f.Mode == filemode.Symlink {
			target, err := f.Contents()
			if err != nil {
				return fmt.Errorf("%s: %w", f.Name, err)
			}
			return os.Symlink(target, p)
		}
		perm := os.FileMode(0o644)
		if f.Mode == filemode.Executable {
			perm = 0o755
		}
		return writeBlob(f, p, perm)
	})
}

func writeBlob(f *object.File, p string, perm os.FileMode) error {
	rd, err := f.Reader()
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	defer rd.Close()
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, rd)
	return errors.Join(err, out.Close())
}
