package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/orca-sync/orca-sync/config"
)

// Memory is where the notifier remembers when it last sent a failure: the
// state file's namespaced key/values (state.DB).
type Memory interface {
	Get(namespace, key string, v any) (bool, error)
	Put(namespace, key string, v any) error
	Keys(namespace string) ([]string, error)
	Delete(namespace, key string) error
}

// memoryRetention is how long a sent failure is remembered at least; Run
// forgets older ones (and ones older than every sink's interval) so the
// state file does not grow with every distinct failure.
const memoryRetention = 30 * 24 * time.Hour

// memoryNamespace is the state.db namespace of the repeat memory.
const memoryNamespace = "notify"

// Defaults of Options.
const (
	DefaultAttempts       = 3
	DefaultBackoff        = time.Second
	DefaultAttemptTimeout = 10 * time.Second
	queueSize             = 256
	// maxPerSink bounds the deliveries under way to one sink (a sink that
	// hangs holds each for up to Attempts × AttemptTimeout); further events
	// for it wait in its backlog of maxBacklog, past which they are dropped
	// (logged) rather than piling up goroutines.
	maxPerSink = 4
	maxBacklog = 64
)

// Options configure a Notifier.
type Options struct {
	// Sinks returns the [[notify]] sinks of the current cluster.toml; it is
	// asked for every event, so a commit changes the sinks without restart.
	Sinks  func() []config.Notify
	Memory Memory // nil: repeats are not suppressed
	Client *http.Client
	// Attempts per delivery, the first backoff (doubled after each failed
	// attempt) and the timeout of one attempt.
	Attempts       int
	Backoff        time.Duration
	AttemptTimeout time.Duration
	Log            *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Notifier queues events and delivers them to the sinks. Notify is safe for
// concurrent use; Run delivers.
type Notifier struct {
	opts  Options
	log   *slog.Logger
	queue chan Event

	mu       sync.Mutex
	inflight map[string]bool       // memory keys of repeat-suppressed deliveries under way
	busy     map[string]int        // delivery goroutines per sink (sinkKey)
	backlog  map[string][]delivery // deliveries waiting for one of them
	wg       sync.WaitGroup
}

// New returns a Notifier; nothing is delivered until Run.
func New(opts Options) *Notifier {
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultAttempts
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = DefaultAttemptTimeout
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sinks == nil {
		opts.Sinks = func() []config.Notify { return nil }
	}
	return &Notifier{opts: opts, log: opts.Log, queue: make(chan Event, queueSize), inflight: map[string]bool{}, busy: map[string]int{}, backlog: map[string][]delivery{}}
}

// Notify queues e and returns at once. When the queue is full (every sink
// far behind) the event is dropped and logged.
func (n *Notifier) Notify(e Event) {
	if e.Time.IsZero() {
		e.Time = n.opts.Now()
	}
	select {
	case n.queue <- e:
	default:
		n.log.Warn("notification dropped: the queue is full", "kind", e.Kind)
	}
}

// Run dispatches queued events until ctx ends, then dispatches what is still
// queued and waits up to FlushTimeout for the deliveries under way.
func (n *Notifier) Run(ctx context.Context) {
	n.forget()
	for {
		select {
		case e := <-n.queue:
			n.dispatch(e)
		case <-ctx.Done():
			for {
				select {
				case e := <-n.queue:
					n.dispatch(e)
				default:
					n.waitDeliveries(FlushTimeout)
					return
				}
			}
		}
	}
}

// FlushTimeout bounds how long Run waits, once its context ended, for the
// deliveries under way: a sink that hangs must not hold up a shutdown.
const FlushTimeout = 10 * time.Second

func (n *Notifier) waitDeliveries(limit time.Duration) {
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		n.log.Warn("notifications still being delivered at shutdown were abandoned")
	}
}

// forget removes the memory of failures sent longer ago than any sink could
// still suppress.
func (n *Notifier) forget() {
	if n.opts.Memory == nil {
		return
	}
	keep := memoryRetention
	for _, s := range n.opts.Sinks() {
		keep = max(keep, s.RepeatInterval)
	}
	keys, err := n.opts.Memory.Keys(memoryNamespace)
	if err != nil {
		n.log.Warn("notification memory", "error", err)
		return
	}
	for _, k := range keys {
		var rec repeatRecord
		if found, err := n.opts.Memory.Get(memoryNamespace, k, &rec); err != nil || !found || n.opts.Now().Sub(rec.Sent) <= keep {
			continue
		}
		if err := n.opts.Memory.Delete(memoryNamespace, k); err != nil {
			n.log.Warn("notification memory", "error", err)
			return
		}
	}
}

// repeatRecord is what the memory keeps per sink and failure.
type repeatRecord struct {
	Kind Kind      `json:"kind"`
	Sent time.Time `json:"sent"`
}

// dispatch starts one delivery per sink that wants e and has not been sent
// the same failure within its repeat interval.
func (n *Notifier) dispatch(e Event) {
	for _, s := range n.opts.Sinks() {
		if len(s.Events) > 0 && !slices.Contains(s.Events, string(e.Kind)) {
			continue
		}
		key := ""
		if e.Kind.Failure() && s.RepeatInterval > 0 && n.opts.Memory != nil {
			key = memoryKey(s, e)
			if n.recentlySent(key, s.RepeatInterval) {
				n.log.Debug("notification suppressed: sent within the repeat interval", "kind", e.Kind, "sink", sinkName(s))
				continue
			}
		}
		n.start(delivery{sink: s, event: e, key: key})
	}
}

// delivery is one event for one sink; key is its repeat memory key, if any.
type delivery struct {
	sink  config.Notify
	event Event
	key   string
}

// start hands d to a delivery goroutine of its sink: a new one while the
// sink has fewer than maxPerSink, else the sink's backlog.
func (n *Notifier) start(d delivery) {
	sk := sinkKey(d.sink)
	n.mu.Lock()
	switch {
	case n.busy[sk] < maxPerSink:
		n.busy[sk]++
		n.wg.Add(1)
		go n.work(sk, d)
	case len(n.backlog[sk]) < maxBacklog:
		n.backlog[sk] = append(n.backlog[sk], d)
	default:
		delete(n.inflight, d.key)
		n.log.Warn("notification dropped: the sink is too far behind", "kind", d.event.Kind, "sink", sinkName(d.sink), "backlog", maxBacklog)
	}
	n.mu.Unlock()
}

// work delivers d, then the sink's backlog, and ends when that is empty.
func (n *Notifier) work(sk string, d delivery) {
	defer n.wg.Done()
	for {
		n.deliver(d.sink, d.event, d.key)
		n.mu.Lock()
		delete(n.inflight, d.key)
		if len(n.backlog[sk]) == 0 {
			delete(n.backlog, sk)
			if n.busy[sk]--; n.busy[sk] <= 0 {
				delete(n.busy, sk)
			}
			n.mu.Unlock()
			return
		}
		d = n.backlog[sk][0]
		n.backlog[sk] = n.backlog[sk][1:]
		n.mu.Unlock()
	}
}

// sinkKey names a sink by a hash: its URL may hold a secret.
func sinkKey(s config.Notify) string {
	sink := sha256.Sum256([]byte(s.Type + "\x00" + s.URL))
	return hex.EncodeToString(sink[:12])
}

// memoryKey is the sink and the event's fingerprint.
func memoryKey(s config.Notify, e Event) string {
	return sinkKey(s) + "-" + e.fingerprint()[:40]
}

// recentlySent reports whether key was delivered less than interval ago or
// is being delivered now; otherwise it marks key in flight.
func (n *Notifier) recentlySent(key string, interval time.Duration) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.inflight[key] {
		return true
	}
	var rec repeatRecord
	found, err := n.opts.Memory.Get(memoryNamespace, key, &rec)
	if err != nil {
		n.log.Warn("notification memory", "error", err) // send rather than lose it
	}
	if found && n.opts.Now().Sub(rec.Sent) < interval {
		return true
	}
	n.inflight[key] = true
	return false
}

// deliver posts e to s, retrying with backoff; the memory is written once it
// got through. A sink that keeps failing is logged and given up on.
func (n *Notifier) deliver(s config.Notify, e Event, key string) {
	body, err := payload(s.Type, e)
	if err != nil {
		n.log.Error("notification payload", "sink", sinkName(s), "error", err)
		return
	}
	backoff := n.opts.Backoff
	for attempt := 1; ; attempt++ {
		err = n.post(s.URL, body)
		if err == nil {
			break
		}
		if attempt == n.opts.Attempts {
			n.log.Warn("notification not delivered; giving up", "kind", e.Kind, "sink", sinkName(s), "attempts", attempt, "error", err)
			return
		}
		time.Sleep(backoff)
		backoff *= 2
	}
	n.log.Debug("notification delivered", "kind", e.Kind, "sink", sinkName(s))
	if key != "" {
		if err := n.opts.Memory.Put(memoryNamespace, key, repeatRecord{Kind: e.Kind, Sent: n.opts.Now()}); err != nil {
			n.log.Warn("notification memory", "error", err)
		}
	}
}

func (n *Notifier) post(rawURL string, body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", redactURLError(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "orca-sync")
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		return redactURLError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}

// redactURLError drops the URL from a *url.Error: chat webhook URLs carry
// their credential in the path.
func redactURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// sinkName names a sink in logs without its URL's path or query, where chat
// webhooks keep their secret.
func sinkName(s config.Notify) string {
	u, err := url.Parse(s.URL)
	if err != nil || u.Host == "" {
		return s.Type
	}
	return s.Type + " " + u.Scheme + "://" + u.Host
}

// payload is the body a sink type expects.
func payload(typ string, e Event) ([]byte, error) {
	switch typ {
	case "slack":
		return json.Marshal(map[string]string{"text": e.Summary()})
	case "discord":
		text := e.Summary()
		if len(text) > 2000 { // Discord's limit for content
			text = text[:1997] + "..."
		}
		return json.Marshal(map[string]string{"content": text})
	}
	return json.Marshal(e)
}
