package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/internal/gittest"
)

// job is a [[service]] of the shell image that runs cmd on schedule.
func job(name, schedule, cmd string) string {
	return fmt.Sprintf("[[service]]\nname = %q\nimage = %q\nschedule = %q\ncommand = [\"sh\", \"-c\", %q]\n",
		name, imageShell, schedule, cmd)
}

// never is a schedule whose tick does not come during a test: 1 January,
// midnight.
const never = "0 0 0 1 1 *"

// TestJobs: a job every 2 s runs, and its ticks are skipped while a run
// sleeps 5 s; `orca-sync run` starts one at once, waits for it, prints its
// last lines and exits with its exit code; a failing job sends job_failed
// once for two identical failures. No job container stays once a run ended.
func TestJobs(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("jobs")
	sink := newNotifySink(t, http.StatusOK)
	repo := gittest.NewRepo(t)
	repo.WriteFile("cluster.toml", fmt.Sprintf("[reconcile]\ninterval_secs = 3600\n[[notify]]\ntype = \"webhook\"\nurl = %q\nevents = [\"job_failed\"]\n", sink.URL))
	repo.WriteFile("services/"+p+"/service.toml", strings.Join([]string{
		job("tick", "*/2 * * * * *", "echo tick; sleep 5"),
		job("now", never, "echo report written; echo DONE"),
		job("fail", never, "echo 'cleanup failed: disk full' >&2; exit 7"),
		job("fail2", never, "exit 9"),
	}, "\n"))
	commit := repo.CommitPush("jobs")
	d := startServe(t, env, repo.FileURL())
	d.waitIdle(t)
	cli := newOrca(t, env, t.TempDir())
	run := func(args ...string) cliResult {
		return cli.run(append([]string{"run", "--server", "http://" + d.api, "--data-dir", d.dataDir}, args...)...)
	}

	t.Run("scheduled runs; overlapping ticks are skipped", func(t *testing.T) {
		env.waitFor(t, 90*time.Second, func() (bool, string) {
			j := serviceOf(d.status(), p, "tick").Job
			return j != nil && j.LastRun != nil && j.LastRun.ExitCode == 0 && j.Skipped > 0 && !j.NextRun.IsZero(),
				fmt.Sprintf("job status %+v", j)
		})
		last := serviceOf(d.status(), p, "tick").Job.LastRun
		if last.Trigger != "schedule" || !strings.Contains(last.Output, "tick") || last.Duration < 5*time.Second {
			t.Fatalf("last run %+v, want a scheduled run that printed tick and slept 5 s", last)
		}
		var runs, skips int
		for _, r := range d.history() {
			for _, s := range r.Services {
				if s.Service == "tick" && s.Action == "run" {
					runs++
				}
				if s.Service == "tick" && s.Action == "skip" {
					skips++
				}
			}
		}
		if runs == 0 || skips == 0 {
			t.Fatalf("history has %d runs and %d skipped ticks of tick, want both", runs, skips)
		}
	})

	t.Run("run starts one at once and exits with its exit code", func(t *testing.T) {
		r := run(p + "/now")
		if r.Code != 0 || !strings.Contains(r.Stdout, "exited with code 0") || !strings.Contains(r.Stdout, "report written\nDONE") {
			t.Fatalf("run now: %s", r)
		}
		r = run(p + "/fail")
		if r.Code != 7 || !strings.Contains(r.Stdout, "cleanup failed: disk full") {
			t.Fatalf("run fail: %s, want exit code 7 and the job's output", r)
		}
		r = run("--detach", p+"/now")
		if r.Code != 0 || !strings.Contains(r.Stdout, "started "+p+"-now-job-") {
			t.Fatalf("run --detach: %s", r)
		}
		if r := run(p + "/nosuch"); r.Code == 0 || !strings.Contains(r.Stderr, "not found") {
			t.Fatalf("run of no such service: %s", r)
		}
		env.waitFor(t, 30*time.Second, func() (bool, string) {
			j := serviceOf(d.status(), p, "now").Job
			return j != nil && !j.Running && j.LastRun != nil && j.LastRun.Trigger == "run", fmt.Sprintf("now: %+v", j)
		})
		if s := serviceOf(d.status(), p, "fail"); s.Job == nil || s.Job.LastRun == nil || s.Job.LastRun.ExitCode != 7 {
			t.Fatalf("status of fail = %+v, want its last run's exit code 7", s)
		}
	})

	t.Run("a failing job sends job_failed once", func(t *testing.T) {
		if r := run(p + "/fail"); r.Code != 7 {
			t.Fatalf("second run of fail: %s", r)
		}
		// fail2's event comes after the second failure of fail was
		// dispatched, so by then a repeat would have been sent.
		if r := run(p + "/fail2"); r.Code != 9 {
			t.Fatalf("run fail2: %s", r)
		}
		env.waitFor(t, 30*time.Second, func() (bool, string) {
			return len(sink.of("job_failed", commit)) >= 2, fmt.Sprintf("events %v", sink.all())
		})
		var fails []string
		for _, r := range sink.of("job_failed", commit) {
			fails = append(fails, fmt.Sprint(r.event["services"]))
		}
		if want := []string{"[" + p + "/fail]", "[" + p + "/fail2]"}; fmt.Sprint(fails) != fmt.Sprint(want) {
			t.Fatalf("job_failed for %v, want %v (the repeated failure of fail sent once)", fails, want)
		}
		ev := sink.of("job_failed", commit)[0].event
		if !strings.Contains(fmt.Sprint(ev["reason"]), "exited with code 7") {
			t.Fatalf("job_failed = %v", ev)
		}
	})

	d.stop()
	if left := env.oneOffs(t, p); len(left) > 0 {
		t.Fatalf("job containers left after serve stopped: %s", describe(left))
	}
}
