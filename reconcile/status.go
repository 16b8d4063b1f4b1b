package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/state"
)

// Sync and health states of a service (docs/reference/api.md).
const (
	SyncSynced      = "Synced"
	SyncOutOfSync   = "OutOfSync"
	SyncProgressing = "Progressing"
	SyncFailed      = "Failed"

	HealthHealthy  = "Healthy"
	HealthDegraded = "Degraded"
	HealthMissing  = "Missing"
	HealthUnknown  = "Unknown"
)

// Status is what `orca-sync status` shows.
type Status struct {
	Commit     string    `json:"commit,omitempty"`
	Message    string    `json:"message,omitempty"`
	CommitTime time.Time `json:"commit_time,omitzero"`
	Syncing    bool      `json:"syncing"`
	// LastSync is the newest sync's record.
	LastSync *state.SyncRecord `json:"last_sync,omitempty"`
	// FetchError is set while the remote cannot be fetched.
	FetchError string `json:"fetch_error,omitempty"`
	// Errors are the validation errors of the newest commit, which was not applied.
	Errors   config.Errors   `json:"errors,omitempty"`
	Services []ServiceStatus `json:"services"`
	// Stalled is set while automatic syncs leave the branch head alone
	// until git or an operator changes something; Retry while they come
	// early, after a backoff, because the last sync failed.
	Stalled *Stall `json:"stalled,omitempty"`
	Retry   *Retry `json:"retry,omitempty"`
}

// ServiceStatus is one service's state on this host.
type ServiceStatus struct {
	Project  string `json:"project"`
	Name     string `json:"name"`
	Sync     string `json:"sync"`
	Health   string `json:"health"`
	Replicas int    `json:"replicas"`
	Ready    int    `json:"ready"`
	Image    string `json:"image,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Drift is how many drift findings the last check had; DriftPolicy is
	// the service's drift setting.
	Drift       int    `json:"drift,omitempty"`
	DriftPolicy string `json:"drift_policy,omitempty"`
	// ProbeError is the last liveness probe failure, "" while it passes.
	ProbeError string `json:"probe_error,omitempty"`
	// Canary is the running canary, if any.
	Canary *CanaryStatus `json:"canary,omitempty"`
}

// Status reads the live containers and compares them with the last valid
// checkout.
func (l *Loop) Status(ctx context.Context) (Status, error) {
	v := l.last.view()
	st := Status{
		Commit: v.commit.SHA, Message: v.commit.Subject(), CommitTime: v.commit.Time,
		Syncing: v.syncing, FetchError: v.fetchErr, Errors: v.errs,
	}
	st.Stalled, st.Retry = l.pacer.view()
	if !v.record.Started.IsZero() {
		rec := v.record
		st.LastSync = &rec
	}
	d := v.desired
	if d == nil {
		return st, nil
	}
	pl := l.planner
	pl.ListTimeout = 10 * time.Second
	res, err := pl.Plan(ctx, d, false)
	if err != nil {
		for _, s := range d.Services() {
			st.Services = append(st.Services, ServiceStatus{Project: s.Project, Name: s.Name, Sync: SyncOutOfSync,
				Health: HealthUnknown, Replicas: s.Replicas, Image: s.Image, Reason: dockerReason(err)})
		}
		return st, nil
	}
	l.last.noteLive(res.Live.All)
	pins, _ := l.opts.Store.Pins()
	recs := l.canaries.records()
	drifted := diff.ServicesOf(l.drift.lastReport().Findings)
	for _, c := range res.Plan.Changes {
		if c.Desired == nil {
			continue
		}
		ss := l.heal.withSelfHealing(serviceStatus(c, pins, st.Syncing), c, drifted[c.Key()])
		if rec, ok := recs[c.Key()]; ok && l.opts.Canary != nil {
			ss.Canary = l.canaries.status(rec, c.Desired.Service)
			ss.Sync, ss.Reason = SyncProgressing, "canary: "+ss.Canary.Waiting
		}
		st.Services = append(st.Services, ss)
	}
	return st, nil
}

// dockerReason is "Docker: " and what the engine said, without the
// planner's "list containers" prefix.
func dockerReason(err error) string {
	if inner := errors.Unwrap(err); inner != nil {
		err = inner
	}
	return "Docker: " + err.Error()
}

func serviceStatus(c diff.Change, pins map[string]state.Pin, syncing bool) ServiceStatus {
	s := ServiceStatus{Project: c.Project, Name: c.Service, Replicas: c.Replicas, Image: c.Desired.Image, Sync: SyncSynced}
	for _, ctr := range c.Containers {
		if ctr.Hash == c.Desired.Hash && ctr.Serving() {
			s.Ready++
		}
	}
	switch {
	case s.Ready >= s.Replicas && s.Replicas > 0:
		s.Health = HealthHealthy
	case s.Replicas == 0:
		s.Health = HealthHealthy
	case c.Live == 0:
		s.Health = HealthMissing
	default:
		s.Health = HealthDegraded
	}
	if pin, ok := pins[c.Key()]; ok && pin.Hash == c.Desired.Hash {
		s.Sync, s.Reason = SyncFailed, pin.Reason
		return s
	}
	if c.Action != diff.ActionNone {
		s.Sync, s.Reason = SyncOutOfSync, fmt.Sprintf("%s pending", c.Action)
		if syncing {
			s.Sync = SyncProgressing
		}
	}
	return s
}
