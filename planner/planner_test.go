package planner_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/apply/applytest"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/planner"
	"github.com/orca-sync/orca-sync/routing"
)

func load(t *testing.T, toml string) *config.Desired {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "services", "p", "service.toml")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

const twoServices = `[[service]]
name = "web"
image = "app:v1"
[service.deploy]
strategy = "canary"
canary_weight = 10
[[service]]
name = "api"
image = "app:v1"
`

// TestSplitSetsCanariesAside: only the canary-role containers of canary
// services leave the planned set, and only when the planner is asked to.
func TestSplitSetsCanariesAside(t *testing.T) {
	d := load(t, twoServices)
	all := []diff.Container{
		{ID: "1", Project: "p", Service: "web", Role: routing.RoleCanary},
		{ID: "2", Project: "p", Service: "web"},
		{ID: "3", Project: "p", Service: "api", Role: routing.RoleCanary}, // api is no canary service
	}
	live := planner.Planner{Canaries: true}.Split(d, all)
	if len(live.All) != 3 || len(live.Stable) != 2 || live.Stable[0].ID != "2" || live.Stable[1].ID != "3" {
		t.Fatalf("stable = %+v", live.Stable)
	}
	if cs := live.Canaries["p/web"]; len(cs) != 1 || cs[0].ID != "1" || len(live.Canaries) != 1 {
		t.Fatalf("canaries = %+v", live.Canaries)
	}
	if live := (planner.Planner{}).Split(d, all); len(live.Stable) != 3 || live.Canaries != nil {
		t.Fatalf("without Canaries the split kept %d of 3 and set %v aside", len(live.Stable), live.Canaries)
	}
}

// TestPlanIsTheRecipe: Plan lists, desires and computes; a second plan after
// applying it has nothing to do.
func TestPlanIsTheRecipe(t *testing.T) {
	ctx := context.Background()
	d := load(t, twoServices)
	rt := applytest.NewRuntime()
	p := planner.Planner{Runtime: rt, Node: "n1", Canaries: true}
	res, err := p.Plan(ctx, d, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Services) != 2 || res.Plan.Count(diff.ActionCreate) != 2 {
		t.Fatalf("plan of an empty host: %+v", res.Plan)
	}
	for _, r := range apply.New(rt, apply.Options{Node: "n1"}).Apply(ctx, d, res.Plan, "rev") {
		if r.Failed() {
			t.Fatalf("apply: %+v", r)
		}
	}
	res, err = p.Plan(ctx, d, false)
	if err != nil || res.Plan.HasChanges() || len(res.Live.All) != 2 {
		t.Fatalf("plan after apply: %+v %v", res.Plan, err)
	}
}
