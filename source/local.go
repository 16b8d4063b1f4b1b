package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/server"
	"github.com/go-git/go-git/v5/utils/ioutil"
)

// Local remotes (a path or a file:// URL) are served in-process by go-git's
// server transport, reading the remote repository's files directly: no git
// binary is needed and a sync starts no process. go-git's default file
// transport would run `git-upload-pack` (and `git --exec-path` to find it)
// for every fetch and ls-remote. go-git v5 only lets a transport be chosen
// through its package-level protocol registry, which we do not mutate; so
// the upload-pack session is opened here, per call, and driven by hand for
// the one ref a target needs (docs/design.md, "Git sources").

// localRemote is an upload-pack session on a local remote.
type localRemote struct {
	sess  transport.UploadPackSession
	refs  *packp.AdvRefs // what the session advertised
	store storer.Storer  // the remote repository's, which the session reads
}

// openSession opens an upload-pack session on the local remote at r.url and
// reads its reference advertisement.
func (r *Repo) openSession(ctx context.Context) (*localRemote, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ep, err := transport.NewEndpoint(r.url)
	if err != nil {
		return nil, err
	}
	remote, err := openLocal(ep.Path)
	if err != nil {
		return nil, err
	}
	sess, err := server.NewClient(server.MapLoader{ep.String(): remote.Storer}).NewUploadPackSession(ep, nil)
	if err != nil {
		return nil, err
	}
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		_ = sess.Close()
		return nil, err
	}
	return &localRemote{sess: sess, refs: ar, store: remote.Storer}, nil
}

func (l *localRemote) Close() error { return l.sess.Close() }

// openLocal opens the repository at path the way git-upload-pack finds it:
// path/.git, path, then path.git/.git and path.git.
func openLocal(path string) (*git.Repository, error) {
	opts := &git.PlainOpenOptions{EnableDotGitCommonDir: true}
	repo, err := git.PlainOpenWithOptions(path, opts)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		if _, serr := os.Stat(path); errors.Is(serr, fs.ErrNotExist) {
			repo, err = git.PlainOpenWithOptions(path+".git", opts)
		}
	}
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return nil, transport.ErrRepositoryNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return repo, nil
}

// ref resolves name among the advertised references.
func (l *localRemote) ref(name plumbing.ReferenceName) (plumbing.Hash, error) {
	refs, err := l.refs.AllReferences()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	ref, err := storer.ResolveReference(refs, name)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return plumbing.ZeroHash, &messageError{
			msg: fmt.Sprintf("%s does not exist on the remote", name), err: errors.Join(ErrNoSuchRef, err)}
	}
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return ref.Hash(), nil
}

// fetchLocal is fetch for a local remote: it stores t.remote's commit and
// every object it needs into repo, and points t.local at it.
func (r *Repo) fetchLocal(ctx context.Context, repo *git.Repository, t target) (plumbing.Hash, error) {
	remote, err := r.openSession(ctx)
	if err != nil {
		return plumbing.ZeroHash, r.fetchError(t, err)
	}
	defer func() { _ = remote.Close() }()
	want, err := remote.ref(t.remote)
	if err != nil {
		return plumbing.ZeroHash, r.fetchError(t, err)
	}
	if !hasObject(repo.Storer, want) {
		if err := remote.copyObjects(ctx, repo, want); err != nil {
			return plumbing.ZeroHash, r.fetchError(t, err)
		}
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference(t.local, want)); err != nil {
		return plumbing.ZeroHash, r.fetchError(t, fmt.Errorf("store fetched %s: %w", t.local, err))
	}
	return want, nil
}

// copyObjects writes the objects reachable from want that repo lacks into
// repo as one pack file. It does not go through the session's UploadPack:
// that walks the whole history of every "have" at every fetch (a third of a
// new-commit sync's time at 100 commits, and growing with the history), so
// the objects are picked here, walking down from want and stopping at every
// commit and tree the clone already has (a clone holds everything reachable
// from the objects it has), and packed by the encoder the server uses.
func (l *localRemote) copyObjects(ctx context.Context, repo *git.Repository, want plumbing.Hash) error {
	objs, err := missingObjects(l.store, repo.Storer, want)
	if err != nil {
		return fmt.Errorf("list the objects to fetch: %w", err)
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := packfile.NewEncoder(pw, l.store, false).Encode(objs, 10)
		pw.CloseWithError(err)
	}()
	// Closing the reader ends the encoder when the write stops early.
	defer func() { _ = pr.Close() }()
	if err := packfile.UpdateObjectStorage(repo.Storer, ioutil.NewContextReader(ctx, pr)); err != nil {
		return fmt.Errorf("write the fetched objects: %w", err)
	}
	return nil
}

// missingObjects lists the commits, trees and blobs reachable from want in
// remote that local lacks. Submodule commits are not followed.
func missingObjects(remote, local storer.EncodedObjectStorer, want plumbing.Hash) ([]plumbing.Hash, error) {
	w := objectWalk{remote: remote, local: local, seen: map[plumbing.Hash]bool{}}
	for pending := []plumbing.Hash{want}; len(pending) > 0; {
		h := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		if !w.need(h) {
			continue
		}
		c, err := object.GetCommit(remote, h)
		if err != nil {
			return nil, fmt.Errorf("commit %s: %w", h, err)
		}
		if err := w.tree(c.TreeHash); err != nil {
			return nil, err
		}
		pending = append(pending, c.ParentHashes...)
	}
	return w.out, nil
}

// objectWalk collects the objects of remote that local lacks.
type objectWalk struct {
	remote, local storer.EncodedObjectStorer
	seen          map[plumbing.Hash]bool
	out           []plumbing.Hash
}

// need reports whether h is yet to be sent, and records it as seen and sent
// if so.
func (w *objectWalk) need(h plumbing.Hash) bool {
	if w.seen[h] {
		return false
	}
	w.seen[h] = true
	if hasObject(w.local, h) {
		return false
	}
	w.out = append(w.out, h)
	return true
}

func (w *objectWalk) tree(h plumbing.Hash) error {
	if !w.need(h) {
		return nil
	}
	t, err := object.GetTree(w.remote, h)
	if err != nil {
		return fmt.Errorf("tree %s: %w", h, err)
	}
	for _, e := range t.Entries {
		switch e.Mode {
		case filemode.Dir:
			if err := w.tree(e.Hash); err != nil {
				return err
			}
		case filemode.Submodule:
		default:
			w.need(e.Hash)
		}
	}
	return nil
}

// localRemoteHead is RemoteHead for a local remote.
func (r *Repo) localRemoteHead(ctx context.Context) (string, error) {
	remote, err := r.openSession(ctx)
	if err != nil {
		return "", fmt.Errorf("ls-remote %s %s: %w", r.url, r.opts.Branch, r.redact(err))
	}
	defer func() { _ = remote.Close() }()
	h, err := remote.ref(r.branch)
	if errors.Is(err, ErrNoSuchRef) {
		err = ErrNoSuchRef
	}
	if err != nil {
		return "", fmt.Errorf("ls-remote %s %s: %w", r.url, r.opts.Branch, r.redact(err))
	}
	return h.String(), nil
}

// hasObject reports whether s holds the object h, without reading it. (The
// clone's storage, opened with ExclusiveAccess, answers HasEncodedObject
// with "not found" for every packed object; EncodedObjectSize looks in the
// packs too.)
func hasObject(s storer.EncodedObjectStorer, h plumbing.Hash) bool {
	_, err := s.EncodedObjectSize(h)
	return err == nil
}
