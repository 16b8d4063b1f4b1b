package reconcile

import (
	"context"
	"errors"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/state"
)

// finish records the outcome of a sync: history, metrics and the log.
func (l *Loop) finish(ctx context.Context, r *run, err error) {
	rec := &r.record
	rec.Finished = time.Now()
	for _, res := range r.results {
		rec.Services = append(rec.Services, state.ServiceResult{
			Project: res.Project, Service: res.Service, Action: string(res.Action), Error: res.Error,
			Started: res.Started, Removed: res.Removed, Duration: res.Duration,
			Repaired: repairedBy(r, res),
		})
	}
	var stalled *stalledError
	switch {
	case err == nil && rec.Error != "":
		rec.Result = ResultFetchFailed // applied the last good checkout
	case err == nil:
		rec.Result = ResultSucceeded
	case errors.As(err, &stalled):
		rec.Result, rec.Error = stalled.result, err.Error()
	case r.desired == nil && r.commit.SHA == "":
		rec.Result, rec.Error = ResultFetchFailed, err.Error()
	default:
		rec.Result, rec.Error = ResultFailed, err.Error()
	}
	l.mu.Lock()
	quiet := rec.ID == 0 && rec.Result == ResultSucceeded && len(r.results) == 0 &&
		l.last.recordedOK == rec.Commit
	l.mu.Unlock()
	// A no-change sync of the commit the history already shows as synced
	// (every quiet tick) is not written: the history keeps what happened,
	// and status still shows the latest sync.
	if !quiet {
		if serr := l.saveRecord(rec); serr != nil {
			l.log.Error("record sync in history", "error", serr)
		}
	}
	l.mu.Lock()
	l.last.record = *rec
	if !quiet {
		l.last.recordedOK = ""
		if rec.Result == ResultSucceeded {
			l.last.recordedOK = rec.Commit
		}
	}
	l.mu.Unlock()

	m := l.opts.Metrics
	m.reconciled(rec.Result, rec.Finished.Sub(rec.Started))
	if rec.Result == ResultSucceeded {
		m.lastSuccess(rec.Finished)
		if len(r.results) > 0 {
			m.commitToReady(rec.Finished.Sub(readySince(r)))
		}
	}
	m.services(l.servicesAfter(ctx, r))
	l.report(r, err)
	attrs := []any{"trigger", rec.Trigger, "commit", short(rec.Commit), "result", rec.Result,
		"plan", rec.Plan, "duration", rec.Finished.Sub(rec.Started).Round(time.Millisecond)}
	if rec.Error != "" {
		l.log.Warn("sync", append(attrs, "error", rec.Error)...)
	} else {
		l.log.Info("sync", attrs...)
	}
}

// servicesAfter is the status of every service after the sync: from the
// sync's own plan when it changed nothing, else read again from Docker.
func (l *Loop) servicesAfter(ctx context.Context, r *run) []ServiceStatus {
	if r.desired == nil || r.plan.HasChanges() {
		st, err := l.Status(ctx)
		if err != nil {
			return nil
		}
		return st.Services
	}
	var out []ServiceStatus
	drifted := diff.ServicesOf(l.lastReport().Findings)
	for _, c := range r.plan.Changes {
		if c.Desired != nil {
			out = append(out, l.withSelfHealing(serviceStatus(c, r.pins, false), c, drifted[c.Key()]))
		}
	}
	return out
}

// saveRecord completes the record written when the sync started, or adds it
// when that write had failed.
func (l *Loop) saveRecord(rec *state.SyncRecord) error {
	if rec.ID != 0 {
		return l.opts.Store.UpdateSync(*rec)
	}
	id, err := l.opts.Store.AddSync(*rec)
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
