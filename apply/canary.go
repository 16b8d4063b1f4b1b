package apply

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/routing"
)

// CanaryIndexBase offsets the replica numbers of canary containers (canary n
// is named <project>-<service>-<hash8>-<base+n>), so the stable replicas of
// the same spec that a promotion starts never need a canary's name.
const CanaryIndexBase = 100

// StartCanary starts deploy.canary_replicas containers of c's desired spec
// with role canary beside the stable ones, waits until they are ready
// (within timeout_secs) and routes them in; the router gives them only the
// canary's weight. On failure every container it started is removed again.
func (a *Applier) StartCanary(ctx context.Context, d *config.Desired, c diff.Change, revision string) (Result, []diff.Container) {
	start := time.Now()
	res := Result{Project: c.Project, Service: c.Service, Action: c.Action}
	log := a.log.With("service", c.Key(), "action", "canary")
	r := &rollout{a: a, svc: c.Desired, change: c, job: a.newJob(d, revision), result: &res, log: log, role: routing.RoleCanary}
	r.deadline = time.Now().Add(c.Desired.Deploy.Timeout)
	var started []diff.Container
	err := r.prepare(ctx)
	if err == nil {
		// The canary is the first container of the new spec.
		err = r.runHook(ctx, config.HookPreDeploy)
	}
	if err == nil {
		idx := make([]int, c.Desired.Deploy.CanaryReplicas)
		for i := range idx {
			idx[i] = CanaryIndexBase + i + 1
		}
		started, err = r.startBatch(ctx, idx)
	}
	res.Duration = time.Since(start)
	if err != nil {
		res.Error, res.PullFailed = fmt.Sprintf("canary of %s not started: %v", c.Key(), err), IsPullError(err)
		log.Error("canary failed to start", "error", err)
		return res, nil
	}
	for i := range started {
		started[i].Role = routing.RoleCanary
	}
	log.Info("canary started", "containers", len(started), "duration", res.Duration)
	return res, started
}

// Retire routes each container out (draining it), stops it with its own
// stop timeout (the stop_grace_secs it was created with) and removes it.
func (a *Applier) Retire(ctx context.Context, project, service string, cs []diff.Container) error {
	var errs []error
	for _, c := range cs {
		if err := a.retire(ctx, project, service, c, ownGrace); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
