// Package jobs runs the services that have a schedule: one container per
// cron tick (docs/guides/hooks-and-jobs.md#jobs), a tick skipped while the
// previous run still runs, every run and skip recorded in the history, a
// failed run announced as job_failed. The containers themselves are apply's
// one-off runs; the reconcile loop hands the scheduler each checkout it
// applies.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/orca-sync/orca-sync/api/wire"
	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/notify"
	"github.com/orca-sync/orca-sync/state"
)

// Runner runs a one-off container to its exit (apply.Applier).
type Runner interface {
	RunOneOff(ctx context.Context, d *config.Desired, revision string, o apply.OneOff) (apply.OneOffResult, error)
}

var _ Runner = (*apply.Applier)(nil)

// History records the runs and skipped ticks (state.DB).
type History interface {
	AddSync(state.SyncRecord) (uint64, error)
}

// Notifier takes job_failed events.
type Notifier interface {
	Notify(notify.Event)
}

// Triggers of a run.
const (
	TriggerSchedule = "schedule"
	TriggerRun      = "run"
)

// ErrNotJob is returned by Run for a service that is not a scheduled job,
// ErrRunning for one whose previous run still runs.
var (
	ErrNotJob  = errors.New("not a scheduled job")
	ErrRunning = errors.New("its previous run still runs")
)

// Options configure a Scheduler.
type Options struct {
	Runner   Runner
	History  History
	Notifier Notifier
	Log      *slog.Logger
	// Node names this host in job_failed events.
	Node func() string
}

// Scheduler runs the jobs of the last checkout it was given.
type Scheduler struct {
	opts Options
	cron *cron.Cron
	// ctx is what runs inherit: Start's.
	ctx context.Context

	// runs are the runs in flight, for Wait.
	runs sync.WaitGroup

	mu       sync.Mutex
	desired  *config.Desired
	revision string
	jobs     map[string]*job
}

// job is one scheduled service.
type job struct {
	svc      diff.Service
	entry    cron.EntryID
	schedule cron.Schedule
	running  bool
	last     *wire.JobRun
	skipped  int
}

// New returns a scheduler; Start runs it.
func New(opts Options) *Scheduler {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Node == nil {
		opts.Node = func() string { return "" }
	}
	return &Scheduler{opts: opts, jobs: map[string]*job{}, ctx: context.Background(),
		cron: cron.New(cron.WithParser(scheduleParser{}), cron.WithLocation(time.UTC))}
}

// scheduleParser reads schedules as config validated them.
type scheduleParser struct{}

func (scheduleParser) Parse(spec string) (cron.Schedule, error) { return config.ParseSchedule(spec) }

// Start runs the ticks until ctx ends; runs in flight are then stopped and
// their containers removed (apply.Applier.RunOneOff).
func (s *Scheduler) Start(ctx context.Context) {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	s.cron.Start()
	context.AfterFunc(ctx, func() { <-s.cron.Stop().Done() })
}

// Wait returns once the ticks stopped and every run ended, its container
// removed: after Start's ctx ended, before the process exits.
func (s *Scheduler) Wait() {
	<-s.cron.Stop().Done()
	s.runs.Wait()
}

// Update schedules the jobs of checkout d at revision: new ones are added,
// changed schedules replaced, jobs gone from git dropped. services are d's
// desired services (their specs and hashes).
func (s *Scheduler) Update(d *config.Desired, revision string, services []diff.Service) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.desired, s.revision = d, revision
	seen := map[string]bool{}
	for _, svc := range services {
		if !svc.IsJob() {
			continue
		}
		key := svc.Key()
		seen[key] = true
		j := s.jobs[key]
		if j != nil && j.svc.Schedule == svc.Schedule {
			j.svc = svc
			continue
		}
		if j != nil {
			s.cron.Remove(j.entry)
		} else {
			j = &job{}
			s.jobs[key] = j
		}
		j.svc = svc
		sched, err := config.ParseSchedule(svc.Schedule)
		if err != nil { // validated at load; kept from a tick that could never come
			s.opts.Log.Error("job schedule", "service", key, "error", err)
			continue
		}
		j.schedule = sched
		j.entry = s.cron.Schedule(sched, cron.FuncJob(func() { s.tick(key) }))
	}
	for key, j := range s.jobs {
		if !seen[key] {
			s.cron.Remove(j.entry)
			delete(s.jobs, key)
		}
	}
}

// Status is the job part of a service's status; nil for a service that is
// no scheduled job.
func (s *Scheduler) Status(key string) *wire.JobStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[key]
	if j == nil {
		return nil
	}
	st := &wire.JobStatus{Schedule: j.svc.Schedule, Running: j.running, Skipped: j.skipped}
	if j.schedule != nil {
		st.NextRun = j.schedule.Next(time.Now())
	}
	if j.last != nil {
		last := *j.last
		st.LastRun = &last
	}
	return st
}

// tick starts a scheduled run, or records the tick as skipped.
func (s *Scheduler) tick(key string) {
	if _, err := s.start(key, TriggerSchedule); errors.Is(err, ErrRunning) {
		s.mu.Lock()
		if j := s.jobs[key]; j != nil {
			j.skipped++
		}
		s.mu.Unlock()
		s.opts.Log.Info("job tick skipped: the previous run still runs", "service", key)
		s.record(key, state.SyncRecord{Trigger: "job-" + TriggerSchedule, Started: time.Now(), Finished: time.Now(),
			Result: ResultSkipped, Error: "skipped: the previous run still runs"}, "skip", "")
	}
}

// Run starts a run of the job project/name now. With detach it returns once
// the container runs; else when it ended.
func (s *Scheduler) Run(ctx context.Context, project, name string, detach bool) (wire.JobRun, error) {
	done, err := s.start(project+"/"+name, TriggerRun)
	if err != nil {
		return wire.JobRun{Project: project, Service: name}, err
	}
	var started wire.JobRun
	for {
		select {
		case <-ctx.Done():
			return started, ctx.Err()
		case r, ok := <-done:
			if !ok {
				return started, nil
			}
			if r.Running && !detach {
				started = r
				continue
			}
			return r, nil
		}
	}
}

// start begins a run of key unless one runs. The channel gets the run once
// its container runs, then once it ended, and is closed.
func (s *Scheduler) start(key, trigger string) (<-chan wire.JobRun, error) {
	s.mu.Lock()
	j := s.jobs[key]
	if j == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", key, ErrNotJob)
	}
	if j.running {
		s.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", key, ErrRunning)
	}
	svc, d, rev, ctx := j.svc, s.desired, s.revision, s.ctx
	if err := ctx.Err(); err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("%s: orca-sync is stopping: %w", key, err)
	}
	j.running = true
	s.runs.Add(1)
	s.mu.Unlock()
	out := make(chan wire.JobRun, 2)
	go func() {
		defer s.runs.Done()
		defer close(out)
		r := s.runOnce(ctx, d, rev, svc, trigger, out)
		s.finish(key, r, ctx.Err() != nil)
		out <- r
	}()
	return out, nil
}
