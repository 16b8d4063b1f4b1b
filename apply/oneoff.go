package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

// OutputLines is how many of its last log lines a hook or job run keeps.
const OutputLines = 20

// OneOff is a container of a service's spec run to its exit: a hook or a
// job run (docs/reference/service-toml.md#hooks, #schedule).
type OneOff struct {
	Service *diff.Service
	// Role is RoleHook or RoleJob; Hook names the hook of a RoleHook.
	Role string
	Hook string
	// Command replaces the service's command when set.
	Command []string
	// Timeout bounds the run; 0 is none.
	Timeout time.Duration
	// Started, when set, is called once the container runs.
	Started func(name string)
}

// OneOffResult is how a one-off run ended.
type OneOffResult struct {
	Name     string        `json:"name"`
	ExitCode int           `json:"exit_code"`
	TimedOut bool          `json:"timed_out,omitempty"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	// Output is the run's last OutputLines log lines, secrets redacted.
	Output string `json:"output,omitempty"`
}

// Failed reports whether the run did not exit 0.
func (r OneOffResult) Failed() bool { return r.ExitCode != 0 || r.TimedOut }

// RunOneOff runs o with the values of checkout d (secrets, mount sources,
// node) at revision, waits for its exit and removes its container.
// Its image, networks and volumes are made sure of first, as for a rollout.
func (a *Applier) RunOneOff(ctx context.Context, d *config.Desired, revision string, o OneOff) (OneOffResult, error) {
	j := a.newJob(d, revision)
	r := &rollout{a: a, svc: o.Service, job: j, log: a.log.With("service", o.Service.Key())}
	if err := r.prepare(ctx); err != nil {
		return OneOffResult{}, err
	}
	return a.runOneOff(ctx, j, o)
}

// runOneOff starts the container, waits for it within o.Timeout, keeps its
// last lines, and removes it whatever happened, with a context of its own:
// ctx ending (serve stopping) leaves no container behind.
func (a *Applier) runOneOff(ctx context.Context, j job, o OneOff) (OneOffResult, error) {
	r := &rollout{a: a, svc: o.Service, job: j, role: o.Role, log: a.log}
	secrets := j.current(o.Service.Project)
	// The same container builder as a rollout's: env, networks, volumes and
	// mounts (snapshots of the checkout's files) as the service has them.
	cfg, release, err := r.containerConfig(ctx, oneOffSpec(o), o.Service.Hash, j.revision, 0, secrets)
	defer release()
	if err != nil {
		return OneOffResult{}, err
	}
	what := o.Role
	if o.Hook != "" {
		what = o.Hook
		cfg.Labels[LabelHook] = o.Hook
	}
	cfg.Name = fmt.Sprintf("%s-%s-%s-%s", o.Service.Project, o.Service.Name, strings.ReplaceAll(what, "_", "-"),
		time.Now().UTC().Format("20060102t150405.000000000"))
	cfg.Name = strings.ReplaceAll(cfg.Name, ".", "")
	cfg.StopGrace = o.Service.StopGrace
	res := OneOffResult{Name: cfg.Name, Started: time.Now()}
	a.oneOffs.add(cfg.Name)
	defer a.oneOffs.done(cfg.Name)
	// The create and start calls are not cut short by ctx: an engine may
	// create a container for a call its client gave up, and that one would
	// be left. A run whose ctx ended meanwhile is removed at once.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	id, err := a.rt.Run(rctx, cfg)
	rcancel()
	if err != nil {
		a.sweepDue.Store(true) // the engine may have made it all the same
		return res, fmt.Errorf("start %s: %s", cfg.Name, secrets.redactor().String(err.Error()))
	}
	if o.Started != nil {
		o.Started(cfg.Name)
	}
	a.log.Info("one-off started", "service", o.Service.Key(), "role", o.Role, "hook", o.Hook, "container", cfg.Name)
	res.ExitCode, res.TimedOut, err = a.waitOneOff(ctx, id, o)
	res.Duration = time.Since(res.Started)
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if logs, lerr := a.rt.Logs(bg, id, OutputLines); lerr == nil {
		res.Output = strings.TrimRight(secrets.redactor().String(logs), "\n")
	}
	if rerr := a.rt.Remove(bg, id); rerr != nil {
		a.sweepDue.Store(true)
		err = errors.Join(err, rerr)
	}
	return res, err
}

// waitOneOff waits for the container's exit. At the timeout it is stopped
// (SIGTERM, then SIGKILL after stop_grace_secs); when ctx ends first the
// caller removes it.
func (a *Applier) waitOneOff(ctx context.Context, id string, o OneOff) (code int, timedOut bool, err error) {
	wctx := ctx
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	code, err = a.rt.Wait(wctx, id)
	if err == nil {
		return code, false, nil
	}
	if ctx.Err() != nil {
		return -1, false, fmt.Errorf("%s of %s interrupted: %w", o.Role, o.Service.Key(), ctx.Err())
	}
	if wctx.Err() == nil {
		return -1, false, err
	}
	bg := context.WithoutCancel(ctx)
	if serr := a.rt.Stop(bg, id, o.Service.StopGrace); serr != nil {
		return -1, true, serr
	}
	if st, ierr := a.rt.Inspect(bg, id); ierr == nil {
		code = st.ExitCode
	}
	return code, true, nil
}

// oneOffSpec is the service's spec as a one-off container runs it: its
// image, env, networks, volumes and mounts, but no published port and no DNS
// alias (it must take no traffic of the service), never restarted.
func oneOffSpec(o OneOff) diff.Spec {
	spec := o.Service.Spec
	spec.Ports, spec.Aliases, spec.RestartPolicy = nil, nil, "no"
	if o.Command != nil {
		spec.Command = o.Command
	}
	return spec
}

// SweepOneOffs removes the hook and job containers of this node that no run
// of this process owns: ones a crash left behind (docs/guides/hooks-and-jobs.md).
// It returns what it removed. Only a crash, a failed create or a failed
// removal leaves one, so it lists them at the first sweep of the process and
// after such a failure, not at every sync: a sync of unchanged services makes
// one Docker call (docs/design.md#the-cost-of-a-sync).
func (a *Applier) SweepOneOffs(ctx context.Context, node string) ([]diff.Container, error) {
	if !a.sweepDue.Swap(false) {
		return nil, nil
	}
	all, err := a.rt.ListOneOffs(ctx)
	if err != nil {
		a.sweepDue.Store(true)
		return nil, err
	}
	var removed []diff.Container
	var errs []error
	for _, c := range all {
		if !diff.OwnNode(c, node) || a.oneOffs.has(c.Name) {
			continue
		}
		if err := a.rt.Remove(ctx, c.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		a.log.Warn("removed a one-off container left by a crash", "container", c.Name, "role", c.Role)
		removed = append(removed, c)
	}
	if len(errs) > 0 {
		a.sweepDue.Store(true)
	}
	return removed, errors.Join(errs...)
}
