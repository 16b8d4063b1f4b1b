package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/internal/gittest"
	"github.com/orca-sync/orca-sync/reconcile"
)

// hook is a [service.hooks.NAME] table running cmd in the image's shell.
func hook(name, cmd string) string {
	return fmt.Sprintf("[service.hooks.%s]\ncommand = [\"sh\", \"-c\", %q]\ntimeout_secs = 120\n", name, cmd)
}

// volumeWeb is service web of the shell image at version with the volume
// vol at /data, more env and tables (its hooks).
func volumeWeb(version, vol string, env map[string]string, tables ...string) string {
	s := webApp(imageShell, 1)
	s.Env = map[string]string{"VERSION": version}
	maps.Copy(s.Env, env)
	s.Keys = []string{fmt.Sprintf(`volumes = [{source = %q, target = "/data"}]`, vol)}
	s.Tables = strings.Join(tables, "")
	return s.String()
}

// oneOffs lists the hook and job containers of project, running or not.
func (e *Env) oneOffs(t testing.TB, project string) []container.Summary {
	t.Helper()
	ctx, cancel := e.ctx()
	defer cancel()
	var out []container.Summary
	for _, role := range []string{"hook", "job"} {
		f := make(client.Filters).Add("label", "orca.managed=true", "orca.project="+project, "orca.role="+role)
		res, err := e.Docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res.Items...)
	}
	return out
}

// webFile is file path as the one running web container of project reads it.
func (e *Env) webFile(t testing.TB, project, path string) string {
	t.Helper()
	cs := e.mustContainers(t, project, "web")
	if len(cs) != 1 {
		t.Fatalf("want one web container: %s", describe(cs))
	}
	ip, err := e.containerIP(cs[0].ID, "orca-"+project)
	if err != nil {
		t.Fatal(err)
	}
	code, body, err := e.httpGet("http://" + ip + ":8080/file?path=" + path)
	if err != nil || code != 200 {
		t.Fatalf("GET /file?path=%s: %d %v %s", path, code, err, body)
	}
	return body
}

// TestHooksAroundRollouts: a failing pre_deploy (exit 3) starts nothing and
// leaves v1 serving, status showing the exit code and the hook's output; a
// pre_deploy migration writes a marker into the volume that the new version
// needs at start; a failing post_deploy marks Failed and keeps the new
// version. No hook container is left at any point after a hook ended.
func TestHooksAroundRollouts(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("hooks")
	vol := p + "-data"
	repo := gittest.NewRepo(t)
	file := "services/" + p + "/service.toml"
	repo.WriteFile("cluster.toml", "[reconcile]\ninterval_secs = 3600\n")
	repo.WriteFile(file, volumeWeb("v1", vol, nil))
	repo.CommitPush("v1")
	d := startServe(t, env, repo.FileURL())
	env.waitVersions(t, p, 90*time.Second, "v1")
	v1 := containerIDs(t, env, p)
	noHookLeft := func(t *testing.T) {
		t.Helper()
		if left := env.oneOffs(t, p); len(left) > 0 {
			t.Fatalf("hook containers left: %s", describe(left))
		}
	}

	t.Run("failing pre_deploy leaves v1 serving", func(t *testing.T) {
		repo.WriteFile(file, volumeWeb("v2", vol, nil,
			hook("pre_deploy", "echo migrating; echo 'ALTER TABLE failed: column exists' >&2; exit 3")))
		repo.CommitPush("v2 with a failing migration")
		d.syncAndWait(t)
		s := serviceOf(d.status(), p, "web")
		if s.Sync != reconcile.SyncFailed || !strings.Contains(s.Reason, "pre_deploy hook exited with code 3") ||
			!strings.Contains(s.Reason, "ALTER TABLE failed: column exists") {
			t.Fatalf("status of web = %+v, want Failed with the exit code and the hook's output", s)
		}
		if got := containerIDs(t, env, p); !slices.Equal(got, v1) {
			t.Fatalf("containers %v, want v1's %v unchanged", shortIDs(got), shortIDs(v1))
		}
		if got := env.versions(p, "web"); !slices.Equal(got, []string{"v1"}) {
			t.Fatalf("web answers %q, want v1", got)
		}
		noHookLeft(t)
	})

	t.Run("pre_deploy migration runs before the new version starts", func(t *testing.T) {
		repo.WriteFile(file, volumeWeb("v3", vol, map[string]string{"REQUIRE_FILE": "/data/marker"},
			hook("pre_deploy", "echo migrated-$VERSION >> /data/marker")))
		repo.CommitPush("v3 with a migration")
		d.syncAndWait(t)
		env.waitVersions(t, p, 60*time.Second, "v3")
		// v3 exits at start without the marker (REQUIRE_FILE), and only the
		// hook writes it.
		if got := env.webFile(t, p, "/data/marker"); got != "migrated-v3\n" {
			t.Fatalf("marker = %q, want the hook's one line", got)
		}
		if s := serviceOf(d.status(), p, "web"); s.Sync != reconcile.SyncSynced {
			t.Fatalf("status of web = %+v, want Synced", s)
		}
		noHookLeft(t)
	})

	t.Run("failing post_deploy marks Failed and keeps the new version", func(t *testing.T) {
		repo.WriteFile(file, volumeWeb("v4", vol, nil, hook("post_deploy", "echo 'cache warm-up failed'; exit 5")))
		repo.CommitPush("v4 with a failing post_deploy")
		d.syncAndWait(t)
		env.waitVersions(t, p, 60*time.Second, "v4")
		s := serviceOf(d.status(), p, "web")
		if s.Sync != reconcile.SyncFailed || !strings.Contains(s.Reason, "post_deploy hook exited with code 5") ||
			!strings.Contains(s.Reason, "cache warm-up failed") {
			t.Fatalf("status of web = %+v, want Failed by post_deploy", s)
		}
		noHookLeft(t)
	})
}

// logsOf is what container id printed so far.
func (e *Env) logsOf(id string) string {
	ctx, cancel := e.ctx()
	defer cancel()
	rc, err := e.Docker.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "logs: " + err.Error()
	}
	defer rc.Close()
	var b strings.Builder
	_, _ = stdcopy.StdCopy(&b, &b, rc)
	return b.String()
}

// TestHookRunsAgainAfterSIGKILL: serve killed while a pre_deploy hook runs;
// after the restart the hook container is gone and the hook ran again
// before the new version started.
func TestHookRunsAgainAfterSIGKILL(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("hookkill")
	vol := p + "-data"
	repo := gittest.NewRepo(t)
	file := "services/" + p + "/service.toml"
	repo.WriteFile("cluster.toml", "[reconcile]\ninterval_secs = 3600\n")
	repo.WriteFile(file, volumeWeb("v1", vol, nil))
	repo.CommitPush("v1")
	d := startServe(t, env, repo.FileURL())
	env.waitVersions(t, p, 90*time.Second, "v1")

	// The first run waits long (serve is killed meanwhile); a run that finds
	// an earlier one's line goes through.
	repo.WriteFile(file, volumeWeb("v2", vol, nil,
		hook("pre_deploy", "echo run >> /data/runs; echo started; [ $(wc -l < /data/runs) -ge 2 ] || sleep 600")))
	repo.CommitPush("v2 with a slow migration")
	d.syncNow()
	var first container.Summary
	env.waitFor(t, 60*time.Second, func() (bool, string) {
		hs := env.oneOffs(t, p)
		if len(hs) == 1 && strings.Contains(env.logsOf(hs[0].ID), "started") {
			first = hs[0]
			return true, ""
		}
		return false, "hook containers: " + describe(hs)
	})
	d.kill()
	d.start()
	env.waitVersions(t, p, 90*time.Second, "v2")
	if left := env.oneOffs(t, p); len(left) > 0 {
		t.Fatalf("hook containers left after the restart: %s (the killed one was %s)", describe(left), nameOf(first))
	}
	if got := env.webFile(t, p, "/data/runs"); got != "run\nrun\n" {
		t.Fatalf("/data/runs = %q, want the hook to have run twice", got)
	}
}

// TestStopGraceSecs: with stop_grace_secs = 30, an app that needs 15 s to
// shut down exits cleanly (0) when a rollout retires it, not by SIGKILL (137).
func TestStopGraceSecs(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("grace")
	dir := t.TempDir()
	o := newOrca(t, env, dir)
	slow := func(version string) string {
		s := webApp(imageV1, 1)
		s.Env = map[string]string{"VERSION": version, "SHUTDOWN_DELAY_MS": "15000"}
		s.Keys = []string{"stop_grace_secs = 30"}
		return s.String()
	}
	writeProject(t, dir, p, slow("v1"))
	o.mustApply()
	old := containerIDs(t, env, p)
	events := env.watchEvents(t, p)
	writeProject(t, dir, p, slow("v2"))
	o.mustApply()
	evs, err := events.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var exits []string
	for _, e := range evs {
		if string(e.Action) == "die" && slices.Contains(old, e.Actor.ID) {
			exits = append(exits, e.Actor.Attributes["exitCode"])
		}
	}
	if !slices.Equal(exits, []string{"0"}) {
		t.Fatalf("the retired v1 container died with exit codes %v, want [0]", exits)
	}
}
