package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/orca-sync/orca-sync/api/wire"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/jobs"
	"github.com/orca-sync/orca-sync/state"
)

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
	if err := l.placeStatus(&st, d); err != nil {
		st.NodeError = err.Error()
		return st, nil
	}
	pl := l.planner
	pl.ListTimeout = 10 * time.Second
	res, err := pl.Plan(ctx, d, false)
	if err != nil {
		for _, s := range pl.Own(d).Services() {
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
		ss := l.heal.withSelfHealing(serviceStatus(c, pins, st.Syncing, l.applier.AwaitingReadiness), c, drifted[c.Key()])
		ss = withImage(ss, c, l.last)
		if ss.Job = l.jobs.Status(c.Key()); ss.Job != nil && ss.Job.LastRun != nil && ss.Job.LastRun.Failed() && ss.Reason == "" {
			ss.Reason = "last run: " + jobs.Failure(*ss.Job.LastRun)
		}
		if rec, ok := recs[c.Key()]; ok && l.opts.Canary != nil {
			ss.Canary = l.canaries.status(rec, c.Desired.Service)
			ss.Sync, ss.Reason = SyncProgressing, "canary: "+ss.Canary.Waiting
			stableReady(&ss, c, l.applier.AwaitingReadiness)
		}
		st.Services = append(st.Services, ss)
	}
	return st, nil
}

// placeStatus names this host's node and the services other nodes run; the
// error says the host is not a [[node]] and applies nothing.
func (l *Loop) placeStatus(st *Status, d *config.Desired) error {
	place := l.planner.Place(d)
	st.Node = place.Node
	for _, e := range place.Elsewhere {
		st.Elsewhere = append(st.Elsewhere, wire.Elsewhere{Project: e.Project, Name: e.Name, Nodes: e.Nodes})
	}
	return place.Err()
}

// dockerReason is "Docker: " and what the engine said, without the
// planner's "list containers" prefix.
func dockerReason(err error) string {
	if inner := errors.Unwrap(err); inner != nil {
		err = inner
	}
	return "Docker: " + err.Error()
}

// stableReady makes a canary service's readiness that of its stable set:
// while the canary runs, the stable containers (the previous spec) serve the
// service's replicas, so they are the ones ready counts, and the service is
// Healthy when they all serve (docs/reference/api.md#status).
func stableReady(ss *ServiceStatus, c diff.Change, awaiting func(id string) bool) {
	ss.Ready = 0
	for i, ctr := range c.Containers {
		ready := ctr.Serving() && (awaiting == nil || !awaiting(ctr.ID))
		if ready {
			ss.Ready++
		}
		if i < len(ss.Containers) {
			ss.Containers[i].Ready = ready
		}
	}
	ss.Health = healthOf(ss.Ready, c.Replicas, c.Live)
}

// healthOf is a service's health from its ready and live containers: Healthy
// once ready reaches replicas (a service of 0 replicas is), Missing with
// nothing live, else Degraded.
func healthOf(ready, replicas, live int) string {
	switch {
	case ready >= replicas:
		return HealthHealthy
	case live == 0:
		return HealthMissing
	}
	return HealthDegraded
}

// serviceStatus is the status of one service from its planned change.
// Ready counts the containers of the desired spec that serve and have passed
// readiness: one that awaiting (nil: none) says is still in its readiness
// wait is not ready, and makes the service Progressing until its rollout
// ends either way (docs/reference/api.md#status).
func serviceStatus(c diff.Change, pins map[string]state.Pin, syncing bool, awaiting func(id string) bool) ServiceStatus {
	s := ServiceStatus{Project: c.Project, Name: c.Service, Replicas: c.Replicas, Image: c.Desired.Spec.Image, Sync: SyncSynced}
	waiting := 0
	for _, ctr := range c.Containers {
		ready := false
		switch {
		case ctr.Hash != c.Desired.Hash || !ctr.Serving():
		case awaiting != nil && awaiting(ctr.ID):
			waiting++
		default:
			s.Ready++
			ready = true
		}
		s.Containers = append(s.Containers, wire.ContainerStatus{Name: ctr.Name, State: ctr.State,
			Status: ctr.Status, Role: ctr.Role, Digest: ctr.Digest, Ready: ready})
	}
	s.Health = healthOf(s.Ready, s.Replicas, c.Live)
	if pin, ok := pins[c.Key()]; ok && pin.Hash == c.Desired.Hash {
		s.Sync, s.Reason = SyncFailed, pin.Reason
		return s
	}
	if waiting > 0 {
		s.Sync, s.Reason = SyncProgressing, fmt.Sprintf("rollout: %d new container(s) waiting for readiness", waiting)
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
