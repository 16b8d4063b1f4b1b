package reconcile

import (
	"errors"
	"sync"
	"time"
)

// A sync ends in one of three ways, and the way decides what happens next
// (docs/guides/drift-and-healing.md):
//   - success: the next automatic sync comes after the interval;
//   - stalled (stalledError): only a new commit or an operator can fix it
//     (an invalid commit, a refused mass prune); automatic syncs fetch git
//     but leave the commit alone while the head stays on it;
//   - retry after a backoff (any other error, or a failed fetch): the next
//     automatic sync comes after backoffBase, doubling with each failure in
//     a row, never later than the interval.

// stalledError is a problem only a new commit (or an operator) can fix.
type stalledError struct {
	result string
	err    error
}

func (e *stalledError) Error() string { return e.err.Error() }
func (e *stalledError) Unwrap() error { return e.err }

// errHeld ends an automatic sync of a stalled commit that git has not moved.
var errHeld = errors.New("stalled: the branch head is still the stalled commit")

// backoffBase is the first retry delay after a failed sync.
const backoffBase = 5 * time.Second

// pacer decides when the next automatic sync comes, and whether it may
// touch the commit: it owns the stall and the retry backoff.
type pacer struct {
	mu    sync.Mutex
	base  time.Duration
	stall *Stall
	retry *Retry
}

func newPacer() *pacer { return &pacer{base: backoffBase} }

// holds reports whether a sync of commit with p must leave it alone: it is
// the stalled commit and nobody asked for this sync.
func (pc *pacer) holds(commit string, p pending) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.stall != nil && pc.stall.Commit == commit && !p.explicit && !p.retry &&
		len(p.redeploy) == 0 && len(p.refresh) == 0
}

// stalled records that commit cannot be synced until git or an operator
// changes something; automatic syncs then come at the interval.
func (pc *pacer) stalled(commit, result, reason string, now time.Time) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.stall == nil || pc.stall.Commit != commit || pc.stall.Reason != reason {
		pc.stall = &Stall{Commit: commit, Result: result, Reason: reason, Since: now}
	}
	pc.retry = nil
}

// failed schedules a retry after the backoff of one more failure in a row,
// at most interval.
func (pc *pacer) failed(reason string, interval time.Duration, now time.Time) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	n := 1
	if pc.retry != nil {
		n = pc.retry.Failures + 1
	}
	d := pc.base
	for i := 1; i < n && d < interval; i++ {
		d *= 2
	}
	d = min(d, interval)
	pc.stall = nil
	pc.retry = &Retry{Failures: n, Reason: reason, Backoff: d.String(), NextAttempt: now.Add(d)}
}

// succeeded clears the stall and the backoff.
func (pc *pacer) succeeded() {
	pc.mu.Lock()
	pc.stall, pc.retry = nil, nil
	pc.mu.Unlock()
}

// wait is how long from now until the next automatic sync.
func (pc *pacer) wait(interval time.Duration, now time.Time) time.Duration {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.retry != nil {
		return max(0, pc.retry.NextAttempt.Sub(now))
	}
	return interval
}

// view is the stall and the retry for status, copies.
func (pc *pacer) view() (*Stall, *Retry) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	var s *Stall
	var r *Retry
	if pc.stall != nil {
		c := *pc.stall
		s = &c
	}
	if pc.retry != nil {
		c := *pc.retry
		r = &c
	}
	return s, r
}
