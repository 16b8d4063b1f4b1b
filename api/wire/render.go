package wire

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orca-sync/orca-sync/state"
)

// WriteStatus prints a status as a table.
func WriteStatus(w io.Writer, st Status) error {
	commit := "none yet"
	if st.Commit != "" {
		commit = fmt.Sprintf("%s %s", short(st.Commit), st.Message)
	}
	fmt.Fprintf(w, "Commit:  %s\n", commit)
	writeNode(w, st)
	if st.LastSync != nil {
		fmt.Fprintf(w, "Last sync: %s (%s, %s ago)\n", st.LastSync.Result, st.LastSync.Trigger, time.Since(st.LastSync.Finished).Round(time.Second))
		if st.LastSync.Error != "" {
			fmt.Fprintf(w, "  %s\n", st.LastSync.Error)
		}
	}
	if st.FetchError != "" {
		fmt.Fprintf(w, "Fetch error: %s\n", st.FetchError)
	}
	if s := st.Stalled; s != nil {
		fmt.Fprintf(w, "Stalled: commit %s since %s: %s\n  automatic syncs wait for a new commit, `orca-sync sync` or `sync --retry`\n",
			short(s.Commit), s.Since.Format(time.DateTime), s.Reason)
	}
	if r := st.Retry; r != nil {
		fmt.Fprintf(w, "Retrying: next attempt at %s (in %s) after %d failed sync(s): %s\n", r.NextAttempt.Format(time.DateTime),
			max(0, time.Until(r.NextAttempt)).Round(time.Second), r.Failures, r.Reason)
	}
	for _, e := range st.Errors {
		fmt.Fprintf(w, "Invalid: %s\n", e.Error())
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSERVICE\tSYNC\tHEALTH\tREADY\tIMAGE\tREASON")
	for _, s := range st.Services {
		reason := s.Reason
		if s.ProbeError != "" {
			reason = strings.TrimPrefix(reason+"; "+s.ProbeError, "; ")
		}
		image := s.Image
		if s.Digest != "" {
			image += " (" + shortDigest(s.Digest) + ")"
		}
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%d/%d\t%s\t%s\n", s.Project, s.Name, s.Sync, s.Health, s.Ready, s.Replicas, image, reason)
	}
	writeElsewhere(tw, st)
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range st.Services {
		if c := s.Canary; c != nil {
			fmt.Fprintf(w, "\nCanary %s/%s: %s, step %d of %d at %d%%, %d containers\n", s.Project, s.Name, c.Phase, c.Step, c.Steps, c.Weight, len(c.Containers))
			fmt.Fprintf(w, "  canary: %s\n  stable: %s\n  waits for: %s\n", c.Canary, c.Stable, c.Waiting)
		}
		if j := s.Job; j != nil {
			writeJobStatus(w, s.Project+"/"+s.Name, j)
		}
	}
	return writeBackupStatus(w, st.Backups)
}

// writeJobStatus is a job's last and next run.
func writeJobStatus(w io.Writer, key string, j *JobStatus) {
	fmt.Fprintf(w, "\nJob %s (%s):", key, j.Schedule)
	if !j.NextRun.IsZero() {
		fmt.Fprintf(w, " next run %s", j.NextRun.Format(time.DateTime))
	}
	if j.Running {
		fmt.Fprint(w, ", running now")
	}
	if j.Skipped > 0 {
		fmt.Fprintf(w, ", %d tick(s) skipped", j.Skipped)
	}
	fmt.Fprintln(w)
	if r := j.LastRun; r != nil {
		fmt.Fprintf(w, "  last run %s (%s): exit code %d after %s\n", r.Started.Format(time.DateTime), r.Trigger, r.ExitCode, r.Duration.Round(time.Millisecond))
	}
}

// writeNode names this host's node, and why it applies nothing when it is
// no [[node]] of cluster.toml.
func writeNode(w io.Writer, st Status) {
	if st.Node != "" {
		fmt.Fprintf(w, "Node:    %s\n", st.Node)
	}
	if st.NodeError != "" {
		fmt.Fprintf(w, "Not applied here: %s\n", st.NodeError)
	}
}

// writeElsewhere adds a row per service other nodes run.
func writeElsewhere(w io.Writer, st Status) {
	for _, e := range st.Elsewhere {
		fmt.Fprintf(w, "%s/%s\t-\t-\t-\t-\telsewhere: %s\n", e.Project, e.Name, strings.Join(e.Nodes, ", "))
	}
}

// WriteHistory prints sync records as a table, newest first.
func WriteHistory(w io.Writer, recs []state.SyncRecord) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTARTED\tTRIGGER\tCOMMIT\tRESULT\tDURATION\tPLAN / ERROR")
	for _, r := range recs {
		detail := r.Plan
		if r.Error != "" {
			detail = firstLine(r.Error)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Started.Format(time.DateTime), r.Trigger,
			short(r.Commit), r.Result, r.Finished.Sub(r.Started).Round(time.Millisecond), detail)
	}
	return tw.Flush()
}

// String is the figures in a line: requests, error rate and p95.
func (f RoleFigures) String() string {
	return fmt.Sprintf("%d requests, error rate %.1f%%, p95 %.1f ms", f.Requests, 100*f.ErrorRate, f.P95Ms)
}

func short(sha string) string { return sha[:min(len(sha), 12)] }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// WriteDrift prints a drift report: one line per finding, with its policy
// and when it was first seen.
func WriteDrift(w io.Writer, rep DriftReport) error {
	if rep.Error != "" {
		fmt.Fprintf(w, "Drift check failed: %s\n", rep.Error)
	}
	if len(rep.Findings) == 0 {
		_, err := fmt.Fprintf(w, "No drift (checked %s).\n", rep.Checked.Format(time.DateTime))
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tPOLICY\tKIND\tCONTAINER\tFIELD\tCHANGE\tFIRST SEEN")
	for _, f := range rep.Findings {
		change := f.From + " -> " + f.To
		if f.Secret {
			change = "changed (secret)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.ServiceKey(), rep.Policies[f.ServiceKey()], f.Kind, f.Container,
			f.Field, change, f.FirstSeen.Format(time.DateTime))
	}
	return tw.Flush()
}

// shortDigest is "sha256:" and the first 12 hex digits of a digest.
func shortDigest(d string) string {
	hex := strings.TrimPrefix(d, "sha256:")
	return "sha256:" + hex[:min(12, len(hex))]
}
