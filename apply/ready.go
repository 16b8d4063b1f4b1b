package apply

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/redact"
)

// pollInterval is how often readiness re-inspects a container it waits
// for: has it exited, what does its HEALTHCHECK say.
const pollInterval = 200 * time.Millisecond

// firstProbeRetry is the wait before the first retry of a failed readiness
// probe during a rollout; each retry waits twice as long as the last, up to
// maxRolloutProbeGap. An app that listens milliseconds after its start — the
// usual failure of the first probe is only that it is not listening yet —
// is then routed in milliseconds later, not half a second later
// (docs/reference/service-toml.md#probes).
const firstProbeRetry = 20 * time.Millisecond

// maxRolloutProbeGap caps the wait between readiness probes during a
// rollout: a probe that fails because the app is not listening yet is retried
// soon, not a whole interval_secs (10 s by default) later, which would hold
// every batch of a rolling update that long. interval_secs still paces the
// probes that watch a running container.
const maxRolloutProbeGap = 500 * time.Millisecond

// NotReadyError says why a container did not become ready.
type NotReadyError struct {
	Container string
	Reason    string
	// Logs are the container's last log lines, when they could be read:
	// redacted of the secret values it was given, then put on one line.
	Logs string
}

func (e *NotReadyError) Error() string {
	msg := fmt.Sprintf("container %s not ready: %s", e.Container, e.Reason)
	if e.Logs != "" {
		msg += "; last log lines: " + e.Logs
	}
	return msg
}

// waitReady blocks until container id of svc is ready, or ctx (which carries
// the rollout's deadline) ends, or the container exits. It returns the
// container's state from its last inspect, whose addresses route it in.
// Why not is told with the secret values the container was given (secrets)
// replaced by their references: the error goes to the sync history, status,
// API and notifications, and an app that fails on a bad secret often prints
// it (a DSN with its password). The raw log text is redacted, before it is
// put on one line, so a value with a tab, two spaces or a newline is still
// found (docs/guides/secrets.md).
func (a *Applier) waitReady(ctx context.Context, svc *diff.Service, id, name string, secrets *redact.Redactor) (State, error) {
	a.awaiting.add(id)
	st, err := a.awaitReady(ctx, svc, id, name)
	if err == nil {
		a.awaiting.done(id) // a failed one stays not ready until it is retired
	}
	var nre *NotReadyError
	if errors.As(err, &nre) {
		nre.Reason = secrets.String(nre.Reason)
		// One line, so the reason fits a status line and a history row.
		nre.Logs = strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(secrets.String(nre.Logs)), "\n", " | ")), " ")
	}
	return st, err
}

// readyWait is one container's readiness wait: the inspects that watch it
// (every pollInterval) and the probes (retried sooner, see firstProbeRetry)
// run on schedules of their own.
type readyWait struct {
	a        *Applier
	svc      *diff.Service
	id, name string
	st       State
	lastErr  string
	// nextInspect and nextProbe are when each is due; gap is the wait after
	// the next failed probe.
	nextInspect, nextProbe time.Time
	gap                    time.Duration
}

// awaitReady is waitReady before redaction: its NotReadyError has the raw
// log text.
func (a *Applier) awaitReady(ctx context.Context, svc *diff.Service, id, name string) (State, error) {
	w := &readyWait{a: a, svc: svc, id: id, name: name, nextInspect: time.Now(), gap: firstProbeRetry}
	probe := svc.Readiness
	if probe != nil {
		w.nextProbe = time.Now().Add(probe.InitialDelay)
	}
	for {
		if !time.Now().Before(w.nextInspect) {
			if ready, err := w.inspect(ctx); ready || err != nil {
				return w.st, err
			}
		}
		if probe != nil && !time.Now().Before(w.nextProbe) {
			err := a.probe(ctx, probe, svc, id, w.st)
			if err == nil {
				return w.st, nil
			}
			if ctx.Err() != nil && w.lastErr != "" {
				return w.st, a.timedOut(ctx, svc, id, name, w.lastErr)
			}
			w.lastErr = "readiness probe: " + err.Error()
			w.nextProbe = time.Now().Add(w.gap)
			w.gap = min(2*w.gap, maxRolloutProbeGap)
			if probe.Interval > 0 {
				w.gap = min(w.gap, probe.Interval)
			}
		}
		wake := w.nextInspect
		if probe != nil && w.nextProbe.Before(wake) {
			wake = w.nextProbe
		}
		t := time.NewTimer(time.Until(wake))
		select {
		case <-ctx.Done():
			t.Stop()
			return w.st, a.timedOut(ctx, svc, id, name, w.lastErr)
		case <-t.C:
		}
	}
}

// inspect reads the container's state: an exit fails the wait; without a
// readiness probe, a healthy HEALTHCHECK or min_ready_secs of running end it.
func (w *readyWait) inspect(ctx context.Context) (ready bool, err error) {
	st, err := w.a.rt.Inspect(ctx, w.id)
	if err != nil && ctx.Err() != nil {
		// The deadline cut the call short: the reason is what the
		// container failed before it, not the cut-off call.
		return false, w.a.timedOut(ctx, w.svc, w.id, w.name, w.lastErr)
	}
	if err != nil {
		return false, w.a.notReady(ctx, w.id, w.name, fmt.Sprintf("inspect: %v", err))
	}
	w.st, w.nextInspect = st, time.Now().Add(pollInterval)
	if !st.Running || st.Status == "restarting" {
		reason := fmt.Sprintf("container %s (exit code %d)", st.Status, st.ExitCode)
		if st.OOMKilled {
			reason += ", killed for running out of memory"
		}
		return false, w.a.notReady(ctx, w.id, w.name, reason)
	}
	switch {
	case w.svc.Readiness != nil:
		return false, nil // the probe decides
	case st.Health == "healthy":
		return true, nil
	case st.Health == "unhealthy":
		return false, w.a.notReady(ctx, w.id, w.name, "image HEALTHCHECK reports unhealthy")
	case st.Health == "":
		ran := time.Since(st.StartedAt)
		if ran >= w.svc.Deploy.MinReady {
			return true, nil
		}
		w.lastErr = fmt.Sprintf("running for %s of min_ready_secs %s", ran.Round(100*time.Millisecond), w.svc.Deploy.MinReady)
		// Looked at again the moment it has run long enough.
		if at := st.StartedAt.Add(w.svc.Deploy.MinReady); at.Before(w.nextInspect) {
			w.nextInspect = at
		}
	default:
		w.lastErr = "image HEALTHCHECK: " + st.Health
	}
	return false, nil
}

// timedOut is the error of a container the rollout's deadline caught before
// it was ready; lastErr is its last failed check, if any.
func (a *Applier) timedOut(ctx context.Context, svc *diff.Service, id, name, lastErr string) error {
	if lastErr == "" {
		lastErr = ctx.Err().Error()
	}
	return a.notReady(context.WithoutCancel(ctx), id, name, fmt.Sprintf("not ready within %s: %s", svc.Deploy.Timeout, lastErr))
}

func (a *Applier) notReady(ctx context.Context, id, name, reason string) error {
	e := &NotReadyError{Container: name, Reason: reason}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if logs, err := a.rt.Logs(lctx, id, 10); err == nil {
		e.Logs = logs
	}
	return e
}

// probe runs one check of p against the container.
func (a *Applier) probe(ctx context.Context, p *config.Probe, svc *diff.Service, id string, st State) error {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	if p.Type == config.ProbeExec {
		code, err := a.rt.Exec(ctx, id, p.Command)
		if err != nil {
			return fmt.Errorf("exec %q: %w", p.Command, err)
		}
		if code != 0 {
			return fmt.Errorf("exec %q exited with %d", p.Command, code)
		}
		return nil
	}
	ip := st.IPs[diff.NetworkName(svc.Project)]
	if ip == "" {
		return fmt.Errorf("container has no address on network %s", diff.NetworkName(svc.Project))
	}
	port := p.Port
	if port == 0 {
		port = svc.Port
	}
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	if p.Type == config.ProbeTCP {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("tcp %s: %w", addr, err)
		}
		return conn.Close()
	}
	url := "http://" + addr + p.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("http GET %s: %w", url, err)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("http GET %s: %w", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode < p.ExpectMin || resp.StatusCode > p.ExpectMax {
		return fmt.Errorf("http GET %s: status %d, want %d-%d", url, resp.StatusCode, p.ExpectMin, p.ExpectMax)
	}
	return nil
}

// ErrNotProbed wraps the reason a probe could not be run at all (the engine
// did not answer the inspect): that says nothing of the container's health.
var ErrNotProbed = errors.New("not probed")

// Probe runs one check of p (a liveness probe, say) against a running
// container of svc, reading its address with one inspect.
func (a *Applier) Probe(ctx context.Context, p *config.Probe, svc *diff.Service, id string) error {
	st, err := a.rt.Inspect(ctx, id)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotProbed, err)
	}
	if !st.Running {
		return fmt.Errorf("container %s", st.Status)
	}
	return a.probe(ctx, p, svc, id, st)
}
