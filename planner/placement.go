package planner

import (
	"fmt"
	"strings"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

// Several hosts pull one repository and each applies the services placed on
// its node (docs/guides/several-hosts.md). The planner is the one place that
// filters a checkout by node: Desire builds this node's services only, so a
// plan creates, updates and prunes nothing of another node's, and the prune
// guard counts this node's services alone.

// Placement is how a checkout's services fall on this host's node.
type Placement struct {
	// Node is this host's node name.
	Node string
	// Listed is false when cluster.toml has [[node]] entries and none is
	// Node: the host applies nothing.
	Listed bool
	// Elsewhere are the services placed on other nodes only, in project
	// and file order.
	Elsewhere []Elsewhere
}

// Elsewhere is a service that other nodes run.
type Elsewhere struct {
	Project string   `json:"project"`
	Name    string   `json:"name"`
	Nodes   []string `json:"nodes"`
}

// NotANodeError is the plan of a host whose node is not a [[node]] of
// cluster.toml: it applies nothing.
type NotANodeError struct{ Node string }

func (e *NotANodeError) Error() string {
	return fmt.Sprintf("%s is not a [[node]] of cluster.toml", e.Node)
}

// Err is a *NotANodeError when the host is not listed, else nil.
func (pl Placement) Err() error {
	if pl.Listed {
		return nil
	}
	return &NotANodeError{Node: pl.Node}
}

// Place tells where d's services run as seen from this host.
func (p Planner) Place(d *config.Desired) Placement {
	node := p.NodeOf(d)
	pl := Placement{Node: node, Listed: true}
	if d == nil || len(d.Cluster.Nodes) == 0 {
		return pl
	}
	pl.Listed = d.Cluster.NodeNamed(node) != nil
	for _, s := range d.Services() {
		if !d.Cluster.Runs(node, s) {
			pl.Elsewhere = append(pl.Elsewhere, Elsewhere{Project: s.Project, Name: s.Name, Nodes: d.Cluster.NodesOf(s)})
		}
	}
	return pl
}

// Own is d with only the services this host's node runs (d itself without
// [[node]] entries; none at all on a host that is not listed). The copy
// shares everything but its project list.
func (p Planner) Own(d *config.Desired) *config.Desired {
	if d == nil || len(d.Cluster.Nodes) == 0 {
		return d
	}
	node := p.NodeOf(d)
	listed := d.Cluster.NodeNamed(node) != nil
	own := *d
	own.Projects = nil
	for _, proj := range d.Projects {
		cp := *proj
		cp.Services = nil
		for _, s := range proj.Services {
			if listed && d.Cluster.Runs(node, s) {
				cp.Services = append(cp.Services, s)
			}
		}
		if len(cp.Services) > 0 {
			own.Projects = append(own.Projects, &cp)
		}
	}
	return &own
}

// explainMoves says, on the removal of a service that is still in git, that
// it now runs elsewhere: the old node's half of a move.
func explainMoves(plan diff.Plan, pl Placement) {
	nodes := map[string][]string{}
	for _, e := range pl.Elsewhere {
		nodes[e.Project+"/"+e.Name] = e.Nodes
	}
	for i := range plan.Changes {
		c := &plan.Changes[i]
		if ns, ok := nodes[c.Key()]; ok && c.Action == diff.ActionRemove {
			c.Reason = fmt.Sprintf("placed on %s, not on %s", strings.Join(ns, ", "), pl.Node)
		}
	}
}
