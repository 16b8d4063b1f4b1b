package apply

import "sync"

// idSet is a set of container IDs or names that several goroutines share.
//
// The Applier keeps two: the containers it started that have not passed
// readiness (still in their wait, or failed it and not yet retired by the
// undo) — a container runs, and so looks serving to a plan, well before its
// readiness probe passes, and status must not count it ready nor call its
// service Synced until then, or a script that polls status for Synced goes
// on before the service answers (docs/reference/api.md#status); and the
// one-off containers it runs now (see oneoff.go).
type idSet struct {
	mu  sync.Mutex
	ids map[string]bool
}

func newIDSet() *idSet { return &idSet{ids: map[string]bool{}} }

func (w *idSet) add(id string) {
	w.mu.Lock()
	w.ids[id] = true
	w.mu.Unlock()
}

func (w *idSet) done(id string) {
	w.mu.Lock()
	delete(w.ids, id)
	w.mu.Unlock()
}

func (w *idSet) has(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ids[id]
}

// AwaitingReadiness reports whether container id was started by this
// Applier and has not passed readiness: it is still waiting, or it failed
// and the undo has not removed it yet.
func (a *Applier) AwaitingReadiness(id string) bool { return a.awaiting.has(id) }
