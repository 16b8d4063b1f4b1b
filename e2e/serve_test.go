package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/orca-sync/orca-sync/internal/gittest"
	"github.com/orca-sync/orca-sync/reconcile"
)

const clusterWithWebhook = `[webhook]
secret = "` + hookToken + `"
[reconcile]
interval_secs = 3600
`

// versions answers GET / of every running container of project/service.
func (e *Env) versions(project, service string) []string {
	cs, err := e.containers(project, service)
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	var out []string
	for _, c := range cs {
		if c.State != "running" {
			out = append(out, string(c.State))
			continue
		}
		ip, err := e.containerIP(c.ID, "orca-"+project)
		if err != nil {
			out = append(out, "no ip")
			continue
		}
		_, body, err := e.httpGet("http://" + ip + ":8080/")
		if err != nil {
			body = "unreachable"
		}
		out = append(out, body)
	}
	slices.Sort(out)
	return out
}

// waitVersions waits until project/web answers exactly want (sorted).
func (e *Env) waitVersions(t *testing.T, project string, timeout time.Duration, want ...string) {
	t.Helper()
	e.waitFor(t, timeout, func() (bool, string) {
		got := e.versions(project, "web")
		return slices.Equal(got, want), fmt.Sprintf("web answers %q, want %q", got, want)
	})
}

func containerIDs(t *testing.T, e *Env, project string) []string {
	t.Helper()
	return idsOf(e.mustContainers(t, project, ""))
}

// TestServeDeploysPushedCommits drives serve against a smart-HTTP remote with
// basic auth: a pushed commit announced by a signed webhook deploys; bad
// webhooks and invalid commits change nothing; a revert rolls back; the
// remote going away leaves everything running.
func TestServeDeploysPushedCommits(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("gitops")
	repo, srv := newServedRepo(t)
	file := "services/" + p + "/service.toml"
	repo.WriteFile("cluster.toml", clusterWithWebhook)
	repo.WriteFile(file, webApp(imageV1, 1).String())
	repo.Commit("web v1")
	repo.Push()
	url := srv.URL("infra.git")

	d := startServe(t, env, url)
	env.waitVersions(t, p, 60*time.Second, "v1")
	// The container answers before serve's readiness probe has passed; until
	// then status says Progressing, then Synced and Healthy.
	env.waitFor(t, 30*time.Second, func() (bool, string) {
		s := serviceOf(d.status(), p, "web")
		return s.Sync == reconcile.SyncSynced && s.Health == reconcile.HealthHealthy && s.Ready == 1, fmt.Sprintf("after the first sync: %+v", s)
	})

	t.Run("signed webhook deploys the pushed commit", func(t *testing.T) {
		repo.WriteFile(file, webApp(imageV2, 1).String())
		repo.Commit("web v2")
		repo.Push()
		start := time.Now()
		if code := d.webhook(pushEvent(url), hookToken, "delivery-1"); code != http.StatusAccepted {
			t.Fatalf("webhook: %d", code)
		}
		env.waitFor(t, 30*time.Second, func() (bool, string) {
			got := env.versions(p, "web")
			return slices.Contains(got, "v2"), fmt.Sprintf("web answers %q", got)
		})
		seen := time.Now()
		for _, c := range env.mustContainers(t, p, "web") {
			ins := env.inspect(t, c.ID)
			if ins.Config.Image != imageV2 {
				continue
			}
			created, _ := time.Parse(time.RFC3339Nano, ins.Created)
			started, _ := time.Parse(time.RFC3339Nano, ins.State.StartedAt)
			t.Logf("FIGURE webhook -> container created (fetch, load, plan, create call): %v; created -> started (Docker): %v; started -> v2 seen answering: %v; total %v",
				created.Sub(start).Round(time.Millisecond), started.Sub(created).Round(time.Millisecond),
				seen.Sub(started).Round(time.Millisecond), seen.Sub(start).Round(time.Millisecond))
		}
		env.waitVersions(t, p, 30*time.Second, "v2")
	})

	t.Run("bad webhooks change nothing", func(t *testing.T) {
		d.waitIdle(t) // the v2 sync is over
		before, syncs, refused := containerIDs(t, env, p), len(d.history()), time.Now()
		repo.WriteFile(file, webApp(imageV2, 1).String()+"# a commit nobody announced\n")
		repo.Commit("comment, not announced")
		repo.Push()
		for _, c := range []struct {
			name   string
			body   []byte
			secret string
			want   int
		}{
			{"wrong signature", pushEvent(url), "not-the-secret", http.StatusUnauthorized},
			{"no signature", pushEvent(url), "", http.StatusUnauthorized},
			{"oversized body", append(pushEvent(url), make([]byte, 1<<20+10)...), hookToken, http.StatusRequestEntityTooLarge},
		} {
			if code := d.webhook(c.body, c.secret, "bad-"+c.name); code != c.want {
				t.Errorf("%s: %d, want %d", c.name, code, c.want)
			}
		}
		// Nothing happening has no event to wait for: a refused webhook's
		// answer is sent before any sync could start, so a second after it
		// a sync it had wrongly asked for would be under way or recorded.
		time.Sleep(time.Second)
		if st := d.status(); st.Syncing || (st.LastSync != nil && st.LastSync.Started.After(refused)) {
			t.Fatalf("a refused webhook started a sync: %+v", st.LastSync)
		}
		if after := containerIDs(t, env, p); !slices.Equal(before, after) || len(d.history()) != syncs {
			t.Fatalf("a refused webhook changed something: containers %v -> %v", before, after)
		}
		if code := d.webhook(pushEvent(url), hookToken, "delivery-1"); code != http.StatusOK {
			t.Fatalf("a repeated delivery ID: %d, want 200", code)
		}
	})

	t.Run("revert commit rolls back", func(t *testing.T) {
		repo.WriteFile(file, webApp(imageV3, 1).String())
		v3 := repo.Commit("web v3")
		repo.Push()
		d.webhook(pushEvent(url), hookToken, "delivery-v3")
		env.waitVersions(t, p, 30*time.Second, "v3")
		repo.Revert(v3)
		repo.Push()
		d.webhook(pushEvent(url), hookToken, "delivery-revert")
		env.waitVersions(t, p, 30*time.Second, "v2")
	})

	t.Run("invalid commits change nothing and say why", func(t *testing.T) {
		before := containerIDs(t, env, p)
		for i, bad := range []struct{ content, want string }{
			{"[[service]\nname = \"web\"\n", file + ":2: TOML syntax"},
			{"[[service]]\nname = \"web\"\nimage = \"" + imageV1 + "\"\nreplica = 2\n", `web: unknown key "replica"`},
			{"[[service]]\nname = \"web\"\nport = 8080\n", "image is required"},
		} {
			repo.WriteFile(file, bad.content)
			sha := repo.Commit(fmt.Sprintf("broken %d", i))
			repo.Push()
			d.webhook(pushEvent(url), hookToken, fmt.Sprintf("delivery-bad-%d", i))
			env.waitFor(t, 30*time.Second, func() (bool, string) {
				st := d.status()
				ok := st.LastSync != nil && st.LastSync.Commit == sha && st.LastSync.Result == reconcile.ResultInvalid &&
					strings.Contains(st.LastSync.Error, bad.want)
				return ok, fmt.Sprintf("last sync %+v", st.LastSync)
			})
			if st := d.status(); len(st.Errors) == 0 || st.Errors[0].File != file {
				t.Fatalf("status errors = %+v, want one naming %s", st.Errors, file)
			}
		}
		if after := containerIDs(t, env, p); !slices.Equal(before, after) {
			t.Fatalf("an invalid commit changed containers: %v -> %v", before, after)
		}
		repo.WriteFile(file, webApp(imageV1, 1).String())
		repo.Commit("fixed: web v1")
		repo.Push()
		d.webhook(pushEvent(url), hookToken, "delivery-fixed")
		env.waitVersions(t, p, 30*time.Second, "v1")
	})

	t.Run("remote down keeps services running", func(t *testing.T) {
		before := containerIDs(t, env, p)
		srv.Stop()
		if code, body := d.call(http.MethodPost, "/api/v1/sync"); code != http.StatusAccepted {
			t.Fatalf("sync: %d %s", code, body)
		}
		env.waitFor(t, 30*time.Second, func() (bool, string) {
			st := d.status()
			return strings.Contains(st.FetchError, "infra.git"), "fetch error: " + st.FetchError
		})
		if after := containerIDs(t, env, p); !slices.Equal(before, after) {
			t.Fatalf("containers changed while the remote was down: %v -> %v", before, after)
		}
		srv.Start()
		repo.WriteFile(file, webApp(imageV3, 1).String())
		repo.Commit("web v3 once the remote is back")
		repo.Push()
		d.webhook(pushEvent(url), hookToken, "delivery-back")
		env.waitVersions(t, p, 30*time.Second, "v3")
		if st := d.status(); st.FetchError != "" {
			t.Fatalf("fetch error still reported: %s", st.FetchError)
		}
	})
}

// TestServeIntervalPicksUpCommits: without any webhook, the interval alone
// deploys a pushed commit (here from a file:// remote).
func TestServeIntervalPicksUpCommits(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("tick")
	repo := gittest.NewRepo(t)
	file := "services/" + p + "/service.toml"
	repo.WriteFile("cluster.toml", "[reconcile]\ninterval_secs = 1\n")
	repo.WriteFile(file, webApp(imageV1, 1).String())
	repo.Commit("v1")
	repo.Push()
	startServe(t, env, repo.FileURL())
	env.waitVersions(t, p, 60*time.Second, "v1")
	repo.WriteFile(file, webApp(imageV2, 1).String())
	repo.Commit("v2")
	repo.Push()
	env.waitVersions(t, p, 30*time.Second, "v2")
}

// TestServeConvergesAfterSIGKILL kills serve in the middle of a rolling update
// and starts it again: it converges with no orphaned or duplicated container,
// and the history shows both syncs.
func TestServeConvergesAfterSIGKILL(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("crash")
	repo := gittest.NewRepo(t)
	file := "services/" + p + "/service.toml"
	slow := func(image string) string {
		s := webApp(image, 2)
		s.Readiness.InitialDelaySecs = 3 // each new container takes 3 s to be ready
		return s.String()
	}
	repo.WriteFile("cluster.toml", clusterWithWebhook)
	repo.WriteFile(file, slow(imageV1))
	repo.Commit("v1")
	repo.Push()
	d := startServe(t, env, repo.FileURL())
	env.waitVersions(t, p, 90*time.Second, "v1", "v1")
	v1IDs := containerIDs(t, env, p)

	repo.WriteFile(file, slow(imageV2))
	repo.Commit("v2")
	repo.Push()
	if code, _ := d.call(http.MethodPost, "/api/v1/sync"); code != http.StatusAccepted {
		t.Fatal("sync not accepted")
	}
	env.waitFor(t, 30*time.Second, func() (bool, string) {
		ids := containerIDs(t, env, p)
		return len(ids) > 2, fmt.Sprintf("containers %v", ids)
	})
	d.kill()
	mid := containerIDs(t, env, p)
	t.Logf("killed with containers %v (v1 was %v)", shortIDs(mid), shortIDs(v1IDs))

	d.start()
	env.waitVersions(t, p, 90*time.Second, "v2", "v2")
	env.waitFor(t, 30*time.Second, func() (bool, string) {
		cs := env.mustContainers(t, p, "")
		return len(cs) == 2 && allRunning(cs), "containers: " + describe(cs)
	})
	// The containers converge before the restarted sync records its result
	// (it writes the history once its rollout is over), so the history is
	// polled, not read once.
	env.waitFor(t, 30*time.Second, func() (bool, string) {
		recs := d.history()
		var results []string
		for _, r := range recs {
			results = append(results, r.Result)
		}
		return slices.Contains(results, reconcile.ResultInterrupted) && len(recs) > 0 && recs[0].Result == reconcile.ResultSucceeded,
			fmt.Sprintf("history results (newest first) %v: want the killed sync marked interrupted and a later success", results)
	})
}

// TestServeWatchRedeployAndLogs: a push webhook from a service's watch
// repository rolls it when its image tag moved; redeploy replaces its
// containers; logs stream what they printed.
func TestServeWatchRedeployAndLogs(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("watch")
	moving := "orca-test/app:" + env.Prefix + "moving"
	tag := func(src string) {
		t.Helper()
		ctx, cancel := env.ctx()
		defer cancel()
		if _, err := env.Docker.ImageTag(ctx, client.ImageTagOptions{Source: src, Target: moving}); err != nil {
			t.Fatal(err)
		}
	}
	tag(imageV1)
	t.Cleanup(func() {
		ctx, cancel := env.ctx()
		defer cancel()
		env.Docker.ImageRemove(ctx, moving, client.ImageRemoveOptions{})
	})
	repo := gittest.NewRepo(t)
	file := "services/" + p + "/service.toml"
	repo.WriteFile("cluster.toml", clusterWithWebhook)
	watched := webApp(moving, 2)
	watched.Tables = "[service.watch]\nrepo = \"acme/app\"\nbranch = \"main\"\n"
	repo.WriteFile(file, watched.String())
	repo.Commit("web follows acme/app")
	repo.Push()
	d := startServe(t, env, repo.FileURL())
	env.waitVersions(t, p, 60*time.Second, "v1", "v1")

	tag(imageV2) // CI pushed a new build under the same tag
	appPush := []byte(`{"ref":"refs/heads/main","repository":{"full_name":"acme/app","clone_url":"https://git.example.com/acme/app.git"}}`)
	if code := d.webhook(appPush, hookToken, "app-push-1"); code != http.StatusAccepted {
		t.Fatalf("watch webhook: %d", code)
	}
	env.waitVersions(t, p, 60*time.Second, "v2", "v2")

	before := containerIDs(t, env, p)
	if code, body := d.call(http.MethodPost, "/api/v1/services/"+p+"/web/redeploy"); code != http.StatusAccepted {
		t.Fatalf("redeploy: %d %s", code, body)
	}
	env.waitFor(t, 60*time.Second, func() (bool, string) {
		after := containerIDs(t, env, p)
		for _, id := range after {
			if slices.Contains(before, id) {
				return false, fmt.Sprintf("still running %v of %v", shortIDs(after), shortIDs(before))
			}
		}
		return len(after) == 2, fmt.Sprintf("containers %v", shortIDs(after))
	})
	env.waitVersions(t, p, 30*time.Second, "v2", "v2")
	if code, _ := d.call(http.MethodPost, "/api/v1/services/"+p+"/nope/redeploy"); code != http.StatusNotFound {
		t.Fatalf("redeploy of an unknown service: %d, want 404", code)
	}
	code, body := d.call(http.MethodGet, "/api/v1/services/"+p+"/web/logs?tail=5")
	if code != http.StatusOK || !strings.Contains(string(body), "testapp version=v2 listening") {
		t.Fatalf("logs: %d %q", code, body)
	}
}

// TestServeRestartOnInvalidHead restarts serve while the branch head is
// invalid: it keeps running on the last valid commit's configuration, so the
// webhook secret still verifies and the fix, announced by a signed webhook,
// deploys at once (the interval is an hour) instead of answering 403.
func TestServeRestartOnInvalidHead(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("restartbad")
	repo, srv := newServedRepo(t)
	url := srv.URL("infra.git")
	file := "services/" + p + "/service.toml"
	repo.WriteFile("cluster.toml", clusterWithWebhook)
	repo.WriteFile(file, webApp(imageV1, 1).String())
	good := repo.Commit("v1")
	repo.Push()
	d := startServe(t, env, url)
	env.waitVersions(t, p, 60*time.Second, "v1")

	repo.WriteFile(file, webApp(imageV2, 1).String()+"replica = 2\n")
	repo.Commit("typo")
	repo.Push()
	d.stop()
	d.start()
	env.waitFor(t, 30*time.Second, func() (bool, string) {
		st := d.status()
		return len(st.Errors) > 0 && st.Commit == good, fmt.Sprintf("status commit %s, errors %v", st.Commit, st.Errors)
	})
	env.waitVersions(t, p, 5*time.Second, "v1")

	repo.WriteFile(file, webApp(imageV2, 1).String())
	repo.Commit("fix")
	repo.Push()
	if code := d.webhook(pushEvent(url), hookToken, "restart-fix"); code != http.StatusAccepted {
		t.Fatalf("signed webhook after a restart on an invalid head: %d, want 202", code)
	}
	env.waitVersions(t, p, 30*time.Second, "v2")
}
