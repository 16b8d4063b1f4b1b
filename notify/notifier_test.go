package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/state"
)

// sink is a test server recording every body it receives.
type sink struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []map[string]any
	code   int
	got    chan struct{}
}

func newSink(t *testing.T, code int) *sink {
	s := &sink{code: code, got: make(chan struct{}, 100)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var m map[string]any
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(raw, &m) != nil {
			t.Errorf("sink got %s %s %q", r.Method, r.Header.Get("Content-Type"), raw)
		}
		s.mu.Lock()
		s.bodies = append(s.bodies, m)
		s.mu.Unlock()
		w.WriteHeader(s.code)
		s.got <- struct{}{}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sink) received() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.bodies...)
}

func (s *sink) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-s.got:
		case <-time.After(10 * time.Second):
			t.Fatalf("sink got %d requests, want %d", len(s.received()), n)
		}
	}
}

// run starts n and returns a function that stops it and waits for every
// delivery.
func run(n *Notifier) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func openDB(t *testing.T, path string) *state.DB {
	t.Helper()
	db, err := state.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestSinksReceiveTheirPayloadAndFilter(t *testing.T) {
	hook, slack, discord := newSink(t, 200), newSink(t, 200), newSink(t, 204)
	sinks := []config.Notify{
		{Type: "webhook", URL: hook.URL + "/hook"},
		{Type: "slack", URL: slack.URL + "/services/T/B/X", Events: []string{"rollout_failed"}},
		{Type: "discord", URL: discord.URL + "/api/webhooks/1/x", Events: []string{"sync_succeeded"}},
	}
	n := New(Options{Sinks: func() []config.Notify { return sinks }, Backoff: time.Millisecond})
	stop := run(n)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	n.Notify(Event{Kind: SyncSucceeded, Node: "n1", Commit: "0123456789abcdef", Subject: "web v2", Services: []string{"shop/web"}, Time: at})
	n.Notify(Event{Kind: RolloutFailed, Node: "n1", Commit: "0123456789abcdef", Services: []string{"shop/api"}, Reason: "not ready within 20s", Time: at})
	stop()

	got := hook.received()
	if len(got) != 2 {
		t.Fatalf("webhook sink got %d events, want 2: %v", len(got), got)
	}
	byKind := map[string]map[string]any{}
	for _, b := range got {
		byKind[b["kind"].(string)] = b
	}
	ok := byKind["sync_succeeded"]
	if ok["node"] != "n1" || ok["commit"] != "0123456789abcdef" || ok["subject"] != "web v2" ||
		ok["time"] != "2026-01-02T03:04:05Z" || len(ok["services"].([]any)) != 1 || ok["services"].([]any)[0] != "shop/web" {
		t.Errorf("sync_succeeded = %v", ok)
	}
	if f := byKind["rollout_failed"]; f["reason"] != "not ready within 20s" || f["services"].([]any)[0] != "shop/api" {
		t.Errorf("rollout_failed = %v", f)
	}
	if s := slack.received(); len(s) != 1 || s[0]["text"] != "orca-sync/n1: rollout failed shop/api at 0123456789ab: not ready within 20s" {
		t.Errorf("slack got %v", s)
	}
	if d := discord.received(); len(d) != 1 || d[0]["content"] != "orca-sync/n1: sync succeeded shop/web at 0123456789ab (web v2)" {
		t.Errorf("discord got %v", d)
	}
}

func TestFailingSinkIsRetriedThenGivenUp(t *testing.T) {
	bad, good := newSink(t, 500), newSink(t, 200)
	sinks := []config.Notify{{Type: "webhook", URL: bad.URL}, {Type: "webhook", URL: good.URL}}
	n := New(Options{Sinks: func() []config.Notify { return sinks }, Attempts: 3, Backoff: time.Millisecond})
	stop := run(n)
	n.Notify(Event{Kind: SyncFailed, Node: "n1", Reason: "boom"})
	stop()
	if got := len(bad.received()); got != 3 {
		t.Errorf("500 sink got %d attempts, want 3", got)
	}
	if got := len(good.received()); got != 1 {
		t.Errorf("healthy sink got %d deliveries, want 1", got)
	}
}

// TestNotifyDoesNotWaitForASlowSink: with the sink's handler stuck on its
// first delivery, Notify returns for as many events as the sink can have
// under way or in its backlog — before the handler is let go, which is only
// after those calls returned — and once it is, every one is delivered.
func TestNotifyDoesNotWaitForASlowSink(t *testing.T) {
	const events = maxPerSink + maxBacklog // none dropped
	release := make(chan struct{})
	arrived := make(chan string, 2*events)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e map[string]any
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			t.Errorf("sink got %v", err)
		}
		commit, _ := e["commit"].(string)
		arrived <- commit
		<-release
	}))
	defer slow.Close()
	n := New(Options{Sinks: func() []config.Notify { return []config.Notify{{Type: "webhook", URL: slow.URL}} },
		Attempts: 1, AttemptTimeout: time.Hour})
	stop := run(n)
	defer stop()
	released := false
	defer func() { // before stop, which waits for the deliveries
		if !released {
			close(release)
		}
	}()
	stuck, returned := make(chan struct{}), make(chan struct{})
	go func() {
		n.Notify(Event{Kind: SyncSucceeded, Node: "n1", Commit: "c0"})
		<-stuck
		for i := 1; i < events; i++ {
			n.Notify(Event{Kind: SyncSucceeded, Node: "n1", Commit: fmt.Sprintf("c%d", i)})
		}
		close(returned)
	}()
	got := map[string]bool{}
	select {
	case c := <-arrived:
		got[c] = true
	case <-testDeadline(t):
		t.Fatal("the first event never reached the sink")
	}
	close(stuck) // the sink's handler holds the first delivery
	select {
	case <-returned:
	case <-testDeadline(t):
		t.Fatal("Notify did not return while the sink's handler was stuck")
	}
	close(release) // only now can the handler answer
	released = true

	for len(got) < events {
		select {
		case c := <-arrived:
			got[c] = true
		case <-testDeadline(t):
			t.Fatalf("the sink got %d of %d events once released", len(got), events)
		}
	}
}

// testDeadline fires shortly before the test binary's -timeout, so that a
// test waiting for something that never happens fails saying what it waited
// for instead of being killed; without a timeout it never fires.
func testDeadline(t *testing.T) <-chan time.Time {
	d, ok := t.Deadline()
	if !ok {
		return nil
	}
	return time.After(time.Until(d) * 9 / 10)
}

func TestRepeatedFailureOncePerIntervalAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	hook := newSink(t, 200)
	sinks := []config.Notify{{Type: "webhook", URL: hook.URL, RepeatInterval: time.Hour}}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	fail := Event{Kind: SyncFailed, Node: "n1", Commit: "c1", Reason: "invalid"}

	db := openDB(t, path)
	n := New(Options{Sinks: func() []config.Notify { return sinks }, Memory: db, Now: clock})
	stop := run(n)
	n.Notify(fail)
	hook.wait(t, 1)
	n.Notify(fail)                                                                 // same failure: suppressed
	n.Notify(Event{Kind: SyncFailed, Node: "n1", Commit: "c2", Reason: "invalid"}) // another commit: sent
	n.Notify(Event{Kind: SyncSucceeded, Node: "n1", Commit: "c3"})                 // not a failure: always sent
	stop()
	db.Close()
	if got := len(hook.received()); got != 3 {
		t.Fatalf("before restart the sink got %d events, want 3: %v", got, hook.received())
	}

	db = openDB(t, path) // a restarted orca-sync
	defer db.Close()
	n = New(Options{Sinks: func() []config.Notify { return sinks }, Memory: db, Now: clock})
	now = now.Add(59 * time.Minute)
	stop = run(n)
	n.Notify(fail)
	stop()
	if got := len(hook.received()); got != 3 {
		t.Fatalf("after a restart within the interval the failure was sent again: %v", hook.received())
	}
	now = now.Add(2 * time.Minute)
	stop = run(n)
	n.Notify(fail)
	stop()
	if got := len(hook.received()); got != 4 {
		t.Fatalf("after the interval the failure was not sent again: %d events", got)
	}
}

func TestRepeatOfAFailureThatWasNotDeliveredIsSent(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "state.db"))
	defer db.Close()
	hook := newSink(t, 500)
	sinks := []config.Notify{{Type: "webhook", URL: hook.URL, RepeatInterval: time.Hour}}
	n := New(Options{Sinks: func() []config.Notify { return sinks }, Memory: db, Attempts: 1, Backoff: time.Millisecond})
	fail := Event{Kind: RolloutFailed, Node: "n1", Commit: "c1", Services: []string{"p/web"}, Reason: "x"}
	stop := run(n)
	n.Notify(fail)
	stop()
	hook.code = 200
	stop = run(n)
	n.Notify(fail)
	stop()
	if got := len(hook.received()); got != 2 {
		t.Fatalf("sink got %d requests, want 2 (the failed one and its repeat)", got)
	}
}

func TestOldMemoryIsForgotten(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "state.db"))
	defer db.Close()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	db.Put(memoryNamespace, "old", repeatRecord{Kind: SyncFailed, Sent: now.Add(-31 * 24 * time.Hour)})
	db.Put(memoryNamespace, "recent", repeatRecord{Kind: SyncFailed, Sent: now.Add(-time.Hour)})
	n := New(Options{Memory: db, Now: func() time.Time { return now }})
	run(n)()
	if keys, _ := db.Keys(memoryNamespace); len(keys) != 1 || keys[0] != "recent" {
		t.Fatalf("memory keys after Run = %v, want [recent]", keys)
	}
}

var _ Memory = (*state.DB)(nil)

func TestKeyMakesFailuresWithOtherDetailsTheSame(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "state.db"))
	defer db.Close()
	hook := newSink(t, 200)
	sinks := []config.Notify{{Type: "webhook", URL: hook.URL, RepeatInterval: time.Hour}}
	n := New(Options{Sinks: func() []config.Notify { return sinks }, Memory: db})
	ev := func(reason, key string) Event {
		return Event{Kind: RolloutFailed, Node: "n1", Commit: "c1", Services: []string{"p/web"}, Reason: reason, Key: key}
	}
	stop := run(n)
	n.Notify(ev("container p-web-1 at 10.0.0.2 not ready", "update h1"))
	hook.wait(t, 1)
	n.Notify(ev("container p-web-2 at 10.0.0.3 not ready", "update h1")) // the same spec failing again
	n.Notify(ev("container p-web-3 at 10.0.0.4 not ready", "update h2")) // another spec
	stop()
	got := hook.received()
	if len(got) != 2 || got[1]["reason"] != "container p-web-3 at 10.0.0.4 not ready" {
		t.Fatalf("sink got %v, want the first failure and the one of another spec", got)
	}
	if _, ok := got[0]["Key"]; ok {
		t.Fatalf("the key is part of the payload: %v", got[0])
	}
}

// TestHungSinkHoldsABoundedNumberOfDeliveries: events for a sink that never
// answers do not pile up goroutines and connections past maxPerSink (the
// rest wait in its backlog), and a healthy sink beside it still gets every
// event of a burst.
func TestHungSinkHoldsABoundedNumberOfDeliveries(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	arrived := 0
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived++
		mu.Unlock()
		<-release
	}))
	defer hung.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	good := newSink(t, 200)
	sinks := []config.Notify{{Type: "webhook", URL: hung.URL}, {Type: "webhook", URL: good.URL}}
	n := New(Options{Sinks: func() []config.Notify { return sinks }, Attempts: 1})
	stop := run(n)
	const events = maxPerSink + maxBacklog
	for range events {
		n.Notify(Event{Kind: SyncSucceeded, Node: "n1"})
	}
	good.wait(t, events)
	mu.Lock()
	atOnce := arrived
	mu.Unlock()
	close(release)
	stop()
	if atOnce > maxPerSink {
		t.Fatalf("the hung sink was sent %d requests at once, want at most %d", atOnce, maxPerSink)
	}
	mu.Lock()
	defer mu.Unlock()
	if arrived != events {
		t.Fatalf("once the sink answered it got %d of %d events, want the backlog delivered", arrived, events)
	}
}
