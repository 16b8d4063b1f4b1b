package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/reconcile"
)

// received is one request a notification sink got.
type received struct {
	at    time.Time
	event map[string]any
}

// notifySink is a [[notify]] webhook endpoint answering code.
type notifySink struct {
	*httptest.Server
	mu   sync.Mutex
	got  []received
	code int
}

func newNotifySink(t *testing.T, code int) *notifySink {
	s := &notifySink{code: code}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var ev map[string]any
		_ = json.Unmarshal(raw, &ev)
		s.mu.Lock()
		s.got = append(s.got, received{at: time.Now(), event: ev})
		s.mu.Unlock()
		w.WriteHeader(s.code)
	}))
	t.Cleanup(s.Close)
	return s
}

// of returns what the sink got of kind for commit, in order.
func (s *notifySink) of(kind, commit string) []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []received
	for _, r := range s.got {
		if r.event["kind"] == kind && r.event["commit"] == commit {
			out = append(out, r)
		}
	}
	return out
}

func (s *notifySink) wait(t *testing.T, kind, commit string, n int) []received {
	t.Helper()
	var got []received
	waitFor(t, 90*time.Second, func() (bool, string) {
		got = s.of(kind, commit)
		return len(got) >= n, fmt.Sprintf("%d %s events for %s, want %d; all: %v", len(got), kind, short(commit), n, s.all())
	})
	return got
}

func (s *notifySink) all() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, r := range s.got {
		out = append(out, r.event)
	}
	return out
}

// TestServeNotifications: a sink gets sync_succeeded and rollout_failed with
// their fields; a sink answering 500 is retried, given up, and never holds
// up the next sync; a repeated failure is sent once, also across a restart.
func TestServeNotifications(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("notify")
	good, bad := newNotifySink(t, http.StatusOK), newNotifySink(t, http.StatusInternalServerError)
	repo, srv := newServedRepo(t)
	file := "services/" + p + "/service.toml"
	repo.WriteFile("cluster.toml", clusterWithWebhook+fmt.Sprintf(`[cluster]
name = "e2e"
[[notify]]
type = "webhook"
url = %q
events = ["sync_succeeded", "sync_failed", "rollout_failed"]
[[notify]]
type = "webhook"
url = %q
`, good.URL+"/orca", bad.URL+"/down"))
	repo.WriteFile(file, webApp(imageV1, 1).String())
	c1 := repo.Commit("web v1")
	repo.Push()
	url := srv.URL("infra.git")
	d := startServe(t, env, url)

	ev := good.wait(t, "sync_succeeded", c1, 1)[0].event
	if ev["node"] != env.Prefix || ev["cluster"] != "e2e" || ev["subject"] != "web v1" || fmt.Sprint(ev["services"]) != "["+p+"/web]" || ev["time"] == nil {
		t.Fatalf("sync_succeeded = %v", ev)
	}

	t.Run("a failing sink is retried, given up, and does not hold up the next sync", func(t *testing.T) {
		tries := bad.wait(t, "sync_succeeded", c1, 3)
		repo.WriteFile(file, webApp(imageV2, 1).String())
		c2 := repo.Commit("web v2")
		repo.Push()
		d.webhook(pushEvent(url), hookToken, "n-push-2")
		first := bad.wait(t, "sync_succeeded", c2, 1)[0].at
		repo.WriteFile(file, webApp(imageV3, 1).String())
		c3 := repo.Commit("web v3")
		repo.Push()
		d.webhook(pushEvent(url), hookToken, "n-push-3")
		env.waitVersions(t, p, 60*time.Second, "v3")
		var started time.Time
		for _, r := range d.history() {
			if r.Commit == c3 {
				started = r.Started
			}
		}
		third := bad.wait(t, "sync_succeeded", c2, 3)[2].at
		if started.IsZero() || !started.Before(third) {
			t.Fatalf("the sync of %s started at %v, not before the last try of the failing sink at %v (first %v)", short(c3), started, third, first)
		}
		if len(tries) != 3 || len(bad.of("sync_succeeded", c1)) != 3 {
			t.Fatalf("the 500 sink got %d tries of one event, want exactly 3", len(bad.of("sync_succeeded", c1)))
		}
		good.wait(t, "sync_succeeded", c3, 1)
	})

	t.Run("rollout_failed", func(t *testing.T) {
		broken := webApp(imageBroken, 1)
		broken.Deploy.TimeoutSecs = 5
		repo.WriteFile(file, broken.String())
		c4 := repo.Commit("web broken")
		repo.Push()
		d.webhook(pushEvent(url), hookToken, "n-push-4")
		ev := good.wait(t, "rollout_failed", c4, 1)[0].event
		if fmt.Sprint(ev["services"]) != "["+p+"/web]" || !strings.Contains(fmt.Sprint(ev["reason"]), "not ready") || ev["node"] != env.Prefix {
			t.Fatalf("rollout_failed = %v", ev)
		}
		if n := len(good.of("sync_failed", c4)); n != 0 {
			t.Fatalf("a rollout failure also sent %d sync_failed", n)
		}
	})

	t.Run("a repeated failure is sent once, across a restart", func(t *testing.T) {
		repo.WriteFile(file, strings.Replace(webApp(imageV1, 1).String(), "replicas = ", "replica = ", 1))
		c5 := repo.Commit("typo")
		repo.Push()
		d.webhook(pushEvent(url), hookToken, "n-push-5")
		ev := good.wait(t, "sync_failed", c5, 1)[0].event
		if !strings.HasPrefix(fmt.Sprint(ev["reason"]), "invalid: "+file+":") {
			t.Fatalf("sync_failed = %v", ev)
		}
		d.syncNow()
		waitSyncs(t, d, c5, reconcile.ResultInvalid, 2)

		// A refused mass prune fails the same way on every sync, and a
		// restart knows the cluster.toml (hence the sinks) of that commit.
		repo.Remove("services/" + p)
		repo.WriteFile("services/_notes/README", "no projects for now\n")
		c6 := repo.Commit("remove everything")
		repo.Push()
		d.syncNow()
		ev = good.wait(t, "sync_failed", c6, 1)[0].event
		if !strings.Contains(fmt.Sprint(ev["reason"]), "nothing applied") {
			t.Fatalf("sync_failed of a refused prune = %v", ev)
		}
		d.stop()
		d.start() // syncs the same commit at start, refused again
		waitSyncs(t, d, c6, reconcile.ResultFailed, 2)

		repo.Remove("services/_notes")
		repo.WriteFile(file, webApp(imageV2, 1).String())
		c7 := repo.Commit("web v2 back")
		repo.Push()
		d.syncNow()
		good.wait(t, "sync_succeeded", c7, 1)
		if n := len(good.of("sync_failed", c5)); n != 1 {
			t.Fatalf("the invalid commit was reported %d times in two syncs, want once", n)
		}
		if n := len(good.of("sync_failed", c6)); n != 1 {
			t.Fatalf("the refused prune was reported %d times in two syncs and a restart, want once", n)
		}
	})
}

// syncNow signals a sync through the API. (A webhook would not do after a
// restart on an invalid commit: serve knows no webhook secret until a valid
// one.)
func (d *daemon) syncNow() {
	d.t.Helper()
	if code, body := d.call(http.MethodPost, "/api/v1/sync"); code != http.StatusAccepted {
		d.t.Fatalf("sync: %d %s", code, body)
	}
}

// waitSyncs waits until the history holds n syncs of commit with result.
func waitSyncs(t *testing.T, d *daemon, commit, result string, n int) {
	t.Helper()
	waitFor(t, 60*time.Second, func() (bool, string) {
		got := 0
		for _, r := range d.history() {
			if r.Commit == commit && r.Result == result {
				got++
			}
		}
		return got >= n, fmt.Sprintf("%d %s syncs of %s, want %d: %+v", got, result, short(commit), n, d.history())
	})
}
