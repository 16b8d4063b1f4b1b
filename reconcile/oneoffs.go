package reconcile

import (
	"context"
	"time"

	"github.com/orca-sync/orca-sync/state"
)

// sweep removes the hook and job containers a crash left behind
// (docs/guides/hooks-and-jobs.md#crashes): a pre_deploy's rollout is planned
// again and runs its hook again; a post_deploy's is run again by the apply
// step. A failed sweep is logged and the sync goes on.
func (s *syncer) sweep(ctx context.Context, r *run) error {
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	removed, err := s.applier.SweepOneOffs(sctx, s.planner.NodeOf(r.desired))
	if err != nil {
		s.log.Warn("remove one-off containers left by a crash", "error", err)
	}
	r.swept = removed
	return nil
}

// rerunHooks runs again the post_deploy hooks whose containers the sweep
// removed; their results join the sync's like any rollout's.
func (s *syncer) rerunHooks(ctx context.Context, r *run) {
	if len(r.swept) == 0 {
		return
	}
	r.hookResults = s.applier.RerunPostDeploy(ctx, r.desired, r.commit.SHA, r.services, r.swept)
	r.results = append(r.results, r.hookResults...)
	for _, res := range r.hookResults {
		if !res.Failed() {
			continue
		}
		// Pinned at the deployed spec, so status says Failed until git
		// changes it (docs/guides/hooks-and-jobs.md#post_deploy).
		for _, svc := range r.services {
			if svc.Project == res.Project && svc.Name == res.Service {
				pin := state.Pin{Service: svc.Key(), Hash: svc.Hash, Reason: firstLine(res.Error), Since: time.Now()}
				if err := s.opts.Store.Pin(pin); err != nil {
					s.log.Error("pin failed hook", "service", pin.Service, "error", err)
				}
			}
		}
	}
}
