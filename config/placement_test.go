package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const threeNodes = `[[node]]
name = "a"

[[node]]
name = "b"
labels = {role = "edge", zone = "x"}

[[node]]
name = "c"
labels = {role = "edge"}
`

func TestPlacementSelectsNodes(t *testing.T) {
	root := writeTree(t, map[string]string{
		"cluster.toml": threeNodes,
		"services/p/service.toml": `[[service]]
name = "on-a"
image = "app:v1"
placement = {node = "a"}

[[service]]
name = "anywhere"
image = "app:v1"

[[service]]
name = "edge"
image = "app:v1"
[service.placement]
labels = {role = "edge"}

[[service]]
name = "edge-x"
image = "app:v1"
placement = {labels = {role = "edge", zone = "x"}}
`,
	})
	d, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"on-a": {"a"}, "anywhere": {"a"}, "edge": {"b", "c"}, "edge-x": {"b"}}
	for _, s := range d.Services() {
		if got := d.Cluster.NodesOf(s); !slices.Equal(got, want[s.Name]) {
			t.Errorf("%s runs on %v, want %v", s.Name, got, want[s.Name])
		}
		for _, n := range []string{"a", "b", "c", "zz"} {
			if got := d.Cluster.Runs(n, s); got != slices.Contains(want[s.Name], n) {
				t.Errorf("Runs(%s, %s) = %v", n, s.Name, got)
			}
		}
	}
}

func TestNoNodesRunsEverywhere(t *testing.T) {
	d, err := Load(writeTree(t, map[string]string{"services/p/service.toml": okService}))
	if err != nil {
		t.Fatal(err)
	}
	s := d.Services()[0]
	if d.Cluster.NodesOf(s) != nil || !d.Cluster.Runs("any-host", s) {
		t.Fatalf("without [[node]] a service runs on every host; NodesOf = %v", d.Cluster.NodesOf(s))
	}
}

func TestPlacementErrors(t *testing.T) {
	svc := "[[service]]\nname = \"web\"\nimage = \"app:v1\"\n"
	cases := []struct {
		name, cluster, service, want string
	}{
		{"both keys", threeNodes, svc + "placement = {node = \"a\", labels = {role = \"edge\"}}\n",
			"services/p/service.toml:4: web: placement: give either node or labels, not both"},
		{"neither key", threeNodes, svc + "[service.placement]\n",
			"services/p/service.toml:4: web: placement needs node"},
		{"unknown node", threeNodes, svc + "\n[service.placement]\nnode = \"d\"\n",
			`services/p/service.toml:5: web: placement.node = "d" is not a [[node]] of cluster.toml (nodes: a, b, c)`},
		{"labels match no node", threeNodes, svc + "placement = {labels = {role = \"db\"}}\n",
			`services/p/service.toml:4: web: placement.labels {role = "db"} match no [[node]] of cluster.toml`},
		{"no nodes", "", svc + "placement = {node = \"a\"}\n",
			"services/p/service.toml:4: web: placement needs the nodes declared: add a [[node]] entry"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeTree(t, map[string]string{"cluster.toml": tc.cluster, "services/p/service.toml": tc.service}))
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want) {
				t.Fatalf("want one error containing %q, got %v", tc.want, err)
			}
		})
	}
}

// Two hosts may publish the same host port or claim the same domain for
// services that never run on one host together.
func TestClaimsClashOnlyOnOneNode(t *testing.T) {
	svc := func(name, node string) string {
		return "[[service]]\nname = \"" + name + "\"\nimage = \"app:v1\"\nport = 80\ndomain = \"x.example.com\"\nextra_ports = [\"2222:22\"]\nplacement = {node = \"" + node + "\"}\n"
	}
	files := map[string]string{"cluster.toml": threeNodes, "services/p/service.toml": svc("one", "a"), "services/q/service.toml": svc("two", "b")}
	if _, err := Load(writeTree(t, files)); err != nil {
		t.Fatalf("services on different nodes: %v", err)
	}
	files["services/q/service.toml"] = svc("two", "a")
	_, err := Load(writeTree(t, files))
	if err == nil || !strings.Contains(err.Error(), "host port 2222/tcp is already published by p/one") || !strings.Contains(err.Error(), "already claimed by p/one") {
		t.Fatalf("services on one node: %v", err)
	}
}
