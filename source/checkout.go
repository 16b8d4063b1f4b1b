package source

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// checkout points HEAD at hash (through t.branch, or detached), hard-resets
// the index and work tree to it and removes everything else from the work
// tree, like git reset --hard && git clean -ffdx.
func (r *Repo) checkout(repo *git.Repository, t target, hash plumbing.Hash) (Commit, error) {
	fail := func(err error) (Commit, error) {
		return Commit{}, fmt.Errorf("check out %s %s in %s: %w", t.what, hash, t.dir, err)
	}
	commit, err := repo.CommitObject(hash)
	if err != nil {
		return fail(err)
	}
	head := plumbing.NewHashReference(plumbing.HEAD, hash)
	if t.branch != "" {
		if err := repo.Storer.SetReference(plumbing.NewHashReference(t.branch, hash)); err != nil {
			return fail(err)
		}
		head = plumbing.NewSymbolicReference(plumbing.HEAD, t.branch)
	}
	if err := repo.Storer.SetReference(head); err != nil {
		return fail(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return fail(err)
	}
	if err := wt.Reset(&git.ResetOptions{Commit: hash, Mode: git.HardReset}); err != nil {
		return fail(err)
	}
	idx, err := repo.Storer.Index()
	if err != nil {
		return fail(err)
	}
	if err := clean(wt.Filesystem.Root(), idx); err != nil {
		return fail(err)
	}
	return toCommit(commit), nil
}

// clean removes from the work tree at root every file and directory that
// is not in idx, ignored or not; only the top-level .git is left alone.
func clean(root string, idx *index.Index) error {
	// keep maps each tracked path to whether it is a directory to descend
	// into (a parent of tracked files) or a leaf (a file, a symlink, a
	// submodule).
	keep := make(map[string]bool, 2*len(idx.Entries))
	for _, e := range idx.Entries {
		keep[e.Name] = false
		for d := path.Dir(e.Name); d != "."; d = path.Dir(d) {
			if keep[d] {
				break
			}
			keep[d] = true
		}
	}
	return cleanDir(root, "", keep)
}

func cleanDir(root, rel string, keep map[string]bool) error {
	dir := filepath.Join(root, filepath.FromSlash(rel))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("clean: %w", err)
	}
	for _, e := range entries {
		if rel == "" && e.Name() == git.GitDirName {
			continue
		}
		p := path.Join(rel, e.Name())
		descend, tracked := keep[p]
		if !tracked {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("clean: %w", err)
			}
			continue
		}
		if descend && e.IsDir() {
			if err := cleanDir(root, p, keep); err != nil {
				return err
			}
		}
	}
	return nil
}

// Head returns the commit checked out in Dir, without fetching. It waits
// for a Sync in progress.
func (r *Repo) Head() (Commit, error) {
	r.lock <- struct{}{}
	defer r.release()
	return headOf(r.opts.Dir)
}

func headOf(dir string) (Commit, error) {
	repo, err := git.PlainOpen(dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return Commit{}, fmt.Errorf("read the checked-out commit in %s: no clone yet", dir)
	}
	if err != nil {
		return Commit{}, fmt.Errorf("read the checked-out commit in %s: %w", dir, err)
	}
	head, err := repo.Head()
	if err != nil {
		return Commit{}, fmt.Errorf("read HEAD in %s: %w", dir, err)
	}
	c, err := repo.CommitObject(head.Hash())
	if err != nil {
		return Commit{}, fmt.Errorf("read commit %s in %s: %w", head.Hash(), dir, err)
	}
	return toCommit(c), nil
}

func toCommit(c *object.Commit) Commit {
	return Commit{
		SHA:     c.Hash.String(),
		Author:  fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email),
		Message: strings.TrimRight(c.Message, "\n"),
		Time:    c.Committer.When,
	}
}

// storage returns the work tree and the object storage of the clone in dir.
// Pack files stay open until the storage is closed, instead of being
// reopened for every object read (the Repo's lock gives exclusive access).
func storage(dir string) (*filesystem.Storage, billy.Filesystem, error) {
	wt := osfs.New(dir, osfs.WithBoundOS())
	dot, err := wt.Chroot(git.GitDirName)
	if err != nil {
		return nil, nil, err
	}
	st := filesystem.NewStorageWithOptions(dot, cache.NewObjectLRUDefault(),
		filesystem.Options{KeepDescriptors: true, ExclusiveAccess: true})
	return st, wt, nil
}

// openRepo opens the clone in dir; close releases its files.
func openRepo(dir string) (repo *git.Repository, close func(), err error) {
	st, wt, err := storage(dir)
	if err != nil {
		return nil, nil, err
	}
	if repo, err = git.Open(st, wt); err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	return repo, func() { _ = st.Close() }, nil
}

// initRepo makes an empty repository in dir; close releases its files.
func initRepo(dir string) (repo *git.Repository, close func(), err error) {
	st, wt, err := storage(dir)
	if err != nil {
		return nil, nil, err
	}
	if repo, err = git.Init(st, wt); err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	return repo, func() { _ = st.Close() }, nil
}
