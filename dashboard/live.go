package dashboard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/orca-sync/orca-sync/api/wire"
)

// hub reads the status once per interval while any page listens, and hands
// the newest to every listener: ten open tabs cost one status read, not ten.
type hub struct {
	src   StatusReader
	every time.Duration
	done  <-chan struct{}

	mu      sync.Mutex
	subs    map[chan wire.Status]struct{}
	running bool
}

func newHub(src StatusReader, every time.Duration, done <-chan struct{}) *hub {
	return &hub{src: src, every: every, done: done, subs: map[chan wire.Status]struct{}{}}
}

// subscribe returns a channel that holds the newest status (older ones are
// dropped unread) and the function that ends the subscription.
func (h *hub) subscribe() (<-chan wire.Status, func()) {
	ch := make(chan wire.Status, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[ch] = struct{}{}
	if !h.running {
		h.running = true
		go h.run()
	}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs, ch)
	}
}

func (h *hub) run() {
	tick := time.NewTicker(h.every)
	defer tick.Stop()
	for {
		if !h.publish() {
			return
		}
		select {
		case <-h.done:
			h.mu.Lock()
			h.running = false
			h.mu.Unlock()
			return
		case <-tick.C:
		}
	}
}

// publish reads the status and offers it to every listener; false (and
// the hub stopped) when nobody listens any more.
func (h *hub) publish() bool {
	h.mu.Lock()
	if len(h.subs) == 0 {
		h.running = false
		h.mu.Unlock()
		return false
	}
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	st, err := h.src.Status(ctx)
	cancel()
	if err != nil {
		return true // the next tick tries again; pages keep what they show
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case <-ch: // drop the unread older one
		default:
		}
		ch <- st
	}
	return true
}

// events is the live stream of a page: server-sent events whose data is the
// page's live part rendered anew, sent when it changed. The script swaps it
// in; when the stream drops it shows that serve is unreachable.
func (d *Dashboard) events(w http.ResponseWriter, r *http.Request) {
	if _, ok := d.who(r); !ok {
		http.Error(w, "sign in first", http.StatusUnauthorized)
		return
	}
	q := r.URL.Query()
	pg, ok := d.pages[q.Get("view")]
	if !ok || pg.live == nil {
		http.Error(w, "no such live view", http.StatusBadRequest)
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	send := func(s string) error {
		if err := rc.SetWriteDeadline(time.Now().Add(30 * time.Second)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		if _, err := w.Write([]byte(s)); err != nil {
			return err
		}
		return rc.Flush()
	}
	if send("retry: 2000\n\n") != nil {
		return
	}
	d.stream(r, pg, send)
}

// stream sends the page's live part on every status that changes it, a
// comment every 15 s to keep proxies from closing the idle stream, and
// returns when the client goes, serve shuts down or the token is gone.
func (d *Dashboard) stream(r *http.Request, pg *page, send func(string) error) {
	updates, stop := d.hub.subscribe()
	defer stop()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	var last []byte
	for {
		var msg string
		select {
		case <-r.Context().Done():
			return
		case <-d.closed:
			return
		case <-ping.C:
			msg = ": ping\n\n"
		case st := <-updates:
			v, ok := d.who(r) // a token removed from cluster.toml ends the stream
			if !ok {
				_ = send("event: signedout\ndata: signed out\n\n")
				return
			}
			b, err := d.renderLive(r, pg, v, st)
			if err != nil {
				d.log.WarnContext(r.Context(), "dashboard live view", "view", pg.name, "error", err)
				continue
			}
			if bytes.Equal(b, last) {
				continue
			}
			last = b
			msg = sseEvent("update", b)
		}
		if send(msg) != nil {
			return
		}
	}
}

// sseEvent frames data as one event: every line of it a data line.
func sseEvent(name string, data []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "event: %s\n", name)
	for _, line := range strings.Split(string(data), "\n") {
		b.WriteString("data: ")
		b.WriteString(strings.TrimRight(line, "\r"))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.String()
}
