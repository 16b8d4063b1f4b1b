// Package planner is the one recipe that plans a checkout against a host:
// list the managed containers, set the live canaries aside, build the
// desired services (resolving pull_policy = "always" images) and diff the
// two. `orca-sync plan` and `apply`, and the daemon's sync, status, drift
// check and pull request plans all plan through it, so they cannot disagree
// on what a plan is.
//
// The stages are separate methods so that the daemon's sync can run the
// ones that do I/O (List, Desire) as steps of their own and keep its plan
// step pure (Compute); Plan runs them in order for everyone else.
package planner

import (
	"context"
	"fmt"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/routing"
)

// Planner plans checkouts against one runtime.
type Planner struct {
	Runtime apply.Runtime
	// Node is the --node flag; "" takes [cluster] node, else the host name.
	Node string
	// Canaries sets the live canary containers of canary services aside:
	// the daemon's canary driver owns them, and the plan sees the stable set
	// only. The one-shot commands leave it off.
	Canaries bool
	// ListTimeout bounds the list call (pulls take as long as they take);
	// 0 leaves it to ctx.
	ListTimeout time.Duration
	// Builds gives the app commit of each service with build; nil: none
	// is known, and such a service plans as out of sync.
	Builds apply.BuildCommits
	// Puller pulls for Plan with pull; nil sends only the credentials of
	// [[registry]] entries.
	Puller *apply.Puller
	// Digests reads the registry digests plan and status show; nil shows
	// none.
	Digester apply.ImageDigester
}

// Live is one list call as the planner sees it.
type Live struct {
	// All is every managed container.
	All []diff.Container
	// Stable is what a plan compares against: All without the canaries.
	Stable []diff.Container
	// Canaries are the set-aside canary containers by service key.
	Canaries map[string][]diff.Container
}

// Result is a planned checkout.
type Result struct {
	Live      Live
	Services  []diff.Service
	Plan      diff.Plan
	Placement Placement
}

// Plan lists, desires and computes: what a sync of d would do now. With
// pull, pull_policy = "always" images are pulled first (a sync, apply);
// without it the local image is used (plan, status). On a host that is not
// a [[node]] it plans nothing and returns a *NotANodeError.
func (p Planner) Plan(ctx context.Context, d *config.Desired, pull bool) (Result, error) {
	pl := p.Place(d)
	if err := pl.Err(); err != nil {
		return Result{Placement: pl}, err
	}
	live, err := p.List(ctx, d)
	if err != nil {
		return Result{Placement: pl}, err
	}
	var puller *apply.Puller
	if pull {
		puller = p.Puller
		if puller == nil {
			puller = apply.NewPuller(p.Runtime, nil)
		}
	}
	services := p.Desire(ctx, d, puller)
	p.Digests(ctx, services, live)
	return Result{Live: live, Services: services, Plan: p.Compute(d, services, live), Placement: pl}, nil
}

// List reads the managed containers with one runtime call and splits them.
func (p Planner) List(ctx context.Context, d *config.Desired) (Live, error) {
	if p.ListTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.ListTimeout)
		defer cancel()
	}
	all, err := p.Runtime.List(ctx)
	if err != nil {
		return Live{}, fmt.Errorf("list containers: %w", err)
	}
	return p.Split(d, all), nil
}

// Split sets the canary containers of d's canary services aside, when the
// planner does so. It makes no call.
func (p Planner) Split(d *config.Desired, all []diff.Container) Live {
	live := Live{All: all, Stable: all}
	if !p.Canaries {
		return live
	}
	canaryKeys := map[string]bool{}
	for _, s := range d.Services() {
		if s.Deploy.Strategy == config.StrategyCanary {
			canaryKeys[s.Key()] = true
		}
	}
	live.Stable, live.Canaries = nil, map[string][]diff.Container{}
	for _, c := range all {
		key := c.Project + "/" + c.Service
		if c.Role == routing.RoleCanary && canaryKeys[key] {
			live.Canaries[key] = append(live.Canaries[key], c)
			continue
		}
		live.Stable = append(live.Stable, c)
	}
	return live
}

// Desire builds the desired services of d this host's node runs
// (apply.Desire of Own): the image of a pull_policy = "always" service is
// resolved, and with a puller pulled first.
func (p Planner) Desire(ctx context.Context, d *config.Desired, pull *apply.Puller) []diff.Service {
	return apply.DesireBuilt(ctx, p.Runtime, p.Own(d), pull, p.Builds)
}

// Digests fills in the registry digest of each desired image and of the
// image each live container runs, for plan and status. One local image
// inspect per distinct image (the runtime may cache them); an image it
// cannot tell about keeps "".
func (p Planner) Digests(ctx context.Context, services []diff.Service, live Live) {
	if p.Digester == nil {
		return
	}
	refs := map[string]string{} // service key → its image reference
	byRef := map[string]string{}
	for i := range services {
		ref := services[i].Image
		refs[services[i].Key()] = ref
		if _, ok := byRef[ref]; !ok {
			byRef[ref], _ = p.Digester.RepoDigest(ctx, ref, ref)
		}
		services[i].Digest = byRef[ref]
	}
	type idRef struct{ id, ref string }
	byID := map[idRef]string{}
	for _, cs := range [][]diff.Container{live.All, live.Stable} {
		for i := range cs {
			c := &cs[i]
			ref, ok := refs[c.Project+"/"+c.Service]
			if !ok || c.ImageID == "" {
				continue
			}
			k := idRef{c.ImageID, ref}
			if _, seen := byID[k]; !seen {
				byID[k], _ = p.Digester.RepoDigest(ctx, c.ImageID, ref)
			}
			c.Digest = byID[k]
		}
	}
}

// Compute diffs the desired services against the stable containers of this
// node. It makes no call.
func (p Planner) Compute(d *config.Desired, services []diff.Service, live Live) diff.Plan {
	node := p.NodeOf(d)
	plan := diff.Compute(services, live.Stable, diff.Options{Prune: d.Cluster.Reconcile.Prune, Node: node})
	plan.Node = diff.NameNode(d, node)
	explainMoves(plan, p.Place(d))
	return plan
}

// NodeOf is this host's node name as d names it.
func (p Planner) NodeOf(d *config.Desired) string { return apply.NodeName(p.Node, d) }
