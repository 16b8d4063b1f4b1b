package jobs

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/notify"
	"github.com/orca-sync/orca-sync/state"
)

// fakeRunner runs a job until release is closed, exiting with code.
type fakeRunner struct {
	release chan struct{}
	code    int
	mu      sync.Mutex
	runs    int
}

func (f *fakeRunner) RunOneOff(ctx context.Context, _ *config.Desired, _ string, o apply.OneOff) (apply.OneOffResult, error) {
	f.mu.Lock()
	f.runs++
	f.mu.Unlock()
	o.Started("c")
	select {
	case <-f.release:
	case <-ctx.Done():
		return apply.OneOffResult{Name: "c", ExitCode: -1}, ctx.Err()
	}
	return apply.OneOffResult{Name: "c", ExitCode: f.code, Output: "line 1\nline 2"}, nil
}

type recorder struct {
	mu     sync.Mutex
	recs   []state.SyncRecord
	events []notify.Event
}

func (r *recorder) AddSync(rec state.SyncRecord) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return uint64(len(r.recs)), nil
}

func (r *recorder) Notify(e notify.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func jobOf(name, schedule string) diff.Service {
	return diff.Service{Service: &config.Service{Project: "p", Name: name, Schedule: schedule}}
}

// TestOverlapSkippedAndRunNow: a tick while a run runs is skipped and
// recorded; a run on demand while one runs is refused; a failed run is
// recorded with its exit code and output and sends job_failed with a key
// that is the same for the same exit code.
func TestOverlapSkippedAndRunNow(t *testing.T) {
	run := &fakeRunner{release: make(chan struct{}), code: 7}
	rec := &recorder{}
	s := New(Options{Runner: run, History: rec, Notifier: rec})
	s.Update(&config.Desired{}, "rev", []diff.Service{jobOf("cron", never), {Service: &config.Service{Project: "p", Name: "web"}}})
	if st := s.Status("p/web"); st != nil {
		t.Fatalf("a service without schedule has job status %+v", st)
	}
	if _, err := s.Run(context.Background(), "p", "web", true); !errors.Is(err, ErrNotJob) {
		t.Fatalf("run of no job: %v", err)
	}
	started, err := s.Run(context.Background(), "p", "cron", true)
	if err != nil || !started.Running || started.Container != "c" {
		t.Fatalf("detached run = %+v, %v", started, err)
	}
	s.tick("p/cron")
	if _, err := s.Run(context.Background(), "p", "cron", false); !errors.Is(err, ErrRunning) {
		t.Fatalf("second run while one runs: %v", err)
	}
	close(run.release)
	waitUntil(t, func() bool { st := s.Status("p/cron"); return st.LastRun != nil && !st.Running })
	st := s.Status("p/cron")
	if st.Skipped != 1 || st.LastRun.ExitCode != 7 || st.LastRun.Output != "line 1\nline 2" || st.NextRun.IsZero() {
		t.Fatalf("status = %+v, last run %+v", st, st.LastRun)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.recs) != 2 || rec.recs[0].Result != ResultSkipped || rec.recs[1].Result != ResultFailed ||
		*rec.recs[1].Services[0].ExitCode != 7 || rec.recs[1].Error != "exited with code 7; output: line 1 | line 2" {
		t.Fatalf("history = %+v", rec.recs)
	}
	if len(rec.events) != 1 || rec.events[0].Kind != notify.JobFailed || rec.events[0].Key != "job p/cron exit 7 timeout false" {
		t.Fatalf("events = %+v", rec.events)
	}
	if run.runs != 1 {
		t.Fatalf("%d runs, want 1", run.runs)
	}
}

// TestUpdateDropsJobsGoneFromGit: a job removed from the checkout has no
// status and cannot be run.
func TestUpdateDropsJobsGoneFromGit(t *testing.T) {
	s := New(Options{Runner: &fakeRunner{release: make(chan struct{})}})
	s.Update(&config.Desired{}, "rev", []diff.Service{jobOf("cron", never)})
	s.Update(&config.Desired{}, "rev2", nil)
	if st := s.Status("p/cron"); st != nil {
		t.Fatalf("status of a job gone from git: %+v", st)
	}
	if _, err := s.Run(context.Background(), "p", "cron", true); !errors.Is(err, ErrNotJob) {
		t.Fatalf("run of a job gone from git: %v", err)
	}
}

const never = "0 0 0 1 1 *"

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
