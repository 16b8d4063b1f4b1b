package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/reconcile"
)

// TestProxyZeroDowntime sends requests without pause through the proxy while
// serve rolls a 2-replica service v1→v2, scales it up and down, and undoes a
// failed rollout: not one request may fail.
func TestProxyZeroDowntime(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("zero")
	file := "services/" + p + "/service.toml"
	withWeb := func(image string, replicas, timeoutSecs int) map[string]string {
		s := routed("web", image, replicas, "zero.test")
		if timeoutSecs != 0 {
			s.Deploy.TimeoutSecs = timeoutSecs
		}
		return map[string]string{file: s.String()}
	}
	files := withWeb(imageV1, 2, 0)
	files["cluster.toml"] = clusterWithWebhook
	ps := startProxyServe(t, env, files)
	ps.waitAnswer(t, "zero.test", "/", "v1", 90*time.Second)
	env.waitVersions(t, p, 60*time.Second, "v1", "v1")

	check := func(t *testing.T, what string, l *load, wantSeen ...string) map[string]int {
		t.Helper()
		total, bodies, failures, rate := l.finish()
		t.Logf("FIGURE zero downtime, %s: %d requests (%.0f/s over %v), %d failed, answers %v",
			what, total, rate, l.elapsed.Round(time.Millisecond), len(failures), bodies)
		if len(failures) > 0 {
			t.Errorf("%d of %d requests failed, first: %s", len(failures), total, failures[0])
		}
		if rate < 100 {
			t.Errorf("only %.0f requests/s: the test is not testing much", rate)
		}
		for _, v := range wantSeen {
			if bodies[v] == 0 {
				t.Errorf("no %s answer seen: %v", v, bodies)
			}
		}
		return bodies
	}

	t.Run("rolling v1 to v2", func(t *testing.T) {
		l := startLoad(ps.http, "zero.test", 4)
		l.waitAnswers(t, 50) // v1 answers under load before the rollout
		ps.push(t, "web v2", withWeb(imageV2, 2, 0))
		env.waitVersions(t, p, 60*time.Second, "v2", "v2")
		waitSynced(t, ps, p)
		l.waitAnswers(t, 50) // and v2 answers once it is over
		check(t, "rolling v1→v2, 2 replicas", l, "v1", "v2")
		if l.last != "v2" {
			t.Errorf("last answer %q, want v2", l.last)
		}
	})

	t.Run("scale 2 to 3 to 1", func(t *testing.T) {
		l := startLoad(ps.http, "zero.test", 4)
		ps.push(t, "web x3", withWeb(imageV2, 3, 0))
		env.waitVersions(t, p, 60*time.Second, "v2", "v2", "v2")
		waitSynced(t, ps, p)
		ps.push(t, "web x1", withWeb(imageV2, 1, 0))
		env.waitVersions(t, p, 60*time.Second, "v2")
		waitSynced(t, ps, p)
		l.waitAnswers(t, 50)
		if bodies := check(t, "scale 2→3→1", l, "v2"); len(bodies) != 1 {
			t.Errorf("answers %v, want only v2", bodies)
		}
	})

	t.Run("failed rollout is undone", func(t *testing.T) {
		ps.push(t, "web x2", withWeb(imageV2, 2, 0))
		env.waitVersions(t, p, 60*time.Second, "v2", "v2")
		waitSynced(t, ps, p)
		l := startLoad(ps.http, "zero.test", 4)
		ps.push(t, "web broken", withWeb(imageBroken, 2, 6))
		waitFor(t, 60*time.Second, func() (bool, string) {
			s := serviceOf(ps.status(), p, "web")
			return s.Sync == reconcile.SyncFailed, fmt.Sprintf("web: %+v", s)
		})
		env.waitVersions(t, p, 30*time.Second, "v2", "v2")
		l.waitAnswers(t, 50)
		if bodies := check(t, "failed rollout undone", l, "v2"); len(bodies) != 1 {
			t.Errorf("answers %v, want only v2", bodies)
		}
	})
}

// waitSynced waits until serve reports project/web synced and idle.
func waitSynced(t *testing.T, ps *proxyServe, project string) {
	t.Helper()
	waitFor(t, 60*time.Second, func() (bool, string) {
		st := ps.status()
		s := serviceOf(st, project, "web")
		return s.Sync == reconcile.SyncSynced && !st.Syncing, fmt.Sprintf("web: %+v syncing=%v", s, st.Syncing)
	})
}
