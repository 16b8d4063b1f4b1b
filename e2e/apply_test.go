package e2e

// End-to-end tests of `orca-sync apply` and `orca-sync plan` (issue 3): the
// real binary against the real engine, one infra checkout per test. Each test
// sees only its own managed containers (see scopedDocker).

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/internal/gittest"
)

// clusterToml names the node, so the orca.node label is predictable.
const clusterToml = "[cluster]\nnode = \"e2e-node\"\n"

// TestApplyCreatesContainers applies a checkout of two projects and checks
// everything a user would look at with docker inspect and curl: names,
// labels, networks, aliases, env, the bind mount from the checkout, the
// published port, depends_on order, DNS between services (in a project, and
// across projects over orca-internal, a shared network this test leaves in
// place). A second apply and a plan then find nothing to do.
func TestApplyCreatesContainers(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	p := env.project("shop")
	netName := "orca-" + p
	hostPort := freePort(t)
	banner := "welcome to " + p + "\n"

	repo := gittest.NewRepo(t)
	repo.WriteFile("cluster.toml", clusterToml)
	repo.WriteFile("services/"+p+"/config/banner.txt", banner)
	repo.WriteFile("services/"+p+"/service.toml", services(
		svc{Name: "api", Image: imageV1, Port: 8080,
			Keys:   []string{fmt.Sprintf(`extra_ports = ["%d:8080"]`, hostPort), `labels = { team = "e2e" }`},
			Env:    map[string]string{"GREETING": "hello from api", "MODE": "test"},
			Deploy: deploy{MinReadySecs: 1, TimeoutSecs: 30}},
		svc{Name: "web", Image: imageV2, Replicas: count(2), Port: 8080,
			Keys:      []string{`aliases = ["www", "frontend"]`, `depends_on = ["api"]`, "internal = true"},
			Env:       map[string]string{"GREETING": "hello from web"},
			Readiness: healthz, Deploy: deploy{TimeoutSecs: 30},
			Tables: "[[service.mounts]]\nsource = \"./services/" + p + "/config/banner.txt\"\n" +
				"target = \"/etc/shop/banner.txt\"\nread_only = true\n"}))
	// A second project whose service web reaches over orca-internal.
	p2 := env.project("catalog")
	catalog := env.Prefix + "-catalog" // a unique DNS name on the shared network
	repo.WriteFile("services/"+p2+"/service.toml", svc{Name: catalog, Image: imageV3, Keys: []string{"internal = true"},
		Deploy: deploy{MinReadySecs: 1, TimeoutSecs: 30}}.String())
	rev := repo.Commit("shop: api and web; catalog")
	orca := newOrca(t, env, repo.Dir())

	r := orca.mustApply()
	lines := applyLines(r.Stdout)
	for key, started := range map[string]int{p + "/api": 1, p + "/web": 2, p2 + "/" + catalog: 1} {
		l, ok := lines[key]
		if !ok || l.Action != "create" || l.Started != started || l.Removed != 0 || l.Status != "ok" {
			t.Errorf("apply output for %s: %+v (found %v), want create: started %d, ok\n%s", key, l, ok, started, r)
		}
	}

	api := env.mustContainers(t, p, "api")
	web := env.mustContainers(t, p, "web")
	if len(api) != 1 || len(web) != 2 || !allRunning(api) || !allRunning(web) {
		t.Fatalf("want 1 running api and 2 running web containers, got api %s web %s", describe(api), describe(web))
	}

	// Names, labels, networks and aliases.
	for svc, cs := range map[string][]container.Summary{"api": api, "web": web} {
		nameRE := regexp.MustCompile("^" + regexp.QuoteMeta(p+"-"+svc) + `-([0-9a-f]{8})-(\d+)$`)
		var indices []int
		for _, c := range cs {
			m := nameRE.FindStringSubmatch(nameOf(c))
			if m == nil {
				t.Errorf("container name %q does not read <project>-<service>-<hash8>-<n>", nameOf(c))
				continue
			}
			n, _ := strconv.Atoi(m[2])
			indices = append(indices, n)
			want := map[string]string{
				"orca.managed": "true", "orca.project": p, "orca.service": svc,
				"orca.revision": rev, "orca.role": "stable", "orca.node": "e2e-node",
			}
			if svc == "api" {
				want["team"] = "e2e"
			}
			for k, v := range want {
				if got := c.Labels[k]; got != v {
					t.Errorf("%s: label %s = %q, want %q", nameOf(c), k, got, v)
				}
			}
			if h := c.Labels["orca.spec-hash"]; !strings.HasPrefix(h, m[1]) || len(h) < 16 {
				t.Errorf("%s: label orca.spec-hash = %q, want a hash starting with the name's %s", nameOf(c), h, m[1])
			}
			if c.Labels["orca.spec"] == "" {
				t.Errorf("%s: no orca.spec label", nameOf(c))
			}
			ci := env.inspect(t, c.ID)
			var nets []string
			for n := range ci.NetworkSettings.Networks {
				nets = append(nets, n)
			}
			slices.Sort(nets)
			wantNets := []string{netName}
			if svc == "web" { // internal = true
				wantNets = []string{"orca-internal", netName}
			}
			if !slices.Equal(nets, wantNets) {
				t.Errorf("%s: networks %v, want %v", nameOf(c), nets, wantNets)
			}
			if ep := ci.NetworkSettings.Networks[netName]; ep != nil {
				wantAliases := []string{svc}
				if svc == "web" {
					wantAliases = append(wantAliases, "www", "frontend")
				}
				for _, a := range wantAliases {
					if !slices.Contains(ep.Aliases, a) {
						t.Errorf("%s: aliases on %s are %v, want %s among them", nameOf(c), netName, ep.Aliases, a)
					}
				}
			}
			if ci.HostConfig.RestartPolicy.Name != container.RestartPolicyUnlessStopped {
				t.Errorf("%s: restart policy %q, want unless-stopped", nameOf(c), ci.HostConfig.RestartPolicy.Name)
			}
		}
		slices.Sort(indices)
		if want := []int{1, 2}[:len(cs)]; !slices.Equal(indices, want) {
			t.Errorf("%s replica numbers %v, want %v", svc, indices, want)
		}
	}

	// depends_on: web starts once api is ready (min_ready_secs = 1).
	apiStart := startedAt(t, env, api[0].ID)
	for _, c := range web {
		if ws := startedAt(t, env, c.ID); ws.Sub(apiStart) < time.Second {
			t.Errorf("%s started %v after api, before api was ready (min_ready_secs = 1)", nameOf(c), ws.Sub(apiStart))
		}
	}

	apiURL := env.appURL(t, api[0].ID, netName)
	webURLs := []string{env.appURL(t, web[0].ID, netName), env.appURL(t, web[1].ID, netName)}

	// Env.
	if got := env.get(t, apiURL+"/env?name=GREETING"); got != "hello from api" {
		t.Errorf("api GREETING = %q", got)
	}
	if got := env.get(t, apiURL+"/env?name=MODE"); got != "test" {
		t.Errorf("api MODE = %q", got)
	}
	for _, u := range webURLs {
		if got := env.get(t, u+"/env?name=GREETING"); got != "hello from web" {
			t.Errorf("web GREETING = %q", got)
		}
		// The bind mount from the checkout, read-only.
		if got := env.get(t, u+"/file?path=/etc/shop/banner.txt"); got != banner {
			t.Errorf("web /etc/shop/banner.txt = %q, want %q", got, banner)
		}
		resp, err := httpClient.Post(u+"/file?path=/etc/shop/banner.txt", "text/plain", strings.NewReader("overwritten"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("writing to the read_only mount succeeded")
		}
	}
	// The file is mounted from its snapshot in the data dir, not the checkout.
	ci := env.inspect(t, web[0].ID)
	snapRE := regexp.MustCompile("^" + regexp.QuoteMeta(filepath.Join(orca.dataDir, "files")) + "/[0-9a-f]{64}$")
	if i := slices.IndexFunc(ci.Mounts, func(m container.MountPoint) bool { return m.Destination == "/etc/shop/banner.txt" }); i < 0 {
		t.Errorf("web has no mount at /etc/shop/banner.txt: %+v", ci.Mounts)
	} else if m := ci.Mounts[i]; m.Type != "bind" || !snapRE.MatchString(m.Source) || m.RW {
		t.Errorf("web mount: type %s source %s rw %v, want a read-only bind of a snapshot under %s", m.Type, m.Source, m.RW, orca.dataDir)
	}

	// The published port answers on the host.
	env.waitFor(t, 15*time.Second, func() (bool, string) {
		code, body, err := env.httpGet(fmt.Sprintf("http://127.0.0.1:%d/", hostPort))
		return err == nil && code == 200 && body == "v1", fmt.Sprintf("GET 127.0.0.1:%d/: %d %q %v", hostPort, code, body, err)
	})

	// Services reach each other by name and alias on the project network.
	for _, target := range []string{"http://api:8080/"} {
		if code, body, err := env.fetchFrom(webURLs[0], target); err != nil || code != 200 || body != "v1" {
			t.Errorf("web -> %s: %d %q %v", target, code, body, err)
		}
	}
	for _, target := range []string{"http://web:8080/", "http://www:8080/", "http://frontend:8080/"} {
		if code, body, err := env.fetchFrom(apiURL, target); err != nil || code != 200 || body != "v2" {
			t.Errorf("api -> %s: %d %q %v", target, code, body, err)
		}
	}

	// internal = true: web reaches the other project's internal service over
	// orca-internal; api, which is not internal, does not.
	cat := env.mustContainers(t, p2, catalog)
	if len(cat) != 1 || !allRunning(cat) {
		t.Fatalf("catalog: %s, want 1 running", describe(cat))
	}
	catURL := "http://" + catalog + ":8080/"
	if code, body, err := env.fetchFrom(webURLs[0], catURL); err != nil || code != 200 || body != "v3" {
		t.Errorf("web -> %s over orca-internal: %d %q %v", catURL, code, body, err)
	}
	if code, body, _ := env.fetchFrom(apiURL, catURL); code == 200 && body == "v3" {
		t.Errorf("api, not internal, reached %s", catURL)
	}

	// A second apply changes nothing, and plan agrees.
	before := idsOf(append(append(api, web...), cat...))
	r = orca.mustApply()
	if !strings.Contains(r.Stdout, "No changes.") || len(applyLines(r.Stdout)) != 0 {
		t.Errorf("second apply did something:\n%s", r)
	}
	after := idsOf(append(append(env.mustContainers(t, p, "api"), env.mustContainers(t, p, "web")...), env.mustContainers(t, p2, catalog)...))
	if !slices.Equal(before, after) {
		t.Errorf("second apply changed containers: %s -> %s", shortIDs(before), shortIDs(after))
	}
	if r := orca.plan("--exit-code"); r.Code != 0 || !strings.Contains(r.Stdout, "No changes") {
		t.Errorf("plan --exit-code after apply: want exit 0 and No changes\n%s", r)
	}
}

// rollingWeb is webApp rolled one container at a time with a rollout
// deadline of timeoutSecs.
func rollingWeb(image string, replicas, timeoutSecs int) svc {
	s := webApp(image, replicas)
	s.Deploy = deploy{Strategy: "rolling", MaxSurge: 1, TimeoutSecs: timeoutSecs}
	return s
}

// TestApplyRollingUpdate rolls 3 replicas from v1 to v2 and watches, every
// ~100 ms while apply runs, that 3 containers answer /healthz at every
// moment; Docker's events show each new container started before an old one
// is stopped.
func TestApplyRollingUpdate(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	p := env.project("roll")
	netName := "orca-" + p
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"cluster.toml": clusterToml})
	writeProject(t, dir, p, rollingWeb(imageV1, 3, 30).String())
	orca := newOrca(t, env, dir)
	orca.mustApply()

	v1 := env.mustContainers(t, p, "web")
	if len(v1) != 3 || !allRunning(v1) {
		t.Fatalf("after the first apply: %s, want 3 running", describe(v1))
	}
	if s := env.sampleReady(p, "web"); s.ready != 3 {
		t.Fatalf("before the rollout: %v", s)
	}

	writeProject(t, dir, p, rollingWeb(imageV2, 3, 30).String())
	evs := env.watchEvents(t, p)
	mon := env.watchReady(p, "web")
	r := orca.apply()
	samples := mon.stop()
	if r.Code != 0 {
		t.Fatalf("rolling apply failed:\n%s", r)
	}
	if l := applyLines(r.Stdout)[p+"/web"]; l.Action != "update" || l.Started != 3 || l.Removed != 3 || l.Status != "ok" {
		t.Errorf("apply output for web: %+v, want update: started 3, removed 3; ok\n%s", l, r)
	}

	// Never fewer than 3 ready.
	low := 0
	for _, s := range samples {
		if s.ready < 3 {
			if low++; low <= 5 {
				t.Errorf("fewer than 3 ready containers during the rollout: %v", s)
			}
		}
	}
	if len(samples) < 10 {
		t.Errorf("only %d samples during a %v rollout", len(samples), r.Took)
	}
	t.Logf("rollout took %v; %d samples, %d below 3 ready", r.Took.Round(time.Millisecond), len(samples), low)

	// The end state: exactly 3 containers, all v2, the v1 ones gone.
	now := env.mustContainers(t, p, "web")
	if len(now) != 3 || !allRunning(now) {
		t.Fatalf("after the rollout: %s, want 3 running", describe(now))
	}
	for _, c := range now {
		if slices.Contains(idsOf(v1), c.ID) {
			t.Errorf("v1 container %s still exists", nameOf(c))
		}
		if c.Image != imageV2 {
			t.Errorf("%s runs %s, want %s", nameOf(c), c.Image, imageV2)
		}
		if got := env.get(t, env.appURL(t, c.ID, netName)+"/"); got != "v2" {
			t.Errorf("%s answers %q, want v2", nameOf(c), got)
		}
	}

	// Start-first, from the engine's own record: when an old container is
	// told to stop, more new containers have started than old ones stopped.
	var msgs []events.Message
	env.waitFor(t, 10*time.Second, func() (bool, string) {
		var err error
		msgs, err = evs.snapshot()
		if err != nil {
			t.Fatalf("event stream: %v", err)
		}
		destroyed := 0
		for _, m := range msgs {
			if m.Action == events.ActionDestroy && m.Actor.Attributes["image"] == imageV1 {
				destroyed++
			}
		}
		return destroyed == 3, fmt.Sprintf("%d v1 containers destroyed in the event stream, want 3", destroyed)
	})
	startedNew, stoppedOld := 0, 0
	seenKill := map[string]bool{}
	var trail []string
	for _, m := range msgs {
		img := m.Actor.Attributes["image"]
		switch {
		case m.Action == events.ActionStart && img == imageV2:
			startedNew++
		case m.Action == events.ActionKill && img == imageV1 && !seenKill[m.Actor.ID]:
			seenKill[m.Actor.ID] = true
			stoppedOld++
			if startedNew < stoppedOld {
				t.Errorf("old container %s stopped when only %d new containers had started", m.Actor.Attributes["name"], startedNew)
			}
		default:
			continue
		}
		trail = append(trail, fmt.Sprintf("%s %s", m.Action, m.Actor.Attributes["name"]))
	}
	if startedNew != 3 || stoppedOld != 3 {
		t.Errorf("events: %d v2 starts and %d v1 stops, want 3 and 3: %v", startedNew, stoppedOld, trail)
	}
	if t.Failed() {
		t.Logf("event trail: %v", trail)
	}
}

// TestApplyUndoesFailedRollout rolls to an image whose /healthz answers 500:
// apply fails naming the probe, the v1 containers keep running untouched and
// no new container is left behind.
func TestApplyUndoesFailedRollout(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	p := env.project("undo")
	netName := "orca-" + p
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"cluster.toml": clusterToml})
	// The first deploy is not held to the broken one's deadline: on a loaded
	// engine two healthy starts can take longer. timeout_secs shapes no
	// container, so the v1 spec hash is the same either way.
	writeProject(t, dir, p, rollingWeb(imageV1, 2, 60).String())
	orca := newOrca(t, env, dir)
	orca.mustApply()
	v1 := env.mustContainers(t, p, "web")
	if len(v1) != 2 || !allRunning(v1) {
		t.Fatalf("after the first apply: %s", describe(v1))
	}
	started := map[string]string{}
	for _, c := range v1 {
		started[c.ID] = env.inspect(t, c.ID).State.StartedAt
	}

	writeProject(t, dir, p, rollingWeb(imageBroken, 2, 15).String())
	r := orca.apply()
	if r.Code == 0 {
		t.Fatalf("apply of a broken image exited 0:\n%s", r)
	}
	l := applyLines(r.Stdout)[p+"/web"]
	if !strings.HasPrefix(l.Status, "FAILED") || !strings.Contains(l.Status, "readiness probe") ||
		!strings.Contains(l.Status, "/healthz") || !strings.Contains(l.Status, "500") {
		t.Errorf("the failure does not name the failing probe (want FAILED, readiness probe, /healthz, 500):\n%s", r)
	}

	now := env.mustContainers(t, p, "web")
	if !slices.Equal(idsOf(now), idsOf(v1)) || !allRunning(now) {
		t.Fatalf("after the failed rollout: %s, want the v1 containers %s untouched and running", describe(now), describe(v1))
	}
	for _, c := range now {
		if got := env.inspect(t, c.ID).State.StartedAt; got != started[c.ID] {
			t.Errorf("%s was restarted (started at %s, then %s)", nameOf(c), started[c.ID], got)
		}
		if got := env.get(t, env.appURL(t, c.ID, netName)+"/"); got != "v1" {
			t.Errorf("%s answers %q, want v1", nameOf(c), got)
		}
	}
	// No broken container remains, running or not.
	all, err := env.Containers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		if c.Image == imageBroken {
			t.Errorf("broken container left behind: %s (%s)", nameOf(c), c.State)
		}
	}

	// A new container that exits: the reason has its exit code and last
	// log lines. (No restart, and the probe waits, so the exit is what fails.)
	crashing := webApp(imageV2, 2)
	crashing.Keys = []string{`restart_policy = "no"`}
	crashing.Env = map[string]string{"EXIT_AFTER_MS": "300"}
	crashing.Readiness.InitialDelaySecs = 3
	crashing.Deploy.TimeoutSecs = 10
	writeProject(t, dir, p, crashing.String())
	r = orca.apply()
	l = applyLines(r.Stdout)[p+"/web"]
	if r.Code == 0 || !strings.HasPrefix(l.Status, "FAILED") || !strings.Contains(l.Status, "exit code 3") ||
		!strings.Contains(l.Status, "EXIT_AFTER_MS=300 reached") {
		t.Errorf("a crashing v2: want exit 1 and a reason with the exit code 3 and the container's last log line\n%s", r)
	}

	// An image that is not to be had fails with a reason naming it.
	missing := rollingWeb("orca-test/app:missing", 2, 10)
	missing.Keys = []string{`pull_policy = "never"`}
	writeProject(t, dir, p, missing.String())
	r = orca.apply()
	l = applyLines(r.Stdout)[p+"/web"]
	if r.Code == 0 || !strings.HasPrefix(l.Status, "FAILED") || !strings.Contains(l.Status, "orca-test/app:missing") {
		t.Errorf("a missing image: want exit 1 and a reason naming orca-test/app:missing\n%s", r)
	}

	now = env.mustContainers(t, p, "web")
	if !slices.Equal(idsOf(now), idsOf(v1)) || !allRunning(now) {
		t.Fatalf("after three failed rollouts: %s, want the v1 containers %s untouched and running", describe(now), describe(v1))
	}
}

// TestApplyScaleAndRecreate: replicas 3→1→2 keeps the survivors, an env
// change replaces every container, a domain/routes/probe change none.
func TestApplyScaleAndRecreate(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	p := env.project("scale")
	netName := "orca-" + p
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"cluster.toml": clusterToml})
	type knobs struct {
		replicas int
		color    string
		domain   string
		routes   string
		probe    string
		interval int
	}
	write := func(k knobs) {
		writeProject(t, dir, p, svc{Name: "web", Image: imageV1, Replicas: count(k.replicas), Port: 8080, Domain: k.domain,
			Keys: []string{"routes = " + k.routes}, Env: map[string]string{"COLOR": k.color},
			Readiness: probe{Path: k.probe, IntervalSecs: k.interval}, Deploy: deploy{TimeoutSecs: 30}}.String())
	}
	k := knobs{replicas: 3, color: "blue", domain: "a.example.test", routes: `["/"]`, probe: "/healthz", interval: 1}
	write(k)
	orca := newOrca(t, env, dir)
	orca.mustApply()

	byIndex := func() map[int]string {
		t.Helper()
		out := map[int]string{}
		for _, c := range env.mustContainers(t, p, "web") {
			if c.State != container.StateRunning {
				t.Errorf("%s is %s", nameOf(c), c.State)
			}
			n, _ := strconv.Atoi(nameOf(c)[strings.LastIndexByte(nameOf(c), '-')+1:])
			out[n] = c.ID
		}
		return out
	}
	first := byIndex()
	if len(first) != 3 {
		t.Fatalf("after the first apply: %v, want replicas 1..3", first)
	}

	// 3 → 1: replica 1 stays.
	k.replicas = 1
	write(k)
	r := orca.mustApply()
	if l := applyLines(r.Stdout)[p+"/web"]; l.Action != "scale" || l.Started != 0 || l.Removed != 2 {
		t.Errorf("scale 3 -> 1: %+v, want scale: started 0, removed 2\n%s", l, r)
	}
	if now := byIndex(); len(now) != 1 || now[1] != first[1] {
		t.Fatalf("scale 3 -> 1: %v, want only replica 1 = %s", now, first[1][:12])
	}

	// 1 → 2: replica 1 stays, replica 2 is new.
	k.replicas = 2
	write(k)
	r = orca.mustApply()
	if l := applyLines(r.Stdout)[p+"/web"]; l.Action != "scale" || l.Started != 1 || l.Removed != 0 {
		t.Errorf("scale 1 -> 2: %+v, want scale: started 1, removed 0\n%s", l, r)
	}
	scaled := byIndex()
	if len(scaled) != 2 || scaled[1] != first[1] || scaled[2] == "" || scaled[2] == first[2] {
		t.Fatalf("scale 1 -> 2: %v, want replica 1 = %s kept and a new replica 2", scaled, first[1][:12])
	}

	// An env change recreates every container.
	k.color = "green"
	write(k)
	if pr := orca.plan(); !strings.Contains(pr.Stdout, `env.COLOR: "blue" -> "green"`) {
		t.Errorf("plan of an env change does not show it:\n%s", pr)
	}
	r = orca.mustApply()
	if l := applyLines(r.Stdout)[p+"/web"]; l.Action != "update" || l.Started != 2 || l.Removed != 2 {
		t.Errorf("env change: %+v, want update: started 2, removed 2\n%s", l, r)
	}
	recreated := byIndex()
	if len(recreated) != 2 {
		t.Fatalf("after the env change: %v", recreated)
	}
	for n, id := range recreated {
		if id == scaled[1] || id == scaled[2] {
			t.Errorf("replica %d kept its container %s across an env change", n, id[:12])
		}
		if got := env.get(t, env.appURL(t, id, netName)+"/env?name=COLOR"); got != "green" {
			t.Errorf("replica %d COLOR = %q, want green", n, got)
		}
	}

	// Domain, routes and probe only concern routing and health: no container
	// changes.
	k.domain, k.routes, k.probe, k.interval = "b.example.test", `["/", "/api"]`, "/", 2
	write(k)
	r = orca.mustApply()
	if l, ok := applyLines(r.Stdout)[p+"/web"]; ok && (l.Started != 0 || l.Removed != 0) {
		t.Errorf("domain/routes/probe change touched containers: %+v\n%s", l, r)
	}
	if now := byIndex(); !maps.Equal(now, recreated) {
		t.Errorf("domain/routes/probe change: containers %v, want %v", now, recreated)
	}
}

// TestApplyPruneAndVolumes: a service gone from the checkout is pruned, its
// named volume kept and reused when it comes back; the prune guard refuses to
// remove most or all services unless --allow-mass-prune.
func TestApplyPruneAndVolumes(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	p := env.project("prune")
	netName := "orca-" + p
	vol := env.Prefix + "-store-data"
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"cluster.toml": clusterToml})
	simple := func(name string) svc {
		return svc{Name: name, Image: imageV1, Deploy: deploy{MinReadySecs: 1, TimeoutSecs: 30}}
	}
	store := svc{Name: "store", Image: imageV1, Port: 8080, Keys: []string{fmt.Sprintf(`volumes = [{ source = %q, target = "/data" }]`, vol)},
		Readiness: healthz, Deploy: deploy{TimeoutSecs: 30}}
	writeProject(t, dir, p, services(simple("web"), simple("api"), store))
	// Made beforehand: three services creating it at once trip over each
	// other (TestApplyNetworkCreatedOnce).
	env.ensureNetwork(t, netName)
	orca := newOrca(t, env, dir)
	orca.mustApply()

	ids := func(svc string) []string { return idsOf(env.mustContainers(t, p, svc)) }
	web, api := ids("web"), ids("api")
	stores := env.mustContainers(t, p, "store")
	if len(web) != 1 || len(api) != 1 || len(stores) != 1 {
		t.Fatalf("after the first apply: web %v api %v store %s", web, api, describe(stores))
	}
	// Write through the app into the volume.
	storeURL := env.appURL(t, stores[0].ID, netName)
	resp, err := httpClient.Post(storeURL+"/file?path=/data/note.txt", "text/plain", strings.NewReader("kept across removal"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("write to the volume: %s", resp.Status)
	}
	unchanged := func(what string) {
		t.Helper()
		if w, a := ids("web"), ids("api"); !slices.Equal(w, web) || !slices.Equal(a, api) {
			t.Errorf("%s: web %s api %s, want web %s api %s untouched", what, shortIDs(w), shortIDs(a), shortIDs(web), shortIDs(api))
		}
	}
	volumeExists := func(what string) {
		t.Helper()
		ctx, cancel := env.ctx()
		defer cancel()
		if _, err := env.Docker.VolumeInspect(ctx, vol, client.VolumeInspectOptions{}); err != nil {
			t.Errorf("%s: volume %s: %v", what, vol, err)
		}
	}

	// store leaves the checkout: pruned, volume kept.
	writeProject(t, dir, p, services(simple("web"), simple("api")))
	if pr := orca.plan("--exit-code"); pr.Code != 2 || !strings.Contains(pr.Stdout, "- "+p+"/store") {
		t.Errorf("plan of a removed service: want exit 2 and a - %s/store line\n%s", p, pr)
	}
	r := orca.mustApply()
	if l := applyLines(r.Stdout)[p+"/store"]; l.Action != "remove" || l.Removed != 1 || l.Status != "ok" {
		t.Errorf("prune of store: %+v, want remove: removed 1; ok\n%s", l, r)
	}
	if s := env.mustContainers(t, p, "store"); len(s) != 0 {
		t.Errorf("store not pruned: %s", describe(s))
	}
	unchanged("after pruning store")
	volumeExists("after pruning store")

	// store comes back: it finds its data.
	writeProject(t, dir, p, services(simple("web"), simple("api"), store))
	orca.mustApply()
	stores = env.mustContainers(t, p, "store")
	if len(stores) != 1 {
		t.Fatalf("store back: %s", describe(stores))
	}
	if got := env.get(t, env.appURL(t, stores[0].ID, netName)+"/file?path=/data/note.txt"); got != "kept across removal" {
		t.Errorf("store back: /data/note.txt = %q, want the note written before its removal", got)
	}
	unchanged("after store came back")
	storeIDs := idsOf(stores)

	// Removing 2 of 3 services is more than prune_guard (0.5): refused.
	writeProject(t, dir, p, store.String())
	r = orca.apply()
	if r.Code != 1 || !strings.Contains(r.Stderr+r.Stdout, "prune guard") {
		t.Errorf("removing 2 of 3 services: want exit 1 and a prune guard message\n%s", r)
	}
	unchanged("after the refused prune of 2 of 3")

	// Removing every service: refused, nothing removed.
	if err := os.RemoveAll(filepath.Join(dir, "services", p)); err != nil {
		t.Fatal(err)
	}
	r = orca.apply()
	if r.Code != 1 || !strings.Contains(r.Stderr+r.Stdout, "prune guard") {
		t.Errorf("removing all services: want exit 1 and a prune guard message\n%s", r)
	}
	unchanged("after the refused prune of everything")
	if s := ids("store"); !slices.Equal(s, storeIDs) {
		t.Errorf("after the refused prune of everything: store %s, want %s", shortIDs(s), shortIDs(storeIDs))
	}

	// --allow-mass-prune: everything goes, the volume stays.
	r = orca.mustApply("--allow-mass-prune")
	for _, svc := range []string{"web", "api", "store"} {
		if l := applyLines(r.Stdout)[p+"/"+svc]; l.Action != "remove" || l.Removed != 1 {
			t.Errorf("mass prune of %s: %+v\n%s", svc, l, r)
		}
	}
	if left := env.mustContainers(t, p, ""); len(left) != 0 {
		t.Errorf("after --allow-mass-prune: %s left", describe(left))
	}
	volumeExists("after --allow-mass-prune")
}

// TestApplyHealsHandMadeChanges: a container stopped by hand and one removed
// by hand are replaced by the next apply; an unmanaged container named like a
// replica is never touched, not even by a prune.
func TestApplyHealsHandMadeChanges(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	p := env.project("heal")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"cluster.toml": clusterToml})
	writeProject(t, dir, p, svc{Name: "web", Image: imageV1, Replicas: count(3), Deploy: deploy{MinReadySecs: 1, TimeoutSecs: 30}}.String())
	manual := env.startApp(t, appSpec{Project: p, Service: "web", Name: p + "-web-manual", Unmanaged: true, Aliases: []string{"manual"}})
	manualStarted := env.inspect(t, manual).State.StartedAt
	manualUntouched := func(what string) {
		t.Helper()
		ci := env.inspect(t, manual) // fails the test if it is gone
		if !ci.State.Running || ci.State.StartedAt != manualStarted {
			t.Errorf("%s: the unmanaged container %s-web-manual was touched: running %v, started %s (was %s)",
				what, p, ci.State.Running, ci.State.StartedAt, manualStarted)
		}
	}

	orca := newOrca(t, env, dir)
	orca.mustApply()
	manualUntouched("after the first apply")
	web := env.mustContainers(t, p, "web")
	if len(web) != 3 || !allRunning(web) {
		t.Fatalf("after the first apply: %s", describe(web))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	grace := 5
	if _, err := env.Docker.ContainerStop(ctx, web[0].ID, client.ContainerStopOptions{Timeout: &grace}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Docker.ContainerRemove(ctx, web[1].ID, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	untouched := web[2].ID

	if r := orca.plan("--exit-code"); r.Code != 2 || !strings.Contains(r.Stdout, "heal") {
		t.Errorf("plan after hand-made changes: want exit 2 and a heal\n%s", r)
	}
	r := orca.mustApply()
	if l := applyLines(r.Stdout)[p+"/web"]; l.Action != "heal" || l.Started != 2 || l.Status != "ok" {
		t.Errorf("heal: %+v, want heal: started 2; ok\n%s", l, r)
	}
	healed := env.mustContainers(t, p, "web")
	if len(healed) != 3 || !allRunning(healed) {
		t.Fatalf("after heal: %s, want 3 running", describe(healed))
	}
	if !slices.Contains(idsOf(healed), untouched) {
		t.Errorf("after heal: %s, want the untouched replica %s kept", describe(healed), untouched[:12])
	}
	var names []string
	for _, c := range healed {
		names = append(names, nameOf(c))
	}
	for i, n := range names {
		if want := fmt.Sprintf("-%d", i+1); !strings.HasSuffix(n, want) {
			t.Errorf("after heal: names %v, want replicas 1, 2, 3", names)
			break
		}
	}
	manualUntouched("after the heal")
	if r := orca.mustApply(); !strings.Contains(r.Stdout, "No changes.") {
		t.Errorf("apply after the heal did something:\n%s", r)
	}

	// Prune everything: the unmanaged container stays.
	if err := os.RemoveAll(filepath.Join(dir, "services", p)); err != nil {
		t.Fatal(err)
	}
	orca.mustApply("--allow-mass-prune")
	if left := env.mustContainers(t, p, ""); len(left) != 0 {
		t.Errorf("after the prune: %s left", describe(left))
	}
	manualUntouched("after the prune")
}

// TestPlanShowsImageChange: plan shows a create, then an image change, as
// text and JSON, exits 2 with --exit-code, and changes nothing.
func TestPlanShowsImageChange(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	p := env.project("plan")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"cluster.toml": clusterToml})
	web := func(image string) string {
		return svc{Name: "web", Image: image, Deploy: deploy{MinReadySecs: 1, TimeoutSecs: 30}}.String()
	}
	writeProject(t, dir, p, web(imageV1))
	orca := newOrca(t, env, dir)

	r := orca.plan("--exit-code")
	if r.Code != 2 || !strings.Contains(r.Stdout, "+ "+p+"/web") {
		t.Errorf("plan before any apply: want exit 2 and a + %s/web line\n%s", p, r)
	}
	if cs := env.mustContainers(t, p, ""); len(cs) != 0 {
		t.Fatalf("plan created containers: %s", describe(cs))
	}
	orca.mustApply()
	before := env.mustContainers(t, p, "web")

	writeProject(t, dir, p, web(imageV2))
	r = orca.plan()
	if r.Code != 0 || !strings.Contains(r.Stdout, "~ "+p+"/web") ||
		!strings.Contains(r.Stdout, "image: orca-test/app:v1 -> orca-test/app:v2") {
		t.Errorf("plan text: want exit 0, a ~ %s/web line and image: orca-test/app:v1 -> orca-test/app:v2\n%s", p, r)
	}

	r = orca.plan("--output", "json")
	var plan struct {
		Changes []struct {
			Project, Service, Action string
			Fields                   []struct{ Field, From, To string }
		}
	}
	if err := json.Unmarshal([]byte(r.Stdout), &plan); err != nil || r.Code != 0 {
		t.Fatalf("plan --output json: %v\n%s", err, r)
	}
	found := false
	for _, c := range plan.Changes {
		if c.Project != p || c.Service != "web" {
			continue
		}
		found = true
		if c.Action != "update" {
			t.Errorf("JSON plan: action %q, want update", c.Action)
		}
		if !slices.ContainsFunc(c.Fields, func(f struct{ Field, From, To string }) bool {
			return f.Field == "image" && f.From == imageV1 && f.To == imageV2
		}) {
			t.Errorf("JSON plan: fields %+v, want image %s -> %s", c.Fields, imageV1, imageV2)
		}
	}
	if !found {
		t.Errorf("JSON plan has no change for %s/web:\n%s", p, r.Stdout)
	}

	if r := orca.plan("--exit-code"); r.Code != 2 {
		t.Errorf("plan --exit-code with a change: want exit 2\n%s", r)
	}
	after := env.mustContainers(t, p, "web")
	if !slices.Equal(idsOf(after), idsOf(before)) || after[0].Image != imageV1 {
		t.Errorf("plan changed containers: %s -> %s", describe(before), describe(after))
	}
}

// startedAt is when Docker last started container id.
func startedAt(t testing.TB, env *Env, id string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, env.inspect(t, id).State.StartedAt)
	if err != nil {
		t.Fatalf("StartedAt of %s: %v", id, err)
	}
	return ts
}

// TestPruneSparesOtherNodes: a managed container labelled with another
// orca.node belongs to another orca-sync on the same engine: apply neither
// counts it as a replica nor prunes it, even with --allow-mass-prune.
func TestPruneSparesOtherNodes(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	p := env.project("nodes")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"cluster.toml": clusterToml})
	writeProject(t, dir, p, svc{Name: "web", Image: imageV1, Deploy: deploy{MinReadySecs: 1, TimeoutSecs: 30}}.String())
	other := env.startApp(t, appSpec{Project: p, Service: "web", Name: p + "-web-othernode", Aliases: []string{"othernode"},
		Labels: map[string]string{"orca.node": "other-node", "orca.spec-hash": "0123456789abcdef"}})
	otherStarted := env.inspect(t, other).State.StartedAt
	spared := func(what string) {
		t.Helper()
		ci := env.inspect(t, other)
		if !ci.State.Running || ci.State.StartedAt != otherStarted {
			t.Errorf("%s: the other node's container was touched (running %v)", what, ci.State.Running)
		}
	}

	orca := newOrca(t, env, dir)
	r := orca.mustApply()
	if l := applyLines(r.Stdout)[p+"/web"]; l.Action != "create" || l.Started != 1 || l.Removed != 0 {
		t.Errorf("apply beside another node's container: %+v, want create: started 1\n%s", l, r)
	}
	var mine []string
	for _, c := range env.mustContainers(t, p, "web") {
		if c.ID != other {
			mine = append(mine, c.ID)
			if c.Labels["orca.node"] != "e2e-node" {
				t.Errorf("%s: orca.node = %q", nameOf(c), c.Labels["orca.node"])
			}
		}
	}
	if len(mine) != 1 {
		t.Errorf("want 1 container of this node, got %d", len(mine))
	}
	spared("after apply")

	if err := os.RemoveAll(filepath.Join(dir, "services", p)); err != nil {
		t.Fatal(err)
	}
	orca.mustApply("--allow-mass-prune")
	left := env.mustContainers(t, p, "")
	if len(left) != 1 || left[0].ID != other {
		t.Errorf("after the prune: %s, want only the other node's container", describe(left))
	}
	spared("after the prune")
}
