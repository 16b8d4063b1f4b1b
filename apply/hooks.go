package apply

import (
	"context"
	"fmt"
	"strings"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

// HookError is a hook that did not exit 0 in time. Its message is one line
// (status shows a failed rollout's first line): the hook, its exit code and
// its last lines, secrets redacted.
type HookError struct {
	Hook   string
	Result OneOffResult
}

func (e *HookError) Error() string {
	how := fmt.Sprintf("exited with code %d", e.Result.ExitCode)
	if e.Result.TimedOut {
		how = fmt.Sprintf("timed out after %s (exit code %d)", e.Result.Duration.Round(1e9), e.Result.ExitCode)
	}
	msg := fmt.Sprintf("%s hook %s", e.Hook, how)
	if out := OneLine(e.Result.Output, 5); out != "" {
		msg += "; output: " + out
	}
	return msg
}

// OneLine joins the last n non-empty lines of out with " | ", at most 500
// bytes of them.
func OneLine(out string, n int) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	s := strings.Join(lines[max(0, len(lines)-n):], " | ")
	if len(s) > 500 {
		s = "…" + s[len(s)-500:]
	}
	return s
}

// hookFor returns the service's hook of that name, nil when it has none.
func hookFor(s *config.Service, name string) *config.Hook {
	if s.Hooks == nil {
		return nil
	}
	if name == config.HookPreDeploy {
		return s.Hooks.PreDeploy
	}
	return s.Hooks.PostDeploy
}

// runHook runs the rollout's hook name when the service has one; a hook
// that fails is a HookError.
func (r *rollout) runHook(ctx context.Context, name string) error {
	h := hookFor(r.svc.Service, name)
	if h == nil {
		return nil
	}
	r.log.Info("running hook", "hook", name)
	res, err := r.a.runOneOff(ctx, r.job, OneOff{Service: r.svc, Role: RoleHook, Hook: name, Command: h.Command, Timeout: h.Timeout})
	if err != nil {
		return fmt.Errorf("%s hook: %w", name, err)
	}
	if res.Failed() {
		return &HookError{Hook: name, Result: res}
	}
	r.log.Info("hook done", "hook", name, "duration", res.Duration)
	return nil
}

// ReasonPromotion is the reason of the update that promotes a canary: its
// pre_deploy ran before the canary started (StartCanary), so the promotion
// does not run it again.
const ReasonPromotion = "canary promotion"

// newSpecRollout reports whether the change starts the first containers of
// a new spec (a create or an update that has none yet): what pre_deploy runs
// before. Scale and heal never run hooks.
func (r *rollout) newSpecRollout(current []diff.Container) bool {
	a := r.change.Action
	return (a == diff.ActionCreate || a == diff.ActionUpdate) && len(current) == 0 && r.change.Reason != ReasonPromotion
}

// RerunPostDeploy runs post_deploy again for each service whose post_deploy
// container a crash left (SweepOneOffs removed it) while its containers are
// of the spec that hook was of. It returns one Result per hook run.
func (a *Applier) RerunPostDeploy(ctx context.Context, d *config.Desired, revision string, services []diff.Service, removed []diff.Container) []Result {
	var results []Result
	for _, c := range removed {
		if c.Role != RoleHook || !strings.Contains(c.Name, "-post-deploy-") {
			continue
		}
		for i := range services {
			s := &services[i]
			if s.Project != c.Project || s.Name != c.Service || s.Hash != c.Hash || hookFor(s.Service, config.HookPostDeploy) == nil {
				continue
			}
			res := Result{Project: s.Project, Service: s.Name, Action: diff.ActionUpdate}
			r := &rollout{a: a, svc: s, job: a.newJob(d, revision), result: &res, log: a.log.With("service", s.Key())}
			if err := r.runHook(ctx, config.HookPostDeploy); err != nil {
				res.Error = err.Error()
			}
			results = append(results, res)
		}
	}
	return results
}
