package docker

import (
	"sync"
	"time"
)

// imageWatch is a cache that is only trusted while the engine's event
// stream reports image events: what a tag points to, and whether an image
// has a digest in a repository, change without a new ID (docker tag, pull,
// push, rmi). Each image event clears it; a lookup made while one arrived
// is not kept (the generation moved). Without a stream (the one-shot
// commands, or a broken stream) nothing is cached, nor in the first
// watchGrace of one: the engine has no word for "subscribed", and an image
// changed before it was is only seen by a lookup made after.
type imageWatch struct {
	mu       sync.Mutex
	watchers int
	since    time.Time // the last start
	gen      uint64
	entries  map[string]string
}

// watchGrace is how long after a stream starts nothing is cached.
const watchGrace = 2 * time.Second

// start and stop bracket an event stream that reports image events.
func (w *imageWatch) start() { w.change(1) }
func (w *imageWatch) stop()  { w.change(-1) }

func (w *imageWatch) change(watchers int) {
	w.mu.Lock()
	if watchers > 0 {
		w.since = time.Now()
	}
	w.watchers += watchers
	w.gen++
	w.entries = nil
	w.mu.Unlock()
}

// changed forgets everything: an image event arrived.
func (w *imageWatch) changed() { w.change(0) }

func (w *imageWatch) generation() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gen
}

func (w *imageWatch) get(key string) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, ok := w.entries[key]
	return v, ok
}

// put keeps a lookup that began at generation gen, if no image event came
// since and a stream watches.
func (w *imageWatch) put(gen uint64, key, value string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watchers == 0 || gen != w.gen || time.Since(w.since) < watchGrace {
		return
	}
	if w.entries == nil {
		w.entries = map[string]string{}
	}
	w.entries[key] = value
}
