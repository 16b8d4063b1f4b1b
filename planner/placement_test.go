package planner_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/apply/applytest"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/planner"
)

const nodesABC = `[[node]]
name = "a"
[[node]]
name = "b"
labels = {role = "edge"}
[[node]]
name = "c"
labels = {role = "edge"}
`

const placed = `[[service]]
name = "db"
image = "app:v1"
placement = {node = "a"}
[[service]]
name = "api"
image = "app:v1"
[[service]]
name = "edge"
image = "app:v1"
placement = {labels = {role = "edge"}}
`

func loadWith(t *testing.T, cluster, services string) *config.Desired {
	t.Helper()
	dir := t.TempDir()
	for name, text := range map[string]string{"cluster.toml": cluster, "services/p/service.toml": services} {
		file := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// syncAs plans and applies d as node on rt, the way one host's sync does.
func syncAs(t *testing.T, rt *applytest.Runtime, node string, d *config.Desired) diff.Plan {
	t.Helper()
	ctx := context.Background()
	res, err := planner.Planner{Runtime: rt, Node: node}.Plan(ctx, d, false)
	if err != nil {
		t.Fatalf("plan as %s: %v", node, err)
	}
	if err := res.Plan.CheckPruneGuard(d.Cluster.Reconcile.PruneGuard, false); err != nil {
		t.Fatalf("plan as %s: %v", node, err)
	}
	seen := map[string]bool{}
	for _, r := range apply.New(rt, apply.Options{Node: node}).Apply(ctx, d, res.Plan, "rev") {
		if r.Failed() || seen[r.Service] {
			t.Fatalf("apply as %s: %+v (twice: %v)", node, r, seen[r.Service])
		}
		seen[r.Service] = true
	}
	return res.Plan
}

// running lists "<service>@<node>" for every live container, with its name.
func running(t *testing.T, rt *applytest.Runtime) (where, names []string) {
	t.Helper()
	live, err := rt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range live {
		where = append(where, c.Service+"@"+c.Node)
		names = append(names, c.Name)
	}
	sort.Strings(where)
	return where, names
}

// TestEachNodeRunsItsOwn: three hosts on one engine each start exactly the
// services placed on their node, with the node in the container names, and
// none removes another's.
func TestEachNodeRunsItsOwn(t *testing.T) {
	d := loadWith(t, nodesABC, placed)
	rt := applytest.NewRuntime()
	for _, n := range []string{"a", "b", "c"} {
		syncAs(t, rt, n, d)
	}
	for _, n := range []string{"a", "b", "c"} {
		if p := syncAs(t, rt, n, d); p.HasChanges() {
			t.Fatalf("second sync as %s changes %+v", n, p.Changes)
		}
	}
	where, names := running(t, rt)
	if want := []string{"api@a", "db@a", "edge@b", "edge@c"}; !slices.Equal(where, want) {
		t.Fatalf("running %v, want %v", where, want)
	}
	for _, name := range names {
		parts := strings.Split(name, "-")
		if len(parts) != 5 || !slices.Contains([]string{"a", "b", "c"}, parts[3]) || parts[4] != "1" {
			t.Errorf("container name %q is not <project>-<service>-<hash8>-<node>-<n>", name)
		}
	}
}

// TestMoveRemovesFromOldNode: a service moved from a to b in git leaves a
// at a's next sync (saying where it went) and starts on b at b's.
func TestMoveRemovesFromOldNode(t *testing.T) {
	rt := applytest.NewRuntime()
	d := loadWith(t, nodesABC, placed)
	for _, n := range []string{"a", "b"} {
		syncAs(t, rt, n, d)
	}
	moved := loadWith(t, nodesABC, strings.Replace(placed, `placement = {node = "a"}`, `placement = {node = "b"}`, 1))
	plan := syncAs(t, rt, "a", moved)
	var removal *diff.Change
	for i, c := range plan.Changes {
		if c.Service == "db" {
			removal = &plan.Changes[i]
		}
	}
	if removal == nil || removal.Action != diff.ActionRemove || removal.Reason != "placed on b, not on a" {
		t.Fatalf("a's plan for db: %+v", removal)
	}
	syncAs(t, rt, "b", moved)
	if where, _ := running(t, rt); !slices.Equal(where, []string{"api@a", "db@b", "edge@b"}) {
		t.Fatalf("after the move: %v", where)
	}
}

// TestPruneGuardCountsOwnServices: node b runs one service; a's services
// vanishing from a's view (moved away) do not count on b, and b's prune of
// its one service is refused as "all of them".
func TestPruneGuardCountsOwnServices(t *testing.T) {
	rt := applytest.NewRuntime()
	d := loadWith(t, nodesABC, placed)
	for _, n := range []string{"a", "b"} {
		syncAs(t, rt, n, d)
	}
	// db goes from git: a removes 1 of its 2 services, within the guard,
	// though on the whole engine it is 1 of 3 and b is untouched.
	gone := loadWith(t, nodesABC, placed[strings.Index(placed, "[[service]]\nname = \"api\""):])
	ctx := context.Background()
	res, err := planner.Planner{Runtime: rt, Node: "a"}.Plan(ctx, gone, false)
	if err != nil || res.Plan.Count(diff.ActionRemove) != 1 {
		t.Fatalf("a's plan: %+v %v", res.Plan, err)
	}
	if err := res.Plan.CheckPruneGuard(0.5, false); err != nil {
		t.Fatalf("a's guard counted other nodes' services: %v", err)
	}
	// edge leaves b: all of b's managed services, refused, though a's
	// containers of the same engine still run.
	noEdge := loadWith(t, nodesABC, placed[:strings.Index(placed, "[[service]]\nname = \"edge\"")])
	res, err = planner.Planner{Runtime: rt, Node: "b"}.Plan(ctx, noEdge, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Plan.CheckPruneGuard(0.5, false); err == nil || !strings.Contains(err.Error(), "removes all 1 managed services") {
		t.Fatalf("b's guard: %v", err)
	}
}

// TestUnlistedNodePlansNothing: a host whose node is no [[node]] gets an
// error naming it, and Place lists every service as elsewhere.
func TestUnlistedNodePlansNothing(t *testing.T) {
	d := loadWith(t, nodesABC, placed)
	p := planner.Planner{Runtime: applytest.NewRuntime(), Node: "zz"}
	_, err := p.Plan(context.Background(), d, false)
	var nn *planner.NotANodeError
	if !errors.As(err, &nn) || err.Error() != "zz is not a [[node]] of cluster.toml" {
		t.Fatalf("plan as zz: %v", err)
	}
	if own := p.Own(d); len(own.Services()) != 0 {
		t.Fatalf("zz owns %d services", len(own.Services()))
	}
	pl := p.Place(d)
	if pl.Listed || len(pl.Elsewhere) != 3 || !slices.Equal(pl.Elsewhere[2].Nodes, []string{"b", "c"}) {
		t.Fatalf("place as zz: %+v", pl)
	}
	pl = planner.Planner{Node: "b"}.Place(d)
	if !pl.Listed || len(pl.Elsewhere) != 2 || pl.Elsewhere[0].Name != "db" || pl.Elsewhere[0].Nodes[0] != "a" {
		t.Fatalf("place as b: %+v", pl)
	}
}

// TestWithoutNodesNothingChanges: without [[node]] every host runs every
// service under the names of before, and plans name no node.
func TestWithoutNodesNothingChanges(t *testing.T) {
	d := load(t, twoServices)
	rt := applytest.NewRuntime()
	plan := syncAs(t, rt, "anyhost", d)
	if plan.Node != "" || plan.Count(diff.ActionCreate) != 2 {
		t.Fatalf("plan: %+v", plan)
	}
	if _, names := running(t, rt); len(names) != 2 || strings.Count(names[0], "-") != 3 {
		t.Fatalf("names %v", names)
	}
}
