package reconcile

import (
	"context"
	"fmt"
	"time"

	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/state"
)

// plan is the sync's one decision, and it makes no call: it diffs the
// desired services against the stable containers, forces redeploys and
// moved images, applies each service's drift policy, liveness replacements
// and flap suppression, and holds the specs pinned as failed. What it
// decided to write or tell (unpins, drift and degraded news) it leaves in
// the run for the steps after it; it only updates the in-memory judgement
// of the drift checker and the healer (first-seen times, flap counts).
func (s *syncer) plan(_ context.Context, r *run) error {
	r.plan = s.planner.Compute(r.desired, r.services, r.live)
	forceReplace(&r.plan, r.pending, r.imageIDs)
	r.drift = s.drift.check(driftInput{
		desired: r.desired, commit: r.commit.SHA, services: r.services, live: r.live.Stable,
		inspected: r.inspected, modified: r.modified, unhealthy: s.heal.failing(), node: s.planner.NodeOf(r.desired),
	})
	r.repaired = s.drift.applyPolicy(&r.plan, r.drift.findings)
	r.degraded = s.heal.decide(r, s.planner.NodeOf(r.desired), time.Now())
	r.unpins = holdPinned(&r.plan, r.pins)
	holdFailedBuilds(&r.plan, r.buildFailed)
	return nil
}

// forceReplace makes redeployed services, and refreshed services whose image
// moved, roll even though their spec did not change.
func forceReplace(plan *diff.Plan, p pending, imageIDs map[string]string) {
	for i := range plan.Changes {
		c := &plan.Changes[i]
		key := c.Key()
		if c.Desired == nil || !(p.redeploy[key] || p.refresh[key]) || c.Action != diff.ActionNone {
			continue
		}
		if !p.redeploy[key] && !imageMoved(c.Containers, imageIDs[key]) {
			continue
		}
		outdated := make([]diff.Container, len(c.Containers))
		for j, ctr := range c.Containers {
			ctr.Replace = true
			outdated[j] = ctr
		}
		c.Containers, c.Action, c.Reason = outdated, diff.ActionUpdate, "redeploy"
	}
}

func imageMoved(cs []diff.Container, id string) bool {
	for _, c := range cs {
		if id != "" && c.ImageID != "" && c.ImageID != id {
			return true
		}
	}
	return false
}

// holdPinned turns the change of a service whose current spec already failed
// into nothing, until git changes the spec or a retry clears the pins. It
// returns the pins git made stale, for the unpin step.
func holdPinned(plan *diff.Plan, pins map[string]state.Pin) (unpins []string) {
	for i := range plan.Changes {
		c := &plan.Changes[i]
		pin, ok := pins[c.Key()]
		if !ok {
			continue
		}
		if c.Desired == nil || c.Desired.Hash != pin.Hash {
			unpins = append(unpins, c.Key())
			continue
		}
		if c.Action == diff.ActionCreate || c.Action == diff.ActionUpdate {
			c.Action = diff.ActionNone
			c.Reason = fmt.Sprintf("held: this spec failed at %s (%s); push a fix or run `orca-sync sync --retry`",
				pin.Since.Format(time.RFC3339), pin.Reason)
		}
	}
	return unpins
}

// unpin forgets the pins of specs git has changed since they failed.
func (s *syncer) unpin(_ context.Context, r *run) error {
	for _, key := range r.unpins {
		if err := s.opts.Store.Unpin(key); err != nil {
			return fmt.Errorf("unpin %s: %w", key, err)
		}
	}
	return nil
}

// announce tells what the plan step found: a new set of drift findings, and
// the services that just reached the flap limit.
func (s *syncer) announce(_ context.Context, r *run) error {
	s.drift.announce(r.drift)
	for _, d := range r.degraded {
		s.heal.announce(d)
	}
	return nil
}
