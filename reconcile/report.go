package reconcile

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/notify"
	"github.com/orca-sync/orca-sync/planner"
)

// reporter tells the notifier and the commit statuses what each sync did.
type reporter struct {
	notifier Notifier
	statuses CommitStatuses
	last     *lastSync
	planner  planner.Planner

	mu sync.Mutex
	// statusCommit is the newest commit given a final commit status.
	statusCommit string
}

// pending sets the commit status to pending as the apply starts.
func (rp *reporter) pending(r *run) {
	rp.statuses.CommitStatus(r.commit.SHA, "pending", "applying: "+r.record.Plan)
	r.pendingSent = true
}

// report tells what a finished sync did. A rollout failure is one
// rollout_failed event per service; any other failure (invalid commit,
// refused prune, Docker or git unreachable) is sync_failed; a sync that
// changed something and failed nothing is sync_succeeded. Quiet ticks send
// nothing.
func (rp *reporter) report(r *run, err error) {
	rec := r.record
	cluster := config.DefaultCluster()
	if d := rp.last.desiredOf(); d != nil {
		cluster = d.Cluster
	}
	node := rp.planner.NodeOf(r.desired)
	if r.desired == nil {
		node = rp.planner.NodeOf(rp.last.desiredOf())
	}
	base := notify.Event{Node: node, Cluster: cluster.Name, Commit: rec.Commit, Subject: rec.Message, Time: rec.Finished}
	var rolloutFailures []string
	for _, res := range r.results {
		if !res.Failed() {
			continue
		}
		key := res.Project + "/" + res.Service
		rolloutFailures = append(rolloutFailures, key+": "+firstLine(res.Error))
		e := base
		e.Kind, e.Services, e.Reason = notify.RolloutFailed, []string{key}, firstLine(res.Error)
		e.Details = map[string]any{"action": string(res.Action), "error": res.Error}
		// The same spec failing again (sync --retry) is the same failure,
		// though its error names other containers.
		e.Key = string(res.Action) + " " + hashOf(r.plan, res)
		rp.notifier.Notify(e)
	}
	reason := failureReason(rec.Result, rec.Error, err)
	switch {
	case rec.Result == ResultSucceeded && len(r.results) > 0:
		e := base
		e.Kind, e.Reason = notify.SyncSucceeded, rec.Plan
		for _, res := range r.results {
			e.Services = append(e.Services, res.Project+"/"+res.Service)
		}
		rp.notifier.Notify(e)
	case len(rolloutFailures) == 0 && rec.Result != ResultSucceeded:
		e := base
		e.Kind, e.Reason = notify.SyncFailed, reason
		e.Details = map[string]any{"result": rec.Result}
		rp.notifier.Notify(e)
	}
	rp.finalStatus(r, rolloutFailures, reason)
}

// finalStatus sets the commit status of a sync's commit: after every apply,
// and once for a commit that needed none or was refused. A failed fetch says
// nothing about the commit applied, and is not reported.
func (rp *reporter) finalStatus(r *run, rolloutFailures []string, reason string) {
	rec := r.record
	if rec.Commit == "" || rec.Result == ResultFetchFailed && !r.pendingSent {
		return
	}
	rp.mu.Lock()
	seen := rp.statusCommit == rec.Commit
	rp.statusCommit = rec.Commit
	rp.mu.Unlock()
	if seen && !r.pendingSent {
		return
	}
	switch {
	case len(rolloutFailures) > 0:
		desc := rolloutFailures[0]
		if len(rolloutFailures) > 1 {
			desc = fmt.Sprintf("%d services failed; %s", len(rolloutFailures), desc)
		}
		rp.statuses.CommitStatus(rec.Commit, "failure", desc)
	case rec.Result == ResultSucceeded || rec.Result == ResultFetchFailed:
		desc := "in sync: nothing to change on this host"
		if len(r.results) > 0 {
			desc = "deployed: " + rec.Plan
		}
		rp.statuses.CommitStatus(rec.Commit, "success", desc)
	default:
		rp.statuses.CommitStatus(rec.Commit, "failure", reason)
	}
}

// failureReason is one line saying why a sync failed: for an invalid commit
// its first validation error.
func failureReason(result, recErr string, err error) string {
	var errs config.Errors
	if result == ResultInvalid && errors.As(err, &errs) && len(errs) > 0 {
		msg := "invalid: " + errs[0].Error()
		if len(errs) > 1 {
			msg += fmt.Sprintf(" (and %d more)", len(errs)-1)
		}
		return msg
	}
	return firstLine(strings.TrimSpace(recErr))
}
