package reconcile

import "github.com/orca-sync/orca-sync/api/wire"

// The loop answers in the API's wire types; these names keep reconcile's
// users (cmd, e2e) reading them as before.
type (
	Status        = wire.Status
	ServiceStatus = wire.ServiceStatus
	CanaryStatus  = wire.CanaryStatus
	RoleFigures   = wire.RoleFigures
	DriftReport   = wire.DriftReport
	RefPlan       = wire.RefPlan
	PRPlanRecord  = wire.PRPlanRecord
	Stall         = wire.Stall
	Retry         = wire.Retry
	JobRun        = wire.JobRun
	JobStatus     = wire.JobStatus
)

// Sync and health states of a service (docs/reference/api.md).
const (
	SyncSynced      = wire.SyncSynced
	SyncOutOfSync   = wire.SyncOutOfSync
	SyncProgressing = wire.SyncProgressing
	SyncFailed      = wire.SyncFailed

	HealthHealthy  = wire.HealthHealthy
	HealthDegraded = wire.HealthDegraded
	HealthMissing  = wire.HealthMissing
	HealthUnknown  = wire.HealthUnknown
)
