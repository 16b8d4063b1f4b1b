// Package wire is the JSON bodies of orca-sync's HTTP API
// (docs/reference/api.md): what the daemon answers and the CLI reads. It
// knows neither the daemon nor the HTTP server, so both the API (package
// api), the loop (package reconcile) and the client commands use the same
// types, and the client prints them with the Write functions.
package wire

import (
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

// Status is GET /api/v1/status: what `orca-sync status` shows.
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
	// Backups are the last backup of each volume backed up since the state
	// file was made (docs/guides/backups.md).
	Backups []BackupStatus `json:"backups,omitempty"`
	// Node is this host's node name. NodeError is set when cluster.toml
	// declares [[node]] entries and none is this node: the host applies
	// nothing. Elsewhere are the services other nodes run
	// (docs/guides/several-hosts.md).
	Node      string      `json:"node,omitempty"`
	NodeError string      `json:"node_error,omitempty"`
	Elsewhere []Elsewhere `json:"elsewhere,omitempty"`
}

// Elsewhere is a service of the checkout placed on other nodes only.
type Elsewhere struct {
	Project string   `json:"project"`
	Name    string   `json:"name"`
	Nodes   []string `json:"nodes"`
}

// Stall is a commit automatic syncs leave alone: an invalid commit or a
// refused mass prune. A new commit, `orca-sync sync` or `sync --retry`
// ends it.
type Stall struct {
	Commit string `json:"commit"`
	// Result is the history's result of the sync that stalled.
	Result string    `json:"result"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// Retry is the early sync after failed ones (git or Docker unreachable, a
// failed rollout): the backoff doubles with each failure in a row, up to
// the interval.
type Retry struct {
	Failures    int       `json:"failures"`
	Reason      string    `json:"reason"`
	Backoff     string    `json:"backoff"`
	NextAttempt time.Time `json:"next_attempt"`
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
	// Digest is the registry digest of the image the service runs
	// ("sha256:…"), "" when unknown (an image built on the host).
	Digest string `json:"digest,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Drift is how many drift findings the last check had; DriftPolicy is
	// the service's drift setting.
	Drift       int    `json:"drift,omitempty"`
	DriftPolicy string `json:"drift_policy,omitempty"`
	// ProbeError is the last liveness probe failure, "" while it passes.
	ProbeError string `json:"probe_error,omitempty"`
	// Canary is the running canary, if any.
	Canary *CanaryStatus `json:"canary,omitempty"`
	// Job is set for a scheduled job: its last and next run.
	Job *JobStatus `json:"job,omitempty"`
	// Containers are the service's live replica containers.
	Containers []ContainerStatus `json:"containers,omitempty"`
}

// ContainerStatus is one live container of a service.
type ContainerStatus struct {
	Name string `json:"name"`
	// State is Docker's (running, exited, …); Status its words ("Up 5
	// minutes"), which say since when.
	State  string `json:"state"`
	Status string `json:"status,omitempty"`
	Role   string `json:"role,omitempty"`
	Digest string `json:"digest,omitempty"`
	// Ready: of the desired spec, serving and past its readiness wait.
	Ready bool `json:"ready"`
}

// CanaryStatus is a running canary as status shows it.
type CanaryStatus struct {
	Phase       string      `json:"phase"`
	Step        int         `json:"step"`
	Steps       int         `json:"steps"`
	Weight      int         `json:"weight"`
	Hash        string      `json:"spec_hash"`
	Containers  []string    `json:"containers"`
	Names       []string    `json:"names"`
	StepStarted time.Time   `json:"step_started"`
	Canary      RoleFigures `json:"canary"`
	Stable      RoleFigures `json:"stable"`
	Waiting     string      `json:"waiting_for"`
}

// RoleFigures are one role's figures during the current canary step.
type RoleFigures struct {
	Requests  uint64  `json:"requests"`
	Errors    uint64  `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	P95Ms     float64 `json:"p95_ms"`
}

// DriftReport is GET /api/v1/drift: what `orca-sync drift` shows.
type DriftReport struct {
	Commit  string    `json:"commit,omitempty"`
	Checked time.Time `json:"checked,omitzero"`
	// Syncing is set when a sync is under way: the report is then the one
	// its start computed, as a check mid-rollout would take containers
	// being started or retired for drift.
	Syncing  bool           `json:"syncing,omitempty"`
	Error    string         `json:"error,omitempty"`
	Findings []diff.Finding `json:"findings"`
	// Policies maps each drifted service to its drift policy.
	Policies map[string]string `json:"policies,omitempty"`
}

// RefPlan is the plan of a ref's head (a pull request) against the live
// host: what merging it would do. An invalid head has Errors and no Plan.
type RefPlan struct {
	Ref     string        `json:"ref"`
	Commit  string        `json:"commit"`
	Subject string        `json:"subject,omitempty"`
	Valid   bool          `json:"valid"`
	Errors  config.Errors `json:"errors,omitempty"`
	Plan    *diff.Plan    `json:"plan,omitempty"`
	// Changes counts the services the plan changes.
	Changes int `json:"changes"`
	// Text is the plan as `orca-sync plan` prints it, or the validation
	// errors one per line.
	Text string `json:"text"`
}

// PRPlan is GET /api/v1/plan?pr=N: the plan of pull request N's head.
type PRPlan struct {
	Number int `json:"number"`
	RefPlan
}

// PRPlanRecord is the latest plan serve made of a pull request's head (for
// the GitHub reporter or on demand), kept in state.db until the pull request
// is closed: the dashboard's Pull requests page lists them. Text is RefPlan's,
// the same text the API serves.
type PRPlanRecord struct {
	Number  int       `json:"number"`
	Planned time.Time `json:"planned"`
	Commit  string    `json:"commit"`
	Subject string    `json:"subject,omitempty"`
	Valid   bool      `json:"valid"`
	Changes int       `json:"changes"`
	Text    string    `json:"text"`
}
