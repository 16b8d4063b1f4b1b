package apply

import "sync"

// awaiting is the set of containers an Applier started that have not passed
// readiness: still in their wait, or failed it and not yet retired by the
// undo. A container runs, and so looks serving to a
// plan, well before its readiness probe passes; status must not count it
// ready nor call its service Synced until then, or a script that polls
// status for Synced goes on before the service answers
// (docs/reference/api.md#status).
type awaiting struct {
	mu  sync.Mutex
	ids map[string]bool
}

func newAwaiting() *awaiting { return &awaiting{ids: map[string]bool{}} }

func (w *awaiting) add(id string) {
	w.mu.Lock()
	w.ids[id] = true
	w.mu.Unlock()
}

func (w *awaiting) done(id string) {
	w.mu.Lock()
	delete(w.ids, id)
	w.mu.Unlock()
}

func (w *awaiting) has(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ids[id]
}

// AwaitingReadiness reports whether container id was started by this
// Applier and has not passed readiness: it is still waiting, or it failed
// and the undo has not removed it yet.
func (a *Applier) AwaitingReadiness(id string) bool { return a.awaiting.has(id) }
