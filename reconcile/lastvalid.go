package reconcile

import (
	"context"
	"time"

	"github.com/orca-sync/orca-sync/source"
)

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

// rememberValid records sha as the last valid commit, once per new commit.
func (l *Loop) rememberValid(sha string) {
	var had string
	if ok, err := l.opts.Store.Get(lastValidNS, lastValidKey, &had); err == nil && ok && had == sha {
		return
	}
	if err := l.opts.Store.Put(lastValidNS, lastValidKey, sha); err != nil {
		l.log.Warn("last valid commit not recorded", "commit", short(sha), "error", err)
	}
}

// recoverLastValid is for a loop that has never loaded a valid commit (it
// has just started) and finds the head invalid: it loads the last valid
// commit recorded in the state file from the clone, so the proxy keeps
// routing the services that run and cluster.toml's tokens, webhook secret
// and sinks stay in force until git is fixed. Nothing is applied from it.
func (l *Loop) recoverLastValid(ctx context.Context) {
	exp, ok := l.opts.Source.(Exporter)
	if !ok || l.opts.LastValidDir == "" || l.lastDesired() != nil {
		return
	}
	var sha string
	if found, err := l.opts.Store.Get(lastValidNS, lastValidKey, &sha); err != nil || !found {
		return
	}
	ectx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	commit, err := exp.Export(ectx, sha, l.opts.LastValidDir)
	if err != nil {
		l.log.Warn("the last valid commit could not be restored", "commit", short(sha), "error", err)
		return
	}
	d, err := l.loadDir(ctx, l.opts.LastValidDir)
	if err != nil {
		l.log.Warn("the last valid commit no longer loads", "commit", short(sha), "error", err)
		return
	}
	l.mu.Lock()
	if l.last.desired == nil {
		l.last.desired, l.last.commit = d, commit
	}
	l.mu.Unlock()
	l.log.Info("the branch head is invalid: running on the configuration of the last valid commit", "commit", short(sha))
}
