package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
)

const remoteName = "origin"

// ErrNoSuchRef is wrapped by the fetch error of a ref the remote does not
// have (a pull request number that does not exist).
var ErrNoSuchRef = errors.New("no such ref on the remote")

// fetchedRef is where FetchRef stores the ref it fetched.
const fetchedRef = plumbing.ReferenceName("refs/orca-sync/fetched")

// target is one checkout: a directory, the remote ref fetched into it and
// the local ref that records it.
type target struct {
	dir    string
	remote plumbing.ReferenceName // on the remote: refs/heads/main, refs/pull/7/head
	local  plumbing.ReferenceName // where the fetch stores it
	branch plumbing.ReferenceName // local branch HEAD follows; "" for a detached HEAD
	what   string                 // the branch or ref, for messages
}

// refSpec is a force refspec: a rewritten remote history replaces the local
// one instead of being refused as a non-fast-forward.
func (t target) refSpec() config.RefSpec {
	return config.RefSpec("+" + t.remote.String() + ":" + t.local.String())
}

// Sync brings Dir to the head of the tracked branch and returns that commit.
// The first call clones (a full single-branch clone); later calls fetch the
// branch and hard-reset the work tree to it, removing every file that is not
// in the commit. When the fetch fails, Dir keeps the last good checkout and
// the error says "fetch <url> <branch>: ...", without credentials. A Dir
// that holds a clone of another URL, or a broken clone, is cloned anew.
func (r *Repo) Sync(ctx context.Context) (Commit, error) {
	if err := r.acquire(ctx); err != nil {
		return Commit{}, fmt.Errorf("sync %s %s: %w", r.url, r.opts.Branch, err)
	}
	defer r.release()
	return r.update(ctx, target{
		dir:    r.opts.Dir,
		remote: r.branch,
		local:  plumbing.NewRemoteReferenceName(remoteName, r.opts.Branch),
		branch: r.branch,
		what:   r.opts.Branch,
	})
}

// FetchRef fetches ref from the remote (a full ref such as
// "refs/pull/7/head", or a branch name) into its own clone in dir, checks it
// out there (detached HEAD) and returns the commit. dir must be neither Dir
// nor inside or around it; two FetchRef calls must not share a dir at the
// same time.
func (r *Repo) FetchRef(ctx context.Context, ref, dir string) (Commit, error) {
	name := plumbing.ReferenceName(ref)
	if !strings.HasPrefix(ref, "refs/") {
		name = plumbing.NewBranchReferenceName(ref)
	}
	if err := name.Validate(); err != nil {
		return Commit{}, fmt.Errorf("fetch %s %s: invalid ref: %w", r.url, ref, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Commit{}, fmt.Errorf("fetch %s %s: directory %s: %w", r.url, ref, dir, err)
	}
	if within(r.opts.Dir, abs) || within(abs, r.opts.Dir) {
		return Commit{}, fmt.Errorf("fetch %s %s: directory %s overlaps the main clone %s", r.url, ref, abs, r.opts.Dir)
	}
	return r.update(ctx, target{dir: abs, remote: name, local: fetchedRef, what: ref})
}

// update clones t.dir when there is no usable clone in it, otherwise
// fetches and checks out.
func (r *Repo) update(ctx context.Context, t target) (Commit, error) {
	start := time.Now()
	repo, closeRepo, err := r.openClone(t.dir)
	if err != nil {
		return Commit{}, err
	}
	if repo == nil {
		return r.clone(ctx, t)
	}
	defer closeRepo()
	hash, err := r.fetch(ctx, repo, t)
	if err != nil {
		return Commit{}, err
	}
	var before plumbing.Hash
	if head, err := repo.Head(); err == nil {
		before = head.Hash()
	}
	c, err := r.checkout(repo, t, hash)
	if err != nil {
		return Commit{}, err
	}
	level := slog.LevelDebug
	if before != hash {
		level = slog.LevelInfo
	}
	r.log.Log(ctx, level, "git checkout", "url", r.url, "ref", t.what, "commit", c.SHA,
		"previous", before.String(), "duration", time.Since(start))
	return c, nil
}

// openClone opens the clone in dir. It returns a nil repository (and no
// error) when there is none to use: dir missing or empty, or holding a clone
// of another URL or a broken one, all of which a fresh clone replaces. A
// directory with other content is left alone and reported.
func (r *Repo) openClone(dir string) (*git.Repository, func(), error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open clone %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, nil, fmt.Errorf("open clone %s: not a directory", dir)
	}
	if _, err := os.Lstat(filepath.Join(dir, git.GitDirName)); errors.Is(err, fs.ErrNotExist) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("open clone %s: %w", dir, err)
		}
		if len(entries) == 0 {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("open clone %s: the directory is not empty and not a git clone; remove it or use another data dir", dir)
	}
	repo, closeRepo, err := openRepo(dir)
	if err != nil {
		r.log.Warn("replacing the git clone", "dir", dir, "url", r.url, "reason", "cannot open it: "+err.Error())
		return nil, nil, nil
	}
	if problem := r.checkClone(repo); problem != "" {
		closeRepo()
		r.log.Warn("replacing the git clone", "dir", dir, "url", r.url, "reason", problem)
		return nil, nil, nil
	}
	return repo, closeRepo, nil
}

// checkClone says what is wrong with repo, if anything: it must be a clone
// of r's URL whose HEAD commit and index can be read.
func (r *Repo) checkClone(repo *git.Repository) string {
	remote, err := repo.Remote(remoteName)
	if err != nil {
		return "no origin remote: " + err.Error()
	}
	if urls := remote.Config().URLs; len(urls) == 0 || urls[0] != r.url {
		return fmt.Sprintf("it is a clone of %s", redactURL(strings.Join(urls, " ")))
	}
	head, err := repo.Head()
	if err != nil {
		return "cannot read HEAD: " + err.Error()
	}
	if _, err := repo.CommitObject(head.Hash()); err != nil {
		return "cannot read the HEAD commit: " + err.Error()
	}
	if _, err := repo.Storer.Index(); err != nil {
		return "cannot read the index: " + err.Error()
	}
	return ""
}

// clone makes a new clone of t in a temporary sibling of t.dir and moves it
// into place only once it is checked out, so t.dir never holds half a clone
// and keeps its old content when the clone fails.
func (r *Repo) clone(ctx context.Context, t target) (c Commit, err error) {
	start := time.Now()
	parent, base := filepath.Split(t.dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return Commit{}, fmt.Errorf("clone %s: create %s: %w", r.url, parent, err)
	}
	r.removeStale(parent, base)
	tmp, err := os.MkdirTemp(parent, "."+base+".clone-")
	if err != nil {
		return Commit{}, fmt.Errorf("clone %s: %w", r.url, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return Commit{}, fmt.Errorf("clone %s: %w", r.url, err)
	}
	repo, closeRepo, err := initRepo(tmp)
	if err != nil {
		return Commit{}, fmt.Errorf("clone %s: init %s: %w", r.url, tmp, err)
	}
	defer closeRepo()
	if _, err := repo.CreateRemote(&config.RemoteConfig{
		Name: remoteName, URLs: []string{r.url}, Fetch: []config.RefSpec{t.refSpec()},
	}); err != nil {
		return Commit{}, fmt.Errorf("clone %s: add remote: %w", r.url, err)
	}
	hash, err := r.fetch(ctx, repo, t)
	if err != nil {
		return Commit{}, err
	}
	if c, err = r.checkout(repo, t, hash); err != nil {
		return Commit{}, err
	}
	if err := r.replaceDir(t.dir, tmp); err != nil {
		return Commit{}, fmt.Errorf("clone %s: %w", r.url, err)
	}
	r.log.Info("git clone", "url", r.url, "ref", t.what, "dir", t.dir, "commit", c.SHA,
		"duration", time.Since(start))
	return c, nil
}

// fetch fetches t's remote ref into t.local and returns the commit it
// points to.
func (r *Repo) fetch(ctx context.Context, repo *git.Repository, t target) (plumbing.Hash, error) {
	if r.protocol == "file" {
		return r.fetchLocal(ctx, repo, t)
	}
	auth, err := r.auth()
	if err != nil {
		return plumbing.ZeroHash, r.fetchError(t, err)
	}
	err = repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: remoteName,
		RemoteURL:  r.url,
		RefSpecs:   []config.RefSpec{t.refSpec()},
		Auth:       auth,
		Tags:       git.NoTags,
		Force:      true,
	})
	if errors.Is(err, git.NoMatchingRefSpecError{}) {
		err = &messageError{msg: fmt.Sprintf("%s does not exist on the remote", t.remote), err: errors.Join(ErrNoSuchRef, err)}
		return plumbing.ZeroHash, r.fetchError(t, err)
	}
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return plumbing.ZeroHash, r.fetchError(t, err)
	}
	ref, err := repo.Reference(t.local, true)
	if err != nil {
		return plumbing.ZeroHash, r.fetchError(t, fmt.Errorf("read fetched %s: %w", t.local, err))
	}
	return ref.Hash(), nil
}

func (r *Repo) fetchError(t target, err error) error {
	return fmt.Errorf("fetch %s %s: %w", r.url, t.what, r.redact(err))
}

// replaceDir puts the directory src in dst's place and removes what dst
// held. When dst cannot be renamed (a mount point), its content is replaced
// instead.
func (r *Repo) replaceDir(dst, src string) error {
	if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(src, dst); err != nil {
			return fmt.Errorf("move clone into %s: %w", dst, err)
		}
		return nil
	}
	old := src + ".old"
	if err := os.Rename(dst, old); err != nil {
		return replaceContent(dst, src)
	}
	if err := os.Rename(src, dst); err != nil {
		_ = os.Rename(old, dst)
		return fmt.Errorf("move clone into %s: %w", dst, err)
	}
	if err := os.RemoveAll(old); err != nil {
		r.log.Warn("remove the old clone", "dir", old, "error", err)
	}
	return nil
}

// replaceContent empties dst and moves every entry of src into it.
func replaceContent(dst, src string) error {
	old, err := os.ReadDir(dst)
	if err != nil {
		return fmt.Errorf("replace %s: %w", dst, err)
	}
	for _, e := range old {
		if err := os.RemoveAll(filepath.Join(dst, e.Name())); err != nil {
			return fmt.Errorf("replace %s: %w", dst, err)
		}
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("replace %s: %w", dst, err)
	}
	for _, e := range entries {
		if err := os.Rename(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return fmt.Errorf("replace %s: %w", dst, err)
		}
	}
	return os.Remove(src)
}

// removeStale removes temporary clones left in parent by a process that
// was killed while cloning into parent/base.
func (r *Repo) removeStale(parent, base string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	prefix := "." + base + ".clone-"
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			p := filepath.Join(parent, e.Name())
			if err := os.RemoveAll(p); err != nil {
				r.log.Warn("remove a stale temporary clone", "dir", p, "error", err)
			}
		}
	}
}

// within reports whether path is dir or inside it.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
