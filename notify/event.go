// Package notify delivers orca-sync's events to the [[notify]] sinks of
// cluster.toml: a generic JSON webhook, Slack and Discord incoming webhooks.
//
// Delivery is asynchronous: Notify only queues, a dispatcher filters the
// event for each sink and hands it to a delivery goroutine that retries a few
// times with backoff. A sink that is down is logged and given up on; it never
// slows a sync. A repeated identical failure is sent at most once per the
// sink's repeat interval, remembered in the state file across restarts.
package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"
)

// Kind names an event, as listed in a sink's events filter.
type Kind string

// The event kinds (docs/reference/events.md). Other packages emit the ones of their
// feature: the loop the sync ones, drift detection drift_detected and
// degraded, the canary controller canary_*, package backup backup_failed.
const (
	SyncSucceeded  Kind = "sync_succeeded"
	SyncFailed     Kind = "sync_failed"
	RolloutFailed  Kind = "rollout_failed"
	Degraded       Kind = "degraded"
	DriftDetected  Kind = "drift_detected"
	CanaryStarted  Kind = "canary_started"
	CanaryStep     Kind = "canary_step"
	CanaryPromoted Kind = "canary_promoted"
	CanaryAborted  Kind = "canary_aborted"
	// JobFailed is a scheduled job's run that did not exit 0 (package jobs).
	JobFailed Kind = "job_failed"
	// BackupFailed is a service's backup that did not write every archive
	// (package backup).
	BackupFailed Kind = "backup_failed"
)

// Failure reports whether k is a failure, whose identical repeats are sent
// once per repeat interval. Successes and progress events are always sent.
func (k Kind) Failure() bool {
	switch k {
	case SyncFailed, RolloutFailed, Degraded, DriftDetected, CanaryAborted, JobFailed, BackupFailed:
		return true
	}
	return false
}

// Event is one notification. It is what a "webhook" sink receives as JSON.
type Event struct {
	Kind Kind `json:"kind"`
	// Cluster is [cluster] name; Node the host that saw the event.
	Cluster string `json:"cluster,omitempty"`
	Node    string `json:"node"`
	// Commit is the git commit concerned, Subject its first message line.
	Commit  string `json:"commit,omitempty"`
	Subject string `json:"subject,omitempty"`
	// Services are "project/name" keys.
	Services []string  `json:"services,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Time     time.Time `json:"time"`
	// Details carry what one kind adds (a canary's weight, drifted fields).
	Details map[string]any `json:"details,omitempty"`
	// Key, when set, is what makes two failures "the same" for repeat
	// suppression instead of Reason, whose details (a container's name or
	// address, a log line) can differ between two occurrences of one
	// failure: e.g. the service and the spec hash that failed to roll out.
	Key string `json:"-"`
}

// fingerprint identifies "the same" event for repeat suppression: kind, node,
// commit, services and Key, or Reason when there is no Key; not the time
// nor the details.
func (e Event) fingerprint() string {
	svcs := slices.Clone(e.Services)
	slices.Sort(svcs)
	same := e.Reason
	if e.Key != "" {
		same = "key:" + e.Key
	}
	h := sha256.New()
	for _, part := range []string{string(e.Kind), e.Node, e.Commit, strings.Join(svcs, ","), same} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Summary is the event as one line for people (chat sinks, logs).
func (e Event) Summary() string {
	var b strings.Builder
	b.WriteString("orca-sync")
	if e.Cluster != "" {
		b.WriteString(" " + e.Cluster)
	}
	b.WriteString("/" + e.Node + ": " + strings.ReplaceAll(string(e.Kind), "_", " "))
	if len(e.Services) > 0 {
		b.WriteString(" " + strings.Join(e.Services, ", "))
	}
	if e.Commit != "" {
		b.WriteString(" at " + e.Commit[:min(len(e.Commit), 12)])
		if e.Subject != "" {
			b.WriteString(" (" + e.Subject + ")")
		}
	}
	if e.Reason != "" {
		b.WriteString(": " + e.Reason)
	}
	return b.String()
}
