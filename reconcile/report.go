package reconcile

import (
	"errors"
	"fmt"
	"strings"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/notify"
)

// report tells the notifier and the commit statuses what a finished sync
// did. A rollout failure is one rollout_failed event per service; any other
// failure (invalid commit, refused prune, Docker or git unreachable) is
// sync_failed; a sync that changed something and failed nothing is
// sync_succeeded. Quiet ticks send nothing.
func (l *Loop) report(r *run, err error) {
	rec := r.record
	base := notify.Event{Node: l.nodeName(r), Cluster: l.Cluster().Name, Commit: rec.Commit, Subject: rec.Message, Time: rec.Finished}
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
		l.opts.Notifier.Notify(e)
	}
	reason := failureReason(rec.Result, rec.Error, err)
	switch {
	case rec.Result == ResultSucceeded && len(r.results) > 0:
		e := base
		e.Kind, e.Reason = notify.SyncSucceeded, rec.Plan
		for _, res := range r.results {
			e.Services = append(e.Services, res.Project+"/"+res.Service)
		}
		l.opts.Notifier.Notify(e)
	case len(rolloutFailures) == 0 && rec.Result != ResultSucceeded:
		e := base
		e.Kind, e.Reason = notify.SyncFailed, reason
		e.Details = map[string]any{"result": rec.Result}
		l.opts.Notifier.Notify(e)
	}
	l.finalStatus(r, rolloutFailures, reason)
}

// finalStatus sets the commit status of a sync's commit: after every apply,
// and once for a commit that needed none or was refused. A failed fetch says
// nothing about the commit applied, and is not reported.
func (l *Loop) finalStatus(r *run, rolloutFailures []string, reason string) {
	rec := r.record
	if rec.Commit == "" || rec.Result == ResultFetchFailed && !r.pendingSent {
		return
	}
	l.mu.Lock()
	seen := l.last.statusCommit == rec.Commit
	l.last.statusCommit = rec.Commit
	l.mu.Unlock()
	if seen && !r.pendingSent {
		return
	}
	switch {
	case len(rolloutFailures) > 0:
		desc := rolloutFailures[0]
		if len(rolloutFailures) > 1 {
			desc = fmt.Sprintf("%d services failed; %s", len(rolloutFailures), desc)
		}
		l.opts.Statuses.CommitStatus(rec.Commit, "failure", desc)
	case rec.Result == ResultSucceeded || rec.Result == ResultFetchFailed:
		desc := "in sync: nothing to change on this host"
		if len(r.results) > 0 {
			desc = "deployed: " + rec.Plan
		}
		l.opts.Statuses.CommitStatus(rec.Commit, "success", desc)
	default:
		l.opts.Statuses.CommitStatus(rec.Commit, "failure", reason)
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

// nodeName is this host's node as the sync's checkout names it.
func (l *Loop) nodeName(r *run) string {
	if r.desired != nil {
		return apply.NodeName(l.opts.Node, r.desired)
	}
	return l.Node()
}

// Node is this host's node name: --node, else [cluster] node of the last
// valid checkout, else the host name.
func (l *Loop) Node() string { return apply.NodeName(l.opts.Node, l.lastDesired()) }
