package diff

import (
	"fmt"
	"sort"

	"github.com/orca-sync/orca-sync/config"
)

// Container is what the planner knows of one live managed container: what a
// single Docker list call returns, labels decoded.
type Container struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Project string `json:"project"`
	Service string `json:"service"`
	// Index is the replica number n, the last part of the name (ContainerName).
	Index    int    `json:"index"`
	Hash     string `json:"spec_hash"`
	Revision string `json:"revision,omitempty"`
	Role     string `json:"role,omitempty"`
	Node     string `json:"node,omitempty"`
	// State is Docker's: created, running, paused, restarting, removing,
	// exited, dead.
	State string `json:"state"`
	// Health is the image HEALTHCHECK's status, "" without one.
	Health string `json:"health,omitempty"`
	Status string `json:"status,omitempty"`
	// ImageID is the image the container runs, from the list call.
	ImageID string `json:"image_id,omitempty"`
	// Digest is the registry digest of that image, "" when unknown (the
	// planner reads it when the runtime can tell).
	Digest string `json:"digest,omitempty"`
	Spec   *Spec  `json:"-"`
	// Binds are the container's bind mounts from the list call (host path,
	// target, mode): which snapshots are in use, and checked for drift.
	Binds []config.Mount `json:"-"`
	// IPs are the container's IPv4 addresses by network name, from the list
	// call: the proxy routes a container it has not seen with them, without
	// an inspect.
	IPs map[string]string `json:"-"`
	// Addr is where the proxy reaches the container when the engine says
	// so itself (Swarm: the task's node address and the host port Swarm
	// published for it, docs/guides/swarm.md); "" takes its address on the
	// project network.
	Addr string `json:"addr,omitempty"`
	// Replace asks a rollout to replace this container although its spec is
	// the desired one (a redeploy, or its image tag moved).
	Replace bool `json:"-"`
}

// ContainerName is <project>-<service>-<hash8>-<n>, and with a node
// <project>-<service>-<hash8>-<node>-<n>: hosts of one repository that send
// logs and metrics to one place tell their containers apart by it
// (docs/guides/several-hosts.md).
func ContainerName(project, service, hash, node string, index int) string {
	if node != "" {
		return fmt.Sprintf("%s-%s-%s-%s-%d", project, service, hash[:min(8, len(hash))], node, index)
	}
	return fmt.Sprintf("%s-%s-%s-%d", project, service, hash[:min(8, len(hash))], index)
}

// NameNode is the node part of the container names of d on node: node
// when cluster.toml declares [[node]] entries, else "" (names stay as they
// were before nodes existed).
func NameNode(d *config.Desired, node string) string {
	if d == nil || len(d.Cluster.Nodes) == 0 {
		return ""
	}
	return node
}

// StateRemoving is Docker's state of a container whose removal has begun
// and not yet finished.
const StateRemoving = "removing"

// Serving reports whether the container runs and is not known to be
// unhealthy. It is the one rule for plan, status, drift, apply and the
// proxy's routes. A container still starting by its image HEALTHCHECK serves:
// apply admits a container by its readiness probe when it has one (the
// HEALTHCHECK may still be starting then) before routing it in, and healing
// or unrouting it would cut the HEALTHCHECK's start period short.
func (c Container) Serving() bool { return c.State == "running" && c.Health != "unhealthy" }

// Service is a desired service with its container spec.
type Service struct {
	*config.Service
	Spec Spec
	Hash string
	// Digest is the registry digest the image reference resolves to on
	// this host, "" when unknown; shown by plan and status, never hashed.
	Digest string
	// PullErr is why the pull of a pull_policy = "always" image failed;
	// the spec then has the local image.
	PullErr error
}

// Action is what a plan does to one service.
type Action string

// Actions, in the order a plan lists them.
const (
	ActionCreate Action = "create"
	ActionUpdate Action = "update"
	ActionScale  Action = "scale"
	ActionHeal   Action = "heal"
	ActionRemove Action = "remove"
	ActionNone   Action = "none"
)

// Change is the plan for one service.
type Change struct {
	Project  string        `json:"project"`
	Service  string        `json:"service"`
	Action   Action        `json:"action"`
	Strategy string        `json:"strategy,omitempty"`
	Fields   []FieldChange `json:"fields,omitempty"`
	// Digest is the registry digest of the desired image, when known.
	Digest string `json:"digest,omitempty"`
	// Replicas is the desired count, Live the containers that exist now.
	Replicas int `json:"replicas"`
	Live     int `json:"live"`
	// Broken counts live containers that are not serving (exited, unhealthy).
	Broken int    `json:"broken,omitempty"`
	Reason string `json:"reason,omitempty"`

	Desired    *Service    `json:"-"`
	Containers []Container `json:"-"`
}

// Key is "<project>/<service>".
func (c Change) Key() string { return c.Project + "/" + c.Service }

// Plan is the set of changes that converges a host to a checkout.
type Plan struct {
	// Node is the node the plan is for, set when cluster.toml declares
	// [[node]] entries: the plan holds that node's services only.
	Node    string   `json:"node,omitempty"`
	Changes []Change `json:"changes"`
}

// HasChanges reports whether applying the plan would change anything.
func (p Plan) HasChanges() bool {
	for _, c := range p.Changes {
		if c.Action != ActionNone {
			return true
		}
	}
	return false
}

// Count returns how many changes have the given action.
func (p Plan) Count(a Action) int {
	n := 0
	for _, c := range p.Changes {
		if c.Action == a {
			n++
		}
	}
	return n
}

// Options tune Compute.
type Options struct {
	// Prune removes services gone from the checkout; without it they are left
	// running and listed as unmanaged by git.
	Prune bool
	// Node is this host's node: containers labelled with another node belong
	// to another orca-sync and are neither planned for nor pruned.
	Node string
}

// Compute returns the plan that takes live to desired. It reads only its
// arguments.
func Compute(desired []Service, live []Container, opts Options) Plan {
	byKey := map[string][]Container{}
	for _, c := range live {
		if !OwnNode(c, opts.Node) {
			continue
		}
		k := c.Project + "/" + c.Service
		byKey[k] = append(byKey[k], c)
	}
	var plan Plan
	seen := map[string]bool{}
	for i := range desired {
		d := &desired[i]
		k := d.Key()
		seen[k] = true
		plan.Changes = append(plan.Changes, serviceChange(d, byKey[k]))
	}
	var gone []string
	for k := range byKey {
		if !seen[k] {
			gone = append(gone, k)
		}
	}
	sort.Strings(gone)
	for _, k := range gone {
		cs := byKey[k]
		c := Change{Project: cs[0].Project, Service: cs[0].Service, Action: ActionRemove, Live: len(cs), Containers: cs}
		if !opts.Prune {
			c.Action, c.Reason = ActionNone, "gone from git; not removed because prune is off"
		}
		plan.Changes = append(plan.Changes, c)
	}
	sort.SliceStable(plan.Changes, func(i, j int) bool { return plan.Changes[i].Key() < plan.Changes[j].Key() })
	return plan
}

func serviceChange(d *Service, live []Container) Change {
	c := Change{
		Project: d.Project, Service: d.Name, Action: ActionNone, Strategy: d.Deploy.Strategy,
		Replicas: d.Replicas, Live: len(live), Desired: d, Containers: live, Digest: d.Digest,
	}
	var outdated *Container
	for i := range live {
		if live[i].Hash != d.Hash && outdated == nil {
			outdated = &live[i]
		}
		if !live[i].Serving() {
			c.Broken++
		}
	}
	switch {
	case len(live) == 0 && d.Replicas > 0:
		c.Action = ActionCreate
	case outdated != nil:
		c.Action = ActionUpdate
		c.Fields = withDigest(FieldChanges(outdated.Spec, &d.Spec), outdated.Digest, d.Digest)
	case c.Broken > 0:
		c.Action, c.Reason = ActionHeal, fmt.Sprintf("%d of %d containers not serving", c.Broken, len(live))
	case len(live) < d.Replicas && maxIndex(live) >= d.Replicas:
		// A replica number below the highest is missing: removed by hand.
		c.Action, c.Reason = ActionHeal, fmt.Sprintf("%d of %d containers missing", d.Replicas-len(live), d.Replicas)
	case len(live) != d.Replicas:
		c.Action = ActionScale
	case maxIndex(live) > d.Replicas:
		c.Action, c.Reason = ActionHeal, "replica numbers out of place"
	}
	return c
}

func maxIndex(live []Container) int {
	m := 0
	for _, c := range live {
		m = max(m, c.Index)
	}
	return m
}

// CheckPruneGuard refuses a plan that removes more than guard (a fraction) of
// the managed services, or all of them, unless allowed.
func (p Plan) CheckPruneGuard(guard float64, allowMass bool) error {
	if allowMass {
		return nil
	}
	managed, removed := 0, 0
	for _, c := range p.Changes {
		if c.Live > 0 {
			managed++
		}
		if c.Action == ActionRemove {
			removed++
		}
	}
	if removed == 0 {
		return nil
	}
	if removed == managed {
		return fmt.Errorf("prune guard: the plan removes all %d managed services; set [reconcile] allow_empty = true or use --allow-mass-prune if that is intended", managed)
	}
	if float64(removed)/float64(managed) > guard {
		return fmt.Errorf("prune guard: the plan removes %d of %d managed services, more than prune_guard = %v; use --allow-mass-prune if that is intended", removed, managed, guard)
	}
	return nil
}
