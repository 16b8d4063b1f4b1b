package wire

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// JobRun is one run of a scheduled job (docs/reference/api.md#run): POST
// /api/v1/services/{project}/{name}/run answers it, status shows the last.
type JobRun struct {
	Project string `json:"project"`
	Service string `json:"service"`
	// Trigger is "schedule" or "run" (the CLI or API).
	Trigger   string        `json:"trigger"`
	Container string        `json:"container,omitempty"`
	Started   time.Time     `json:"started"`
	Duration  time.Duration `json:"duration_ns"`
	// ExitCode is the container's; Running is set while it runs (a detached
	// run's answer).
	ExitCode int  `json:"exit_code"`
	Running  bool `json:"running,omitempty"`
	TimedOut bool `json:"timed_out,omitempty"`
	// Output is the run's last log lines, secrets redacted.
	Output string `json:"output,omitempty"`
	// Error is why the run could not start or be waited for.
	Error string `json:"error,omitempty"`
}

// Failed reports whether the run did not exit 0.
func (r JobRun) Failed() bool { return r.Error != "" || r.ExitCode != 0 || r.TimedOut }

// JobStatus is a job's part of its service's status.
type JobStatus struct {
	Schedule string    `json:"schedule"`
	NextRun  time.Time `json:"next_run,omitzero"`
	Running  bool      `json:"running"`
	LastRun  *JobRun   `json:"last_run,omitempty"`
	// Skipped counts the ticks skipped because the previous run still ran,
	// since serve started.
	Skipped int `json:"skipped,omitempty"`
}

// WriteJobRun prints a run for people: what ran and how it ended, then its
// last lines.
func WriteJobRun(w io.Writer, r JobRun) error {
	var err error
	switch {
	case r.Running:
		_, err = fmt.Fprintf(w, "%s/%s: started %s\n", r.Project, r.Service, r.Container)
		return err
	case r.Error != "":
		_, err = fmt.Fprintf(w, "%s/%s: %s\n", r.Project, r.Service, r.Error)
	case r.TimedOut:
		_, err = fmt.Fprintf(w, "%s/%s: %s timed out after %s (exit code %d)\n", r.Project, r.Service, r.Container, r.Duration.Round(time.Millisecond), r.ExitCode)
	default:
		_, err = fmt.Fprintf(w, "%s/%s: %s exited with code %d after %s\n", r.Project, r.Service, r.Container, r.ExitCode, r.Duration.Round(time.Millisecond))
	}
	if err != nil || r.Output == "" {
		return err
	}
	_, err = fmt.Fprintln(w, strings.TrimRight(r.Output, "\n"))
	return err
}
