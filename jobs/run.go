package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/orca-sync/orca-sync/api/wire"
	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/notify"
	"github.com/orca-sync/orca-sync/state"
)

// History results of job records (with the sync's succeeded and failed).
const (
	ResultSucceeded = "succeeded"
	ResultFailed    = "failed"
	ResultSkipped   = "skipped"
	// ResultInterrupted is a run serve stopped: it is recorded, not
	// announced.
	ResultInterrupted = "interrupted"
)

// runOnce runs one container of svc and reports it on out once it runs.
func (s *Scheduler) runOnce(ctx context.Context, d *config.Desired, rev string, svc diff.Service, trigger string, out chan<- wire.JobRun) wire.JobRun {
	run := wire.JobRun{Project: svc.Project, Service: svc.Name, Trigger: trigger, Started: time.Now()}
	o := apply.OneOff{Service: &svc, Role: apply.RoleJob, Started: func(name string) {
		r := run
		r.Container, r.Running = name, true
		out <- r
	}}
	res, err := s.opts.Runner.RunOneOff(ctx, d, rev, o)
	run.Container, run.ExitCode, run.TimedOut, run.Output = res.Name, res.ExitCode, res.TimedOut, res.Output
	if !res.Started.IsZero() {
		run.Started = res.Started
	}
	run.Duration = time.Since(run.Started)
	if err != nil {
		run.Error = err.Error()
	}
	return run
}

// finish records a run: the job's last run, the history, job_failed
// (unless serve stopping interrupted it).
func (s *Scheduler) finish(key string, r wire.JobRun, interrupted bool) {
	s.mu.Lock()
	rev := s.revision
	if j := s.jobs[key]; j != nil {
		j.running = false
		last := r
		j.last = &last
	}
	s.mu.Unlock()
	rec := state.SyncRecord{Trigger: "job-" + r.Trigger, Commit: rev, Started: r.Started,
		Finished: r.Started.Add(r.Duration), Result: ResultSucceeded}
	if r.Failed() {
		rec.Result, rec.Error = ResultFailed, Failure(r)
	}
	if interrupted {
		rec.Result = ResultInterrupted
	}
	code := r.ExitCode
	s.record(key, rec, "run", r.Container, func(sr *state.ServiceResult) {
		sr.ExitCode, sr.Output, sr.Duration = &code, r.Output, r.Duration
	})
	log := s.opts.Log.With("service", key, "trigger", r.Trigger, "exit_code", r.ExitCode, "duration", r.Duration.Round(time.Millisecond))
	if !r.Failed() {
		log.Info("job run")
		return
	}
	log.Warn("job run failed", "error", rec.Error, "result", rec.Result)
	if s.opts.Notifier != nil && !interrupted {
		// The same job failing with the same exit code is the same failure,
		// sent once per the sink's repeat interval, whatever it printed.
		s.opts.Notifier.Notify(notify.Event{Kind: notify.JobFailed, Node: s.opts.Node(), Commit: rev,
			Services: []string{key}, Reason: rec.Error, Time: rec.Finished,
			Key:     fmt.Sprintf("job %s exit %d timeout %v", key, r.ExitCode, r.TimedOut),
			Details: map[string]any{"exit_code": r.ExitCode, "output": r.Output, "trigger": r.Trigger}})
	}
}

// Failure is a failed run in one line.
func Failure(r wire.JobRun) string {
	switch {
	case r.Error != "":
		return r.Error
	case r.TimedOut:
		return fmt.Sprintf("timed out (exit code %d)", r.ExitCode)
	}
	msg := fmt.Sprintf("exited with code %d", r.ExitCode)
	if out := apply.OneLine(r.Output, 5); out != "" {
		msg += "; output: " + out
	}
	return msg
}

// record adds a job record to the history.
func (s *Scheduler) record(key string, rec state.SyncRecord, action, container string, more ...func(*state.ServiceResult)) {
	project, name := splitKey(key)
	sr := state.ServiceResult{Project: project, Service: name, Action: action, Error: rec.Error}
	if container != "" {
		sr.Started, sr.Removed = []string{container}, []string{container}
	}
	for _, f := range more {
		f(&sr)
	}
	rec.Services = []state.ServiceResult{sr}
	if s.opts.History == nil {
		return
	}
	if _, err := s.opts.History.AddSync(rec); err != nil {
		s.opts.Log.Error("record job run in history", "service", key, "error", err)
	}
}

func splitKey(key string) (project, name string) {
	for i := range len(key) {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return key, ""
}
