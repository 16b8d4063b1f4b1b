package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/build"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/state"
)

// lookup finds the head of every build branch with one remote lookup each
// (docs/guides/builds.md). A branch that cannot be looked up keeps the
// commit found before, else the one its running containers were built
// from, so a git host that is down changes nothing that runs.
func (s *syncer) lookup(ctx context.Context, r *run) error {
	b := s.opts.Builder
	if b == nil || !hasBuilds(r) {
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	errs := b.Resolve(lctx, r.desired)
	for _, svc := range r.desired.Services() {
		err := errs[svc.Key()]
		if err == nil {
			continue
		}
		b.Known(svc, liveBuildCommit(r.live.Stable, svc.Project, svc.Name))
		s.log.Warn("build: branch lookup failed; keeping the commit found before", "service", svc.Key(), "error", err)
	}
	return nil
}

// buildTimeout bounds one build (fetch, context, builder), so a hung
// builder cannot stop the loop for good (docs/guides/builds.md).
const buildTimeout = 30 * time.Minute

// build makes the image of every service with build whose commit the
// engine has no image of. A spec already pinned as failed is not built
// again until git changes it or a retry clears the pin.
func (s *syncer) build(ctx context.Context, r *run) error {
	if !hasBuilds(r) {
		return nil
	}
	for _, svc := range r.services {
		if svc.Build == nil {
			continue
		}
		key := svc.Key()
		if pin, ok := r.pins[key]; ok && pin.Hash == svc.Hash {
			continue
		}
		err := errors.New("this orca-sync builds no images")
		if b := s.opts.Builder; b != nil {
			bctx, cancel := context.WithTimeout(ctx, buildTimeout)
			_, err = b.Ensure(bctx, r.desired, svc.Service, svc.Spec.Build.Commit)
			cancel()
		}
		if err != nil {
			if r.buildFailed == nil {
				r.buildFailed = map[string]error{}
			}
			r.buildFailed[key] = err
			s.log.Error("build failed; the running containers stay", "service", key, "error", err)
		}
	}
	return nil
}

func hasBuilds(r *run) bool {
	for _, svc := range r.desired.Services() {
		if svc.Build != nil {
			return true
		}
	}
	return false
}

// liveBuildCommit is the app commit the service's containers were built
// from, per their spec labels ("" when none says).
func liveBuildCommit(live []diff.Container, project, service string) string {
	for _, c := range live {
		if c.Project == project && c.Service == service && c.Spec != nil && c.Spec.Build != nil {
			return c.Spec.Build.Commit
		}
	}
	return ""
}

// holdFailedBuilds turns the change of a service whose build failed into
// nothing: its containers keep running what they run.
func holdFailedBuilds(plan *diff.Plan, failed map[string]error) {
	for i := range plan.Changes {
		c := &plan.Changes[i]
		err, ok := failed[c.Key()]
		if !ok || c.Desired == nil {
			continue
		}
		if c.Action == diff.ActionCreate || c.Action == diff.ActionUpdate {
			c.Action = diff.ActionNone
			c.Reason = "build failed: " + firstLine(err.Error())
		}
	}
}

// buildResults are the failed builds as failed results, and pins the specs
// whose build the builder refused: such a commit fails the same way until
// git changes it. A build that could not run (git or the engine
// unreachable) is not pinned; the next sync tries again.
func (s *syncer) buildResults(r *run) (results []apply.Result, failed []string) {
	for _, svc := range r.services {
		err, ok := r.buildFailed[svc.Key()]
		if !ok {
			continue
		}
		res := apply.Result{Project: svc.Project, Service: svc.Name, Action: diff.ActionUpdate, Error: err.Error()}
		results = append(results, res)
		failed = append(failed, fmt.Sprintf("%s: %s", svc.Key(), firstLine(err.Error())))
		var be *build.Error
		if !errors.As(err, &be) || !be.Refused {
			continue
		}
		pin := state.Pin{Service: svc.Key(), Hash: svc.Hash, Reason: firstLine(err.Error()), Since: time.Now()}
		if err := s.opts.Store.Pin(pin); err != nil {
			s.log.Error("pin failed build", "service", pin.Service, "error", err)
		}
	}
	return results, failed
}

func joinFailed(failed []string) string { return strings.Join(failed, "; ") }
