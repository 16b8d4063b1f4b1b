package reconcile

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/source"
)

func onlyImage(t *testing.T, ids map[string]string) string {
	t.Helper()
	if len(ids) != 1 {
		t.Fatalf("want one container, have %v", ids)
	}
	return ids[firstKey(ids)]
}

// TestStalledCommitWaitsForGit: an invalid commit stalls. Automatic syncs
// leave it alone while the branch head stays on it, even when its files
// would now load; status says stalled and why. An operator's sync, or git
// moving the head, evaluates it again.
func TestStalledCommitWaitsForGit(t *testing.T) {
	ctx := context.Background()
	l, src, rt, db := newTestLoop(t)
	src.write(t, "c1", web("app:v1"))
	l.SyncOnce(ctx, "test")
	src.write(t, "c2", web("app:v2")+"replica = 2\n")
	if rec := l.SyncOnce(ctx, "interval"); rec.Result != ResultInvalid {
		t.Fatalf("invalid commit: %+v", rec)
	}
	st, _ := l.Status(ctx)
	if st.Stalled == nil || st.Stalled.Commit != "c2" || st.Stalled.Result != ResultInvalid ||
		!strings.HasPrefix(st.Stalled.Reason, "invalid: services/p/service.toml:") || st.Retry != nil {
		t.Fatalf("status of a stalled commit: stalled %+v, retry %+v", st.Stalled, st.Retry)
	}

	// Same commit, files that would load: a sync that re-loaded would deploy v2.
	src.write(t, "c2", web("app:v2"))
	for _, trigger := range []string{"interval", "event", "liveness", "canary"} {
		rec := l.SyncOnce(ctx, trigger)
		if rec.Result != ResultInvalid || rec.Commit != "c2" || !strings.HasPrefix(rec.Error, "stalled: invalid: ") {
			t.Fatalf("%s sync of the stalled commit: %+v", trigger, rec)
		}
		if img := onlyImage(t, rt.IDs("web")); img != "app:v1" {
			t.Fatalf("%s sync re-loaded the stalled commit: running %s", trigger, img)
		}
	}
	recs, _ := db.History(10)
	if len(recs) != 2 || recs[0].Commit != "c2" || recs[0].Result != ResultInvalid {
		t.Fatalf("history after held syncs = %+v, want c1 and one invalid c2", recs)
	}
	if st, _ := l.Status(ctx); st.Stalled == nil || st.LastSync == nil || st.LastSync.Result != ResultInvalid {
		t.Fatalf("status after held syncs: stalled %+v, last %+v", st.Stalled, st.LastSync)
	}

	l.Trigger("api", false) // `orca-sync sync`
	if rec := l.SyncOnce(ctx, ""); rec.Result != ResultSucceeded || onlyImage(t, rt.IDs("web")) != "app:v2" {
		t.Fatalf("an operator's sync did not evaluate the commit again: %+v", rec)
	}
	if st, _ := l.Status(ctx); st.Stalled != nil {
		t.Fatalf("still stalled after a good sync: %+v", st.Stalled)
	}

	src.write(t, "c3", web("app:v3")+"replica = 2\n")
	l.SyncOnce(ctx, "interval")
	src.write(t, "c4", web("app:v4"))
	if rec := l.SyncOnce(ctx, "interval"); rec.Result != ResultSucceeded || onlyImage(t, rt.IDs("web")) != "app:v4" {
		t.Fatalf("a new commit after a stall was not synced: %+v", rec)
	}
}

// TestFailedSyncRetriesAfterBackoff: a failed sync schedules the next one
// after 5 s, doubling with each failure in a row up to the interval, and
// status shows when; a good sync goes back to the interval.
func TestFailedSyncRetriesAfterBackoff(t *testing.T) {
	ctx := context.Background()
	const interval = 15 * time.Second
	l, src, _, _ := newTestLoop(t, func(o *Options) { o.Interval = interval })
	src.err = errors.New("remote unreachable")
	for i, want := range []time.Duration{5 * time.Second, 10 * time.Second, interval, interval} {
		rec := l.SyncOnce(ctx, "interval")
		st, _ := l.Status(ctx)
		if r := st.Retry; r == nil || r.Failures != i+1 || r.NextAttempt.Sub(rec.Finished) != want ||
			r.Backoff != want.String() || !strings.Contains(r.Reason, "remote unreachable") {
			t.Fatalf("failure %d: retry %+v after a sync that finished at %v, want the next in %v", i+1, st.Retry, rec.Finished, want)
		}
		if got := l.pacer.wait(interval, rec.Finished); got != want {
			t.Fatalf("failure %d: the loop waits %v, want %v", i+1, got, want)
		}
	}
	src.err = nil
	src.write(t, "c1", web("app:v1"))
	if rec := l.SyncOnce(ctx, "interval"); rec.Result != ResultSucceeded {
		t.Fatalf("sync: %+v", rec)
	}
	if st, _ := l.Status(ctx); st.Retry != nil || l.pacer.wait(interval, time.Now()) != interval {
		t.Fatalf("after a good sync: retry %+v", st.Retry)
	}
	// A failed fetch with a checkout to go on with still retries early.
	src.err = errors.New("remote unreachable")
	rec := l.SyncOnce(ctx, "interval")
	if st, _ := l.Status(ctx); rec.Result != ResultFetchFailed || st.Retry == nil || st.Retry.Failures != 1 ||
		st.Retry.Reason != "fetch failed: remote unreachable" {
		t.Fatalf("fetch failure with a checkout: %s, retry %+v", rec.Result, st.Retry)
	}
}

// flakySource fails its first fetches, then serves its checkout.
type flakySource struct {
	*dirSource
	mu    sync.Mutex
	fails int
	calls atomic.Int32
}

func (s *flakySource) Sync(ctx context.Context) (source.Commit, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails > 0 {
		s.fails--
		return source.Commit{}, errors.New("remote unreachable")
	}
	return s.dirSource.Sync(ctx)
}

// TestRunRetriesBeforeTheInterval: with an hour's interval, Run tries
// again after the backoff until a sync succeeds, then waits.
func TestRunRetriesBeforeTheInterval(t *testing.T) {
	src := &flakySource{fails: 2}
	l, _, rt, _ := newTestLoop(t, func(o *Options) {
		src.dirSource = o.Source.(*dirSource)
		o.Source, o.Interval = src, time.Hour
	})
	src.write(t, "c1", web("app:v1"))
	l.pacer.base = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for len(rt.IDs("web")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no deploy after %d fetches: the failed start was not retried", src.calls.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := src.calls.Load(); n != 3 {
		t.Fatalf("%d fetches, want two failures and the good one", n)
	}
}
