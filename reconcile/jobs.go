package reconcile

import (
	"context"
	"errors"
	"fmt"

	"github.com/orca-sync/orca-sync/jobs"
)

// ErrNotJob is returned by RunJob for a service without a schedule,
// ErrJobRunning for a job whose previous run still runs.
var (
	ErrNotJob     = jobs.ErrNotJob
	ErrJobRunning = jobs.ErrRunning
)

// RunJob runs the scheduled job project/name now (`orca-sync run`): with
// detach it returns once the container runs, else once it ended.
func (l *Loop) RunJob(ctx context.Context, project, name string, detach bool) (JobRun, error) {
	d := l.last.desiredOf()
	if d == nil || d.Project(project) == nil || d.Project(project).Service(name) == nil {
		return JobRun{}, fmt.Errorf("%s/%s: %w", project, name, ErrUnknownService)
	}
	run, err := l.jobs.Run(ctx, project, name, detach)
	if err != nil && !errors.Is(err, ErrNotJob) && !errors.Is(err, ErrJobRunning) {
		return run, fmt.Errorf("run %s/%s: %w", project, name, err)
	}
	return run, err
}

// scheduleJobs hands the scheduler the checkout being applied.
func (s *syncer) scheduleJobs(_ context.Context, r *run) error {
	s.jobs.Update(r.desired, r.commit.SHA, r.services)
	return nil
}
