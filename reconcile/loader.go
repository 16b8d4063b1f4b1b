package reconcile

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/files"
	"github.com/orca-sync/orca-sync/source"
)

// loader parses and validates the infra tree of a checkout and resolves its
// secrets, the same way for the tracked branch, pull request heads and the
// last valid commit: a file this host cannot decrypt or a missing name makes
// the whole commit invalid.
type loader struct {
	path    string
	secrets Secrets
	// hasher hashes the files the services mount; hosts refuses the host
	// paths this host does not allow (docs/guides/files.md).
	hasher *files.Hasher
	hosts  files.HostPolicy
	// own is the planner's Own: host paths are this host's policy, so only
	// the services placed on its node are held to it.
	own func(*config.Desired) *config.Desired
	// cache keeps the last valid load; nil loads every time.
	cache *loadCache
}

// load parses, checks and resolves the checkout in dir, of commit sha. The
// commit is part of the cache's key beside the tree's stamp: a checkout
// rewritten within one timestamp tick, with sizes and reused inode numbers
// alike, is still another commit (docs/design.md#the-cost-of-a-sync).
func (ld loader) load(ctx context.Context, dir, sha string) (*config.Desired, error) {
	root := filepath.Join(dir, ld.path)
	tree := files.Stamp(root)
	if tree != "" {
		tree = sha + " " + tree
	}
	if d := ld.cache.get(root, tree); d != nil {
		return d, nil
	}
	d, err := config.Load(root)
	if err == nil {
		err = ld.hosts.Check(ld.own(d))
	}
	if err == nil {
		err = ld.hasher.Resolve(ctx, d)
	}
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = ld.secrets.Resolve(sctx, d)
		cancel()
	}
	if err == nil {
		ld.cache.put(root, tree, d)
	}
	return d, err
}

// Exporter writes the files of an earlier commit of the clone into a
// directory of their own (source.Repo.Export).
type Exporter interface {
	Export(ctx context.Context, sha, dir string) (source.Commit, error)
}

// The last valid commit is kept in the state file under this key.
const (
	lastValidNS  = "reconcile"
	lastValidKey = "last-valid-commit"
)

// lastValid remembers the last valid commit in the state file and, for a
// process that starts on an invalid head, brings its files back.
type lastValid struct {
	store  Store
	source Source
	dir    string
	loader loader
	last   *lastSync
	log    *slog.Logger
}

// remember records sha as the last valid commit, once per new commit.
func (lv lastValid) remember(sha string) {
	var had string
	if ok, err := lv.store.Get(lastValidNS, lastValidKey, &had); err == nil && ok && had == sha {
		return
	}
	if err := lv.store.Put(lastValidNS, lastValidKey, sha); err != nil {
		lv.log.Warn("last valid commit not recorded", "commit", short(sha), "error", err)
	}
}

// recover is for a loop that has never loaded a valid commit (it has just
// started) and finds the head invalid: it loads the last valid commit
// recorded in the state file from the clone, so the proxy keeps routing the
// services that run and cluster.toml's tokens, webhook secret and sinks stay
// in force until git is fixed. Nothing is applied from it.
func (lv lastValid) recover(ctx context.Context) {
	exp, ok := lv.source.(Exporter)
	if !ok || lv.dir == "" || lv.last.desiredOf() != nil {
		return
	}
	var sha string
	if found, err := lv.store.Get(lastValidNS, lastValidKey, &sha); err != nil || !found {
		return
	}
	ectx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	commit, err := exp.Export(ectx, sha, lv.dir)
	if err != nil {
		lv.log.Warn("the last valid commit could not be restored", "commit", short(sha), "error", err)
		return
	}
	d, err := lv.loader.load(ctx, lv.dir, commit.SHA)
	if err != nil {
		lv.log.Warn("the last valid commit no longer loads", "commit", short(sha), "error", err)
		return
	}
	lv.last.recovered(d, commit)
	lv.log.Info("the branch head is invalid: running on the configuration of the last valid commit", "commit", short(sha))
}
