package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/notify/github/githubtest"
	"github.com/orca-sync/orca-sync/reconcile"
	"github.com/orca-sync/orca-sync/state"
)

// threeNodes is a cluster.toml of nodes a, b and c; b and c are the edge.
// Syncs come only when a test asks for them.
const threeNodes = `[reconcile]
interval_secs = 3600

[[node]]
name = "a"

[[node]]
name = "b"
labels = {role = "edge"}

[[node]]
name = "c"
labels = {role = "edge"}
`

// placedService is the test app as service name, placed by the line
// placement ("" for none).
func placedService(name, placement string) svc {
	s := webApp(imageV1, 1)
	s.Name = name
	if placement != "" {
		s.Keys = []string{placement}
	}
	return s
}

// runningWhere lists "<service>@<node>" for every container of project,
// sorted, and fails unless each name is <project>-<service>-<hash8>-<node>-<n>.
func runningWhere(t *testing.T, env *Env, project string) []string {
	t.Helper()
	var where []string
	for _, c := range env.mustContainers(t, project, "") {
		svc, node := c.Labels["orca.service"], c.Labels["orca.node"]
		where = append(where, svc+"@"+node)
		name := nameOf(c)
		rest, ok := strings.CutPrefix(name, project+"-"+svc+"-")
		if parts := strings.Split(rest, "-"); !ok || len(parts) != 3 || len(parts[0]) != 8 || parts[1] != node || parts[2] != "1" {
			t.Errorf("container %s of %s on %s is not named <project>-<service>-<hash8>-<node>-<n>", name, svc, node)
		}
	}
	sort.Strings(where)
	return where
}

// elsewhereOf is status's "elsewhere" line of a service: its nodes, or nil.
func elsewhereOf(st reconcile.Status, project, name string) []string {
	for _, e := range st.Elsewhere {
		if e.Project == project && e.Name == name {
			return e.Nodes
		}
	}
	return nil
}

// waitOwnSynced waits until d has synced and every service of its own is
// Synced and Healthy: a sync that failed a create is followed by quiet ones
// that succeed, so the last sync's result alone does not tell.
func waitOwnSynced(t *testing.T, d *daemon) {
	t.Helper()
	d.waitIdle(t)
	waitFor(t, 60*time.Second, func() (bool, string) {
		st := d.status()
		for _, s := range st.Services {
			if s.Sync != reconcile.SyncSynced || s.Health != reconcile.HealthHealthy {
				return false, fmt.Sprintf("%s/%s: %s %s: %s", s.Project, s.Name, s.Sync, s.Health, s.Reason)
			}
		}
		return len(st.Services) > 0, fmt.Sprintf("no services: %+v", st)
	})
}

func ownServices(st reconcile.Status) []string {
	var out []string
	for _, s := range st.Services {
		out = append(out, s.Name)
	}
	sort.Strings(out)
	return out
}

// createProjectNetwork creates orca-<project> before several serves start.
// One engine stands in for several hosts, which on real hosts would each
// have their own: serves creating it at the same moment on one engine is an
// artifact of the test (an engine before API 1.44 takes a name twice, and a
// container started while the duplicate exists fails as "ambiguous").
func createProjectNetwork(t *testing.T, env *Env, project string) {
	t.Helper()
	ctx, cancel := env.ctx()
	defer cancel()
	if _, err := docker.NetworkCreate(ctx, "orca-"+project, client.NetworkCreateOptions{
		Driver: "bridge", Labels: map[string]string{"orca.managed": "true"}}); err != nil {
		t.Fatalf("create the project network: %v", err)
	}
}

// TestSeveralHostsPlaceServices: three serve processes (nodes a, b, c, each
// with its own data dir and API port) and one that is no [[node]], against
// one smart-HTTP remote and one engine. Each starts exactly the containers
// placed on its node and labels them with it; moving a service in git moves
// its container at the next syncs, and a's prune of it is not refused
// because of the containers of b and c; the unlisted host applies nothing
// and says why, once.
func TestSeveralHostsPlaceServices(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("hosts")
	repo, srv := newServedRepo(t)
	repo.WriteFile("cluster.toml", threeNodes)
	repo.WriteFile("services/"+p+"/service.toml", services(
		placedService("pinned", `placement = {node = "a"}`),
		placedService("free", ""),
		placedService("edge", `placement = {labels = {role = "edge"}}`)))
	repo.CommitPush("three services on three nodes")
	url := srv.URL("infra.git")
	createProjectNetwork(t, env, p)
	hosts := map[string]*daemon{}
	for _, n := range []string{"a", "b", "c"} {
		hosts[n] = startServe(t, env, url, "--node", n)
	}
	for _, n := range []string{"a", "b", "c"} {
		waitOwnSynced(t, hosts[n])
	}
	if got, want := runningWhere(t, env, p), []string{"edge@b", "edge@c", "free@a", "pinned@a"}; !slices.Equal(got, want) {
		t.Fatalf("running %v, want %v", got, want)
	}
	stA, stB := hosts["a"].status(), hosts["b"].status()
	if got := ownServices(stA); !slices.Equal(got, []string{"free", "pinned"}) || !slices.Equal(elsewhereOf(stA, p, "edge"), []string{"b", "c"}) || stA.Node != "a" {
		t.Fatalf("a's status: node %q, services %v, elsewhere %+v", stA.Node, got, stA.Elsewhere)
	}
	if got := ownServices(stB); !slices.Equal(got, []string{"edge"}) || !slices.Equal(elsewhereOf(stB, p, "pinned"), []string{"a"}) {
		t.Fatalf("b's status: services %v, elsewhere %+v", got, stB.Elsewhere)
	}
	code, metrics := hosts["b"].call(http.MethodGet, "/metrics")
	if want := `orca_sync_reconcile_total{node="b",result="succeeded"} `; code != 200 || !strings.Contains(string(metrics), want) {
		t.Fatalf("b's metrics lack %s:\n%s", want, metrics)
	}

	t.Run("move", func(t *testing.T) {
		repo.WriteFile("services/"+p+"/service.toml", services(
			placedService("pinned", `placement = {node = "b"}`),
			placedService("free", ""),
			placedService("edge", `placement = {labels = {role = "edge"}}`)))
		moved := repo.CommitPush("move pinned to b")
		// a removes pinned: one of its two services, within prune_guard =
		// 0.5; b's and c's containers on the same engine are not a's to
		// count or prune. (Quiet syncs may follow; the history keeps the
		// one that changed something.)
		hosts["a"].syncAndWait(t)
		var rec *state.SyncRecord
		for _, r := range hosts["a"].history() {
			if r.Commit == moved && len(r.Services) > 0 {
				rec = &r
			}
		}
		if rec == nil || rec.Result != reconcile.ResultSucceeded || len(rec.Services) != 1 ||
			rec.Services[0].Service != "pinned" || rec.Services[0].Action != "remove" {
			t.Fatalf("a's sync of the move: %+v", rec)
		}
		// b may have synced on its own meanwhile (any sync fetches git), so
		// where pinned runs is checked once both have.
		hosts["b"].syncAndWait(t)
		hosts["c"].syncAndWait(t)
		if got, want := runningWhere(t, env, p), []string{"edge@b", "edge@c", "free@a", "pinned@b"}; !slices.Equal(got, want) {
			t.Fatalf("after the move: %v, want %v", got, want)
		}
		if st := hosts["a"].status(); !slices.Equal(elsewhereOf(st, p, "pinned"), []string{"b"}) {
			t.Fatalf("a's status after the move: elsewhere %+v", st.Elsewhere)
		}
	})

	t.Run("unlisted node", func(t *testing.T) {
		zz := startServe(t, env, url, "--node", "zz", "--interval", "1s")
		st := zz.waitIdle(t)
		const says = "zz is not a [[node]] of cluster.toml"
		if st.NodeError != says || st.LastSync.Result != reconcile.ResultNotANode || len(st.Services) != 0 || len(st.Elsewhere) != 3 {
			t.Fatalf("zz's status: node error %q, last sync %+v, services %+v, elsewhere %+v", st.NodeError, st.LastSync, st.Services, st.Elsewhere)
		}
		// Ticks come every second and fetch (one request or more each);
		// a, b and c sync only when asked. The log says it once.
		from := srv.Requests()
		waitFor(t, 60*time.Second, func() (bool, string) {
			return srv.Requests() >= from+10, fmt.Sprintf("%d requests since", srv.Requests()-from)
		})
		if n := strings.Count(zz.logs.String(), says); n != 1 {
			t.Fatalf("the log says %q %d times, want once:\n%s", says, n, zz.logs.String())
		}
		for _, c := range env.mustContainers(t, p, "") {
			if c.Labels["orca.node"] == "zz" {
				t.Fatalf("zz started %s", nameOf(c))
			}
		}
		if got := runningWhere(t, env, p); len(got) != 4 {
			t.Fatalf("after zz started: %v", got)
		}
	})

	t.Run("bad selector keeps what runs", func(t *testing.T) {
		repo.WriteFile("services/"+p+"/service.toml", services(
			placedService("pinned", `placement = {node = "d"}`),
			placedService("free", ""),
			placedService("edge", `placement = {labels = {role = "edge"}}`)))
		repo.CommitPush("place pinned on a node that does not exist")
		st := hosts["b"].syncAndWait(t)
		want := fmt.Sprintf(`services/%s/service.toml:6: pinned: placement.node = "d" is not a [[node]] of cluster.toml`, p)
		if st.LastSync.Result != reconcile.ResultInvalid || len(st.Errors) != 1 || st.Errors[0].Error() != want+" (nodes: a, b, c)" {
			t.Fatalf("b's status: last sync %+v, errors %v; want %q", st.LastSync, st.Errors, want)
		}
		if got, want := runningWhere(t, env, p), []string{"edge@b", "edge@c", "free@a", "pinned@b"}; !slices.Equal(got, want) {
			t.Fatalf("after an invalid commit: %v, want %v", got, want)
		}
	})
}

// TestPlacementValidation: `orca-sync validate` names every bad selector of
// a checkout at its file and line, all at once, and a placement without any
// [[node]] asks for the nodes.
func TestPlacementValidation(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"cluster.toml": threeNodes,
		"services/p/service.toml": services(
			placedService("both", `placement = {node = "a", labels = {role = "edge"}}`),
			placedService("unknown", `placement = {node = "d"}`),
			placedService("nomatch", `placement = {labels = {role = "db"}}`)),
	})
	res := newOrca(t, env, dir).run("validate", dir)
	want := []string{
		`services/p/service.toml:6: both: placement: give either node or labels, not both`,
		`services/p/service.toml:18: unknown: placement.node = "d" is not a [[node]] of cluster.toml (nodes: a, b, c)`,
		`services/p/service.toml:30: nomatch: placement.labels {role = "db"} match no [[node]] of cluster.toml`,
	}
	for _, w := range want {
		if !strings.Contains(res.Stdout+res.Stderr, w) {
			t.Errorf("validate lacks %q", w)
		}
	}
	if res.Code != 1 || t.Failed() {
		t.Fatalf("%s", res)
	}
	if err := os.Remove(filepath.Join(dir, "cluster.toml")); err != nil {
		t.Fatal(err)
	}
	res = newOrca(t, env, dir).run("validate", dir)
	// "both" is refused for its two keys already.
	if res.Code != 1 || strings.Count(res.Stdout+res.Stderr, "placement needs the nodes declared: add a [[node]] entry") != 2 {
		t.Fatalf("without [[node]]: %s", res)
	}
}

// TestSeveralHostsPlanOnePR: two hosts plan one pull request; each keeps a
// comment of its own whose first line names its node and which shows only
// its own services' changes.
func TestSeveralHostsPlanOnePR(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("hostspr")
	api := githubtest.New()
	defer api.Close()
	repo, srv := newServedRepo(t)
	file := "services/" + p + "/service.toml"
	repo.WriteFile("cluster.toml", githubCluster(api)+"[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n")
	one, two := placedService("one", `placement = {node = "a"}`), placedService("two", `placement = {node = "b"}`)
	repo.WriteFile(file, services(one, two))
	repo.CommitPush("one on a, two on b")
	url := srv.URL("infra.git")
	createProjectNetwork(t, env, p)
	hosts := map[string]*daemon{"a": startServe(t, env, url, "--node", "a"), "b": startServe(t, env, url, "--node", "b")}
	for _, d := range hosts {
		waitOwnSynced(t, d)
	}
	one.Image, two.Image = imageV2, imageV2
	head := pushPR(repo, 5, file, services(one, two))
	api.SetPRs(githubtest.PR{Number: 5, Base: "main", HeadSHA: head})
	for n, d := range hosts {
		if code := d.githubEvent("pull_request", prEvent("opened", 5, url), "pr-5-"+n); code != http.StatusAccepted {
			t.Fatalf("pull_request webhook to %s: %d", n, code)
		}
	}
	waitStatuses(t, api, head, "orca-sync/plan", 2)
	cs := api.Comments(5)
	if len(cs) != 2 {
		t.Fatalf("comments: %+v", cs)
	}
	byNode := map[string]string{}
	for _, c := range cs {
		lines := strings.SplitN(c.Body, "\n", 3)
		for _, n := range []string{"a", "b"} {
			if len(lines) == 3 && lines[0] == "<!-- orca-sync:plan node="+n+" -->" && strings.HasPrefix(lines[1], "### orca-sync plan for `"+n+"` at ") {
				byNode[n] = c.Body
			}
		}
	}
	for n, own := range map[string]string{"a": "one", "b": "two"} {
		other := map[string]string{"one": "two", "two": "one"}[own]
		body := byNode[n]
		if !strings.Contains(body, "~ "+p+"/"+own) || !strings.Contains(body, imageV1+" -> "+imageV2) || strings.Contains(body, p+"/"+other) {
			t.Errorf("%s's comment (want its node in the first line, %s's change, not %s's):\n%s", n, own, other, body)
		}
	}
}
