package config

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Several hosts pull one repository, each applying the services placed on
// its node (docs/guides/several-hosts.md). This file is the selection rule
// and its validation; the planner filters a checkout by it.

// nodeNameRE is the shape of a [[node]] name: it becomes part of container
// names and of the commit status context orca-sync/<node>. Dots are allowed
// so that a host's FQDN can be its node name.
var nodeNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)

// NodeNamed returns the [[node]] called name, or nil.
func (c Cluster) NodeNamed(name string) *Node {
	for i := range c.Nodes {
		if c.Nodes[i].Name == name {
			return &c.Nodes[i]
		}
	}
	return nil
}

// NodesOf returns the names of the nodes that run s, in [[node]] order: the
// one placement.node names, every node whose labels include all of
// placement.labels, or, without placement, the first [[node]]. Without
// [[node]] entries it returns nil: every host runs every service.
func (c Cluster) NodesOf(s *Service) []string {
	if len(c.Nodes) == 0 {
		return nil
	}
	p := s.Placement
	switch {
	case p == nil:
		return []string{c.Nodes[0].Name}
	case p.Node != "":
		if c.NodeNamed(p.Node) == nil {
			return []string{}
		}
		return []string{p.Node}
	}
	out := []string{}
	for _, n := range c.Nodes {
		if hasLabels(n.Labels, p.Labels) {
			out = append(out, n.Name)
		}
	}
	return out
}

// Runs reports whether the host that is node runs s.
func (c Cluster) Runs(node string, s *Service) bool {
	nodes := c.NodesOf(s)
	if nodes == nil {
		return true
	}
	for _, n := range nodes {
		if n == node {
			return true
		}
	}
	return false
}

// share reports whether some node runs both a and b.
func (c Cluster) share(a, b *Service) bool {
	na, nb := c.NodesOf(a), c.NodesOf(b)
	if na == nil || nb == nil {
		return true
	}
	for _, n := range na {
		for _, m := range nb {
			if n == m {
				return true
			}
		}
	}
	return false
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// validatePlacement checks what one service.toml can tell on its own; the
// nodes the selector names are checked by checkPlacements.
// It also records the placement's line, for those later errors.
func validatePlacement(s *Service, sink errorSink) {
	p := s.Placement
	if p != nil {
		p.Line = max(sink.lines.find("service", s.index, "placement"), s.Line)
	}
	switch {
	case p == nil:
	case p.Node != "" && len(p.Labels) > 0:
		sink.service(s, "placement", "placement: give either node or labels, not both")
	case p.Node == "" && len(p.Labels) == 0:
		sink.service(s, "placement", "placement needs node = \"NAME\" or labels = {KEY = \"VALUE\"}")
	}
}

// checkPlacements checks every service's selector against cluster.toml's
// [[node]] entries.
func checkPlacements(d *Desired) Errors {
	var errs Errors
	for _, s := range d.Services() {
		p := s.Placement
		if p == nil || (p.Node != "") == (len(p.Labels) > 0) {
			continue // none, or refused by validatePlacement
		}
		add := func(format string, args ...any) {
			errs = append(errs, Error{File: s.File, Line: p.Line, Service: s.Name, Key: "placement", Message: fmt.Sprintf(format, args...)})
		}
		switch {
		case len(d.Cluster.Nodes) == 0:
			add("placement needs the nodes declared: add a [[node]] entry (name, labels) to cluster.toml for each host")
		case len(d.Cluster.NodesOf(s)) > 0:
		case p.Node != "":
			add("placement.node = %q is not a [[node]] of cluster.toml (nodes: %s)", p.Node, strings.Join(d.Cluster.nodeNames(), ", "))
		default:
			add("placement.labels %s match no [[node]] of cluster.toml", labelList(p.Labels))
		}
	}
	return errs
}

func (c Cluster) nodeNames() []string {
	names := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		names[i] = n.Name
	}
	return names
}

func labelList(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s = %q", k, labels[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// validateNodes checks the [[node]] entries of cluster.toml.
func validateNodes(c *Cluster, sink errorSink) {
	seen := map[string]bool{}
	for i, n := range c.Nodes {
		switch {
		case n.Name == "":
			sink.at("node", i, "name", "[[node]] needs a name")
		case !nodeNameRE.MatchString(n.Name) || len(n.Name) > 63:
			sink.at("node", i, "name", "node name %q must match [a-z0-9][a-z0-9.-]* (at most 63 characters)", n.Name)
		case seen[n.Name]:
			sink.at("node", i, "name", "node %q is declared twice", n.Name)
		}
		seen[n.Name] = true
		for _, k := range sortedKeys(n.Labels) {
			if k == "" {
				sink.at("node", i, "labels", "node %q: a label needs a name", n.Name)
			}
		}
	}
}
