package reconcile

import (
	"context"
	"errors"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/state"
)

// record closes a sync: history, metrics, events and commit statuses, the
// pace of the next automatic sync, and the log. An automatic sync held on a
// stalled commit records nothing: the history keeps what happened.
func (s *syncer) record(ctx context.Context, r *run) error {
	rec := &r.record
	rec.Finished = time.Now()
	if errors.Is(r.err, errHeld) {
		held(r, s.pacer)
		s.log.Debug("sync held: the branch head is the stalled commit", "commit", short(r.commit.SHA), "trigger", rec.Trigger)
		return nil
	}
	for _, res := range r.results {
		rec.Services = append(rec.Services, state.ServiceResult{
			Project: res.Project, Service: res.Service, Action: string(res.Action), Error: res.Error,
			Started: res.Started, Removed: res.Removed, Duration: res.Duration,
			Repaired: repairedBy(r, res),
		})
	}
	rec.Result, rec.Error = resultOf(r)
	// A no-change sync of the commit the history already shows as synced
	// (every quiet tick) is not written: the history keeps what happened,
	// and status still shows the latest sync.
	if _, err := s.last.finished(rec, len(r.results) > 0, func() error { return s.history.save(rec) }); err != nil {
		s.log.Error("record sync in history", "error", err)
	}
	s.history.count(ctx, r)
	s.reporter.report(r, r.err)
	s.pace(r)
	attrs := []any{"trigger", rec.Trigger, "commit", short(rec.Commit), "result", rec.Result,
		"plan", rec.Plan, "duration", rec.Finished.Sub(rec.Started).Round(time.Millisecond)}
	if rec.Error != "" {
		s.log.Warn("sync", append(attrs, "error", rec.Error)...)
	} else {
		s.log.Info("sync", attrs...)
	}
	return nil
}

// resultOf is the history's result and error of a finished sync.
func resultOf(r *run) (result, msg string) {
	var stalled *stalledError
	switch err := r.err; {
	case err == nil && r.record.Error != "":
		return ResultFetchFailed, r.record.Error // applied the last good checkout
	case err == nil:
		return ResultSucceeded, ""
	case errors.As(err, &stalled):
		return stalled.result, err.Error()
	case r.desired == nil && r.commit.SHA == "":
		return ResultFetchFailed, err.Error()
	default:
		return ResultFailed, err.Error()
	}
}

// held closes a sync the hold step ended: the record returned says stalled.
func held(r *run, pc *pacer) {
	if st, _ := pc.view(); st != nil {
		r.record.Commit, r.record.Result, r.record.Error = st.Commit, st.Result, "stalled: "+st.Reason
	}
}

// pace tells the pacer how the sync ended: stalled, failed (retry after a
// backoff) or done.
func (s *syncer) pace(r *run) {
	var stalled *stalledError
	now := r.record.Finished
	switch {
	case errors.As(r.err, &stalled):
		s.pacer.stalled(r.commit.SHA, stalled.result, failureReason(stalled.result, r.record.Error, r.err), now)
	case r.err != nil:
		s.pacer.failed(firstLine(r.record.Error), s.interval(), now)
	case r.fetchErr != nil:
		s.pacer.failed("fetch failed: "+firstLine(r.fetchErr.Error()), s.interval(), now)
	default:
		s.pacer.succeeded()
	}
}

// history writes sync records and counts them in the metrics.
type history struct {
	store   Store
	metrics *Metrics
	last    *lastSync
	drift   *driftChecker
	heal    *healer
	// status is the loop's, for the services after a sync that changed some.
	status func(ctx context.Context) (Status, error)
}

// count puts a finished sync in the metrics.
func (h *history) count(ctx context.Context, r *run) {
	rec := &r.record
	m := h.metrics
	m.reconciled(rec.Result, rec.Finished.Sub(rec.Started))
	if rec.Result == ResultSucceeded {
		m.lastSuccess(rec.Finished)
		if len(r.results) > 0 {
			m.commitToReady(rec.Finished.Sub(readySince(r)))
		}
	}
	m.services(h.servicesAfter(ctx, r))
}

// servicesAfter is the status of every service after the sync: from the
// sync's own plan when it changed nothing, else read again from Docker.
func (h *history) servicesAfter(ctx context.Context, r *run) []ServiceStatus {
	if r.desired == nil || r.plan.HasChanges() {
		st, err := h.status(ctx)
		if err != nil {
			return nil
		}
		return st.Services
	}
	var out []ServiceStatus
	drifted := diff.ServicesOf(h.drift.lastReport().Findings)
	for _, c := range r.plan.Changes {
		if c.Desired != nil {
			out = append(out, h.heal.withSelfHealing(serviceStatus(c, r.pins, false, nil), c, drifted[c.Key()]))
		}
	}
	return out
}

// save completes the record written when the sync started, or adds it
// when that write had failed.
func (h *history) save(rec *state.SyncRecord) error {
	if rec.ID != 0 {
		return h.store.UpdateSync(*rec)
	}
	id, err := h.store.AddSync(*rec)
	rec.ID = id
	return err
}

// readySince is when the change became known: the commit's time, or the
// webhook's arrival when that came later (a push of an older commit).
func readySince(r *run) time.Time {
	since := r.commit.Time
	if r.pending.trigger == "webhook" && r.pending.since.After(since) {
		since = r.pending.since
	}
	if since.IsZero() {
		since = r.record.Started
	}
	return since
}

// repairedBy is what drift a service's successful change repaired.
func repairedBy(r *run, res apply.Result) []string {
	if res.Failed() {
		return nil
	}
	return r.repaired[res.Project+"/"+res.Service]
}
