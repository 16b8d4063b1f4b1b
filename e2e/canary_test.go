package e2e

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/reconcile"
)

// canaryWeb is a 2-replica routed canary service; deploy holds more
// [service.deploy] lines.
func canaryWeb(image, domain, deploy string) svc {
	s := routed("web", image, 2, domain)
	s.Deploy.Strategy = "canary"
	s.Deploy.Keys = []string{deploy}
	return s
}

// snapshot copies the load's answer counts so far.
func (l *load) snapshot() (map[string]int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.bodies), len(l.failures)
}

// answered is the number of answers the load has counted so far.
func (l *load) answered() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.bodies {
		n += c
	}
	return n
}

// waitAnswers waits until the load has counted n more answers than it had
// at the call, and returns its answer counts then: a window measured in
// answers, not in wall time, so a loaded machine makes it longer, never
// thinner.
func (l *load) waitAnswers(t *testing.T, n int) map[string]int {
	t.Helper()
	from := l.answered()
	var got map[string]int
	waitFor(t, 60*time.Second, func() (bool, string) {
		var failed int
		got, failed = l.snapshot()
		have := 0
		for _, c := range got {
			have += c
		}
		return have-from >= n, fmt.Sprintf("%d of %d answers (%d failures so far)", have-from, n, failed)
	})
	return got
}

// shareOf is the percent of the answers between a and b that were want, and
// how many answers that is.
func shareOf(a, b map[string]int, want string) (float64, int) {
	total := 0
	for body, c := range b {
		total += c - a[body]
	}
	if total == 0 {
		return 0, 0
	}
	return 100 * float64(b[want]-a[want]) / float64(total), total
}

// roleIDs lists the IDs of the project's web containers with orca.role role.
func roleIDs(t *testing.T, env *Env, project, role string) []string {
	t.Helper()
	var ids []string
	for _, c := range env.mustContainers(t, project, "web") {
		if c.Labels["orca.role"] == role && c.State == "running" {
			ids = append(ids, c.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func webStatus(ps *proxyServe, project string) reconcile.ServiceStatus {
	return serviceOf(ps.status(), project, "web")
}

// waitCanary polls status until cond holds for web's canary.
func waitCanary(t *testing.T, ps *proxyServe, project string, timeout time.Duration, cond func(s reconcile.ServiceStatus) bool) reconcile.ServiceStatus {
	t.Helper()
	var s reconcile.ServiceStatus
	waitFor(t, timeout, func() (bool, string) {
		s = webStatus(ps, project)
		return cond(s), fmt.Sprintf("web: %+v canary %+v", s, s.Canary)
	})
	return s
}

func atStep(step int) func(s reconcile.ServiceStatus) bool {
	return func(s reconcile.ServiceStatus) bool {
		return s.Canary != nil && s.Canary.Step == step && s.Canary.Phase == "analysing"
	}
}

// TestCanaryStepsPromote: a healthy v2 canary with steps 20→50→100 gets, at
// each step, its weight of the requests (±7 points over at least 200), then
// promotes by itself; not one request fails over the whole rollout.
func TestCanaryStepsPromote(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("canstep")
	file := "services/" + p + "/service.toml"
	deploy := `steps = [{weight = 20, pause_secs = 4}, {weight = 50, pause_secs = 4}, {weight = 100, pause_secs = 4}]
analysis = {min_requests = 20, max_error_rate = 0.05}`
	ps := startProxyServe(t, env, map[string]string{file: canaryWeb(imageV1, "canstep.test", deploy).String(), "cluster.toml": clusterWithWebhook})
	ps.waitAnswer(t, "canstep.test", "/", "v1", 90*time.Second)
	waitSynced(t, ps, p)
	stable := roleIDs(t, env, p, "stable")

	l := startLoad(ps.http, "canstep.test", 4)
	ps.push(t, "web v2 canary", map[string]string{file: canaryWeb(imageV2, "canstep.test", deploy).String()})
	for i, weight := range []int{20, 50, 100} {
		s := waitCanary(t, ps, p, 60*time.Second, atStep(i+1))
		if s.Canary.Weight != weight || s.Sync != reconcile.SyncProgressing {
			t.Fatalf("step %d: weight %d sync %s, want %d Progressing", i+1, s.Canary.Weight, s.Sync, weight)
		}
		if i == 0 && !slices.Equal(roleIDs(t, env, p, "stable"), stable) {
			t.Errorf("stable containers changed when the canary started")
		}
		// Status shows the step just before the proxy gets its weight, and
		// each of the load's connections may have one request in flight
		// from before: those answers are left out of the window.
		a := l.waitAnswers(t, 4)
		b := l.waitAnswers(t, 200) // the split is exact per 100 requests: 200 judge it to ±7
		share, n := shareOf(a, b, "v2")
		t.Logf("FIGURE canary step %d at %d%%: v2 share %.1f%% of %d requests; status canary %+v stable %+v",
			i+1, weight, share, n, s.Canary.Canary, s.Canary.Stable)
		if share < float64(weight)-7 || share > float64(weight)+7 {
			t.Errorf("step %d at %d%%: v2 share %.1f%%", i+1, weight, share)
		}
		if s2 := webStatus(ps, p); s2.Canary == nil || s2.Canary.Step != i+1 {
			t.Errorf("step %d ended inside the measuring window: %+v", i+1, s2.Canary)
		}
	}
	env.waitVersions(t, p, 90*time.Second, "v2", "v2")
	waitSynced(t, ps, p)
	l.waitAnswers(t, 50) // the load goes on past the promotion's last change
	total, bodies, failures, rate := l.finish()
	t.Logf("FIGURE canary 20→50→100 and promotion: %d requests (%.0f/s), %d failed, answers %v", total, rate, len(failures), bodies)
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed, first: %s", len(failures), total, failures[0])
	}
	if s := webStatus(ps, p); s.Canary != nil || s.Ready != 2 {
		t.Errorf("after promotion: %+v canary %+v", s, s.Canary)
	}
	if ids := roleIDs(t, env, p, "canary"); len(ids) != 0 {
		t.Errorf("canary containers left after promotion: %v", ids)
	}
}

// TestCanaryAbortPinRevert: a v2 answering 500 to 30% of requests aborts at
// its first step with the measured error rate in status; v1 keeps serving
// with the same containers, the pin holds, and a revert changes nothing.
func TestCanaryAbortPinRevert(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("canbad")
	file := "services/" + p + "/service.toml"
	deploy := `steps = [{weight = 50, pause_secs = 30}, {weight = 100, pause_secs = 30}]
analysis = {min_requests = 20, max_error_rate = 0.05}`
	good := canaryWeb(imageV1, "canbad.test", deploy).String()
	ps := startProxyServe(t, env, map[string]string{file: good, "cluster.toml": clusterWithWebhook})
	ps.waitAnswer(t, "canbad.test", "/", "v1", 90*time.Second)
	waitSynced(t, ps, p)
	stable := roleIDs(t, env, p, "stable")

	l := startLoad(ps.http, "canbad.test", 4)
	failing := canaryWeb(imageV2, "canbad.test", deploy)
	failing.Env = map[string]string{"ERROR_RATE": "0.3"}
	ps.push(t, "web v2 that fails", map[string]string{file: failing.String()})
	s := waitCanary(t, ps, p, 60*time.Second, func(s reconcile.ServiceStatus) bool { return s.Sync == reconcile.SyncFailed })
	t.Logf("FIGURE canary abort: status reason %q", s.Reason)
	if !strings.Contains(s.Reason, "step 1 (50%)") || !strings.Contains(s.Reason, "error rate") {
		t.Errorf("reason %q does not give the step and the measured error rate", s.Reason)
	}
	waitFor(t, 30*time.Second, func() (bool, string) {
		ids := roleIDs(t, env, p, "canary")
		return len(ids) == 0, fmt.Sprintf("canary containers %v", ids)
	})
	l.waitAnswers(t, 50) // v1 goes on serving once the canary is gone
	_, bodies, failures, _ := l.finish()
	if bodies["v1"] == 0 || !slices.Equal(roleIDs(t, env, p, "stable"), stable) {
		t.Errorf("stable v1 did not keep serving with its containers: answers %v", bodies)
	}
	t.Logf("FIGURE canary abort: answers %v, %d failed (the canary's 500s)", bodies, len(failures))

	// The pin holds across syncs: no new canary starts.
	for range 2 {
		ps.syncAndWait(t)
		if s := webStatus(ps, p); s.Sync != reconcile.SyncFailed || len(roleIDs(t, env, p, "canary")) != 0 {
			t.Errorf("pin did not hold: %+v", s)
		}
	}
	// A revert: Synced, no container changed.
	before := containerIDs(t, env, p)
	ps.push(t, "revert web v2", map[string]string{file: good})
	waitSynced(t, ps, p)
	if after := containerIDs(t, env, p); !slices.Equal(before, after) {
		t.Errorf("the revert changed containers: %v -> %v", shortIDs(before), shortIDs(after))
	}
}

// TestCanaryManual: a canary without steps waits at canary_weight; promote
// finishes it, abort aborts the next one.
func TestCanaryManual(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("canman")
	file := "services/" + p + "/service.toml"
	deploy := `canary_weight = 30
sticky = true
analysis = {min_requests = 5}`
	ps := startProxyServe(t, env, map[string]string{file: canaryWeb(imageV1, "canman.test", deploy).String(), "cluster.toml": clusterWithWebhook})
	ps.waitAnswer(t, "canman.test", "/", "v1", 90*time.Second)
	waitSynced(t, ps, p)
	if code, _ := ps.call(http.MethodPost, "/api/v1/services/"+p+"/web/promote"); code != http.StatusConflict {
		t.Errorf("promote without a canary: %d, want 409", code)
	}

	l := startLoad(ps.http, "canman.test", 2)
	defer l.finish()
	ps.push(t, "web v2 canary", map[string]string{file: canaryWeb(imageV2, "canman.test", deploy).String()})
	s := waitCanary(t, ps, p, 60*time.Second, func(s reconcile.ServiceStatus) bool { return s.Canary != nil && s.Canary.Phase == "waiting" })
	if s.Canary.Weight != 30 || !strings.Contains(s.Canary.Waiting, "promote") {
		t.Errorf("waiting canary: %+v", s.Canary)
	}
	// It waits: nothing moves by itself, although the canary has served
	// four times min_requests (a canary with steps would have been judged
	// on those) and a sync has run since.
	waitCanary(t, ps, p, 60*time.Second, func(s reconcile.ServiceStatus) bool {
		if s.Canary == nil || s.Canary.Phase != "waiting" {
			t.Fatalf("manual canary did not wait: %+v", s.Canary)
		}
		return s.Canary.Canary.Requests >= 20
	})
	ps.syncAndWait(t)
	if s := webStatus(ps, p); s.Canary == nil || s.Canary.Phase != "waiting" {
		t.Fatalf("manual canary did not wait: %+v", s.Canary)
	}
	// sticky: each client keeps the side its first answer gave it.
	sides := map[string]int{}
	for range 10 {
		first, cookie := stickyGet(t, ps.http, "canman.test", "")
		if cookie == "" {
			t.Fatalf("no sticky cookie with the first answer %q", first)
		}
		sides[first]++
		for range 10 {
			if got, _ := stickyGet(t, ps.http, "canman.test", cookie); got != first {
				t.Fatalf("client with %s got %s after %s", cookie, got, first)
			}
		}
	}
	t.Logf("FIGURE sticky canary at 30%%: first answers of 10 clients %v, each kept its side for 10 more", sides)
	orca := newOrca(t, env, t.TempDir())
	if res := orca.run("promote", p+"/web", "--server", "http://"+ps.api, "--token", ps.token()); res.Code != 0 {
		t.Fatalf("orca-sync promote: %v", res)
	}
	env.waitVersions(t, p, 90*time.Second, "v2", "v2")
	waitSynced(t, ps, p)
	if ids := roleIDs(t, env, p, "canary"); len(ids) != 0 {
		t.Errorf("canary containers left after promote: %v", ids)
	}

	stable := roleIDs(t, env, p, "stable")
	ps.push(t, "web v3 canary", map[string]string{file: canaryWeb(imageV3, "canman.test", deploy).String()})
	waitCanary(t, ps, p, 60*time.Second, func(s reconcile.ServiceStatus) bool { return s.Canary != nil && s.Canary.Phase == "waiting" })
	if res := orca.run("abort", p+"/web", "--server", "http://"+ps.api, "--token", ps.token()); res.Code != 0 {
		t.Fatalf("orca-sync abort: %v", res)
	}
	s = waitCanary(t, ps, p, 60*time.Second, func(s reconcile.ServiceStatus) bool { return s.Sync == reconcile.SyncFailed })
	if !strings.Contains(s.Reason, "aborted by an operator") {
		t.Errorf("reason after abort: %q", s.Reason)
	}
	waitFor(t, 30*time.Second, func() (bool, string) {
		ids := roleIDs(t, env, p, "canary")
		return len(ids) == 0, fmt.Sprintf("canary containers %v", ids)
	})
	if !slices.Equal(roleIDs(t, env, p, "stable"), stable) {
		t.Errorf("abort changed the stable containers")
	}
	env.waitVersions(t, p, 10*time.Second, "v2", "v2")
}

// TestCanaryResumesAfterKill: serve killed with SIGKILL in the middle of a
// step resumes that step with the same containers and the same weight.
func TestCanaryResumesAfterKill(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("cankill")
	file := "services/" + p + "/service.toml"
	deploy := `steps = [{weight = 20, pause_secs = 4}, {weight = 50, pause_secs = 600}]
analysis = {min_requests = 20}`
	ps := startProxyServe(t, env, map[string]string{file: canaryWeb(imageV1, "cankill.test", deploy).String(), "cluster.toml": clusterWithWebhook})
	ps.waitAnswer(t, "cankill.test", "/", "v1", 90*time.Second)
	waitSynced(t, ps, p)
	l := startLoad(ps.http, "cankill.test", 2)
	ps.push(t, "web v2 canary", map[string]string{file: canaryWeb(imageV2, "cankill.test", deploy).String()})
	before := waitCanary(t, ps, p, 60*time.Second, atStep(2))
	l.finish()
	ids := containerIDs(t, env, p)

	ps.kill()
	ps.daemon.start()
	after := waitCanary(t, ps, p, 60*time.Second, func(s reconcile.ServiceStatus) bool { return s.Canary != nil })
	if after.Canary.Step != 2 || after.Canary.Weight != 50 || !slices.Equal(after.Canary.Containers, before.Canary.Containers) ||
		!after.Canary.StepStarted.Equal(before.Canary.StepStarted) {
		t.Errorf("after restart: canary %+v, before %+v", after.Canary, before.Canary)
	}
	ps.waitIdle(t)
	if now := containerIDs(t, env, p); !slices.Equal(ids, now) {
		t.Errorf("restart changed containers: %v -> %v", shortIDs(ids), shortIDs(now))
	}
	l = startLoad(ps.http, "cankill.test", 4)
	bodies := l.waitAnswers(t, 200) // the split is exact per 100 requests: 200 judge it to ±7
	_, _, failures, _ := l.finish()
	share, n := shareOf(nil, bodies, "v2")
	t.Logf("FIGURE canary after SIGKILL: step %d at %d%%, v2 share %.1f%% of %d", after.Canary.Step, after.Canary.Weight, share, n)
	if share < 43 || share > 57 || len(failures) > 0 {
		t.Errorf("after restart v2 share %.1f%% (want 50±7), %d failures", share, len(failures))
	}
}

// TestBlueGreenUnderLoad: a blue-green v1→v2 under load fails no request,
// and once the switch is done no answer comes from v1.
func TestBlueGreenUnderLoad(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("bgload")
	file := "services/" + p + "/service.toml"
	svc := func(image string) string {
		s := routed("web", image, 2, "bgload.test")
		s.Deploy.Strategy = "blue-green"
		return s.String()
	}
	ps := startProxyServe(t, env, map[string]string{file: svc(imageV1), "cluster.toml": clusterWithWebhook})
	ps.waitAnswer(t, "bgload.test", "/", "v1", 90*time.Second)
	waitSynced(t, ps, p)
	l := startLoad(ps.http, "bgload.test", 4)
	l.waitAnswers(t, 50) // v1 answers under load before the switch
	ps.push(t, "web v2 blue-green", map[string]string{file: svc(imageV2)})
	env.waitVersions(t, p, 60*time.Second, "v2", "v2")
	waitSynced(t, ps, p)
	a, _ := l.snapshot()
	b := l.waitAnswers(t, 200)
	total, bodies, failures, rate := l.finish()
	t.Logf("FIGURE blue-green under load: %d requests (%.0f/s), %d failed, answers %v; after the switch: %d v1, %d v2",
		total, rate, len(failures), bodies, b["v1"]-a["v1"], b["v2"]-a["v2"])
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed, first: %s", len(failures), total, failures[0])
	}
	if b["v1"] != a["v1"] || b["v2"] == a["v2"] {
		t.Errorf("after the switch: %d v1 and %d v2 answers, want only v2", b["v1"]-a["v1"], b["v2"]-a["v2"])
	}
	if bodies["v1"] == 0 || bodies["v2"] == 0 {
		t.Errorf("answers %v: the load did not span the switch", bodies)
	}
}

// TestCanarySupersedeRevert: a new commit during a canary replaces it with
// the newest spec's canary; a revert to the stable spec then aborts it
// without touching the stable containers, and the service is Synced.
func TestCanarySupersedeRevert(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("cansup")
	file := "services/" + p + "/service.toml"
	deploy := `canary_weight = 30
analysis = {min_requests = 5}`
	v1 := canaryWeb(imageV1, "cansup.test", deploy).String()
	ps := startProxyServe(t, env, map[string]string{file: v1, "cluster.toml": clusterWithWebhook})
	ps.waitAnswer(t, "cansup.test", "/", "v1", 90*time.Second)
	waitSynced(t, ps, p)
	stable := roleIDs(t, env, p, "stable")

	ps.push(t, "web v2 canary", map[string]string{file: canaryWeb(imageV2, "cansup.test", deploy).String()})
	first := waitCanary(t, ps, p, 60*time.Second, func(s reconcile.ServiceStatus) bool { return s.Canary != nil })
	ps.push(t, "web v3 canary", map[string]string{file: canaryWeb(imageV3, "cansup.test", deploy).String()})
	second := waitCanary(t, ps, p, 60*time.Second, func(s reconcile.ServiceStatus) bool {
		return s.Canary != nil && s.Canary.Hash != first.Canary.Hash
	})
	if ids := roleIDs(t, env, p, "canary"); !slices.Equal(ids, second.Canary.Containers) || slices.Contains(ids, first.Canary.Containers[0]) {
		t.Errorf("canary containers %v, want only the v3 canary %v", shortIDs(ids), shortIDs(second.Canary.Containers))
	}
	ps.push(t, "revert to web v1", map[string]string{file: v1})
	waitSynced(t, ps, p)
	waitFor(t, 30*time.Second, func() (bool, string) {
		ids := roleIDs(t, env, p, "canary")
		return len(ids) == 0, fmt.Sprintf("canary containers %v", ids)
	})
	if s := webStatus(ps, p); s.Canary != nil || s.Sync != reconcile.SyncSynced {
		t.Errorf("after revert: %+v canary %+v", s, s.Canary)
	}
	if now := roleIDs(t, env, p, "stable"); !slices.Equal(now, stable) {
		t.Errorf("stable containers changed: %v -> %v", shortIDs(stable), shortIDs(now))
	}
	env.waitVersions(t, p, 10*time.Second, "v1", "v1")
}

// stickyGet sends GET / with cookie ("" none) and returns the body and the
// sticky cookie (name=value) the proxy set, if any.
func stickyGet(t *testing.T, addr, host, cookie string) (string, string) {
	t.Helper()
	hdr := map[string]string{}
	if cookie != "" {
		hdr["Cookie"] = cookie
	}
	resp, body := request(t, addr, http.MethodGet, host, "/", nil, hdr)
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, "orca-") {
			return body, c.Name + "=" + c.Value
		}
	}
	return body, ""
}
