package e2e

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/internal/dockertest"
	"github.com/orca-sync/orca-sync/internal/gittest"
	"github.com/orca-sync/orca-sync/reconcile"
)

// testAppBinary is the static test app, compiled once, for app repositories
// that commit it.
var testAppBinary = sync.OnceValues(func() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ver, err := docker.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return nil, fmt.Errorf("docker version: %w", err)
	}
	arch := ver.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	return dockertest.Compile(ctx, dockertest.Program{Dir: "testapp", Binary: "app"}, arch)
})

// appDockerfile builds the committed test app, answering version.
func appDockerfile(version string) string {
	return "FROM scratch\nCOPY app /app\nENV VERSION=" + version + "\n" + appEntry
}

// builtWeb is service web built from repoURL's main branch.
func builtWeb(repoURL string) svc {
	s := webApp("", 1)
	s.Tables = fmt.Sprintf("[service.build]\nrepo = %q\n", repoURL)
	return s
}

// builds takes the count of build calls serve made to the engine since the
// last call.
func (d *daemon) builds() int { return d.docker.takeRequests()["POST /build"] }

// appPush is a GitHub push webhook for the app repository served at url.
func appPush(url string) []byte {
	return []byte(fmt.Sprintf(`{"ref":"refs/heads/main","repository":{"full_name":"app","clone_url":%q}}`, url))
}

// TestServeBuildsFromAppRepo drives [service.build] against the harness's
// smart-HTTP remote: the app repository commits the test app's static
// binary and a FROM scratch Dockerfile. serve builds and runs it; a sync
// without an app change builds nothing, also after a restart; a new app
// commit and its push webhook rebuild and roll; a broken Dockerfile fails
// only that service, with the builder's error in status, while the old
// containers keep serving and another service of the same commit rolls.
func TestServeBuildsFromAppRepo(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("build")
	bin, err := testAppBinary()
	if err != nil {
		t.Fatal(err)
	}
	infra, srv := newServedRepo(t)
	app := gittest.NewRepo(t)
	srv.AddRepo("app.git", app)
	appURL := srv.URL("app.git")
	// Trailing bytes unique to the test make the binary's layer new to the
	// engine's cache (an ELF binary runs with them), so the first build is
	// cold whatever earlier runs left.
	app.WriteExecutable("app", append(slices.Clip(bin), []byte(env.Prefix)...))
	app.WriteFile("Dockerfile", appDockerfile("b1"))
	c1 := app.CommitPush("app b1")

	file := "services/" + p + "/service.toml"
	plain := svc{Name: "plain", Image: imageV1, Port: 8080, Readiness: healthz, Deploy: deploy{TimeoutSecs: passingRolloutSecs}}
	infra.WriteFile("cluster.toml", clusterWithWebhook)
	infra.WriteFile(file, services(builtWeb(appURL), plain))
	infra.CommitPush("web built from app")
	infraURL := srv.URL("infra.git")

	d := startServe(t, env, infraURL)
	env.waitVersions(t, p, 3*time.Minute, "b1")
	tag := "orca-build/" + p + "-web:"
	checkImage := func(commit string) {
		t.Helper()
		for _, c := range env.mustContainers(t, p, "web") {
			if got := env.inspect(t, c.ID).Config.Image; got != tag+commit[:12] {
				t.Fatalf("web runs %s, want %s", got, tag+commit[:12])
			}
		}
	}
	checkImage(c1)
	d.waitIdle(t)
	firstLogs := "" // serve's log before the restart
	if n := d.builds(); n != 1 {
		t.Fatalf("first deploy made %d builds, want 1", n)
	}

	t.Run("a sync without an app change builds nothing", func(t *testing.T) {
		before := containerIDs(t, env, p)
		d.syncAndWait(t)
		firstLogs = d.logs.String()
		d.stop()
		restarted := time.Now()
		d.start()
		d.waitSyncSince(t, restarted)
		if n := d.builds(); n != 0 {
			t.Fatalf("a sync and a restart without an app change made %d builds", n)
		}
		if after := containerIDs(t, env, p); !slices.Equal(before, after) {
			t.Fatalf("containers changed: %v -> %v", shortIDs(before), shortIDs(after))
		}
	})

	t.Run("a new app commit and its push webhook rebuild and roll", func(t *testing.T) {
		app.WriteFile("Dockerfile", appDockerfile("b2"))
		c2 := app.CommitPush("app b2")
		if code := d.webhook(appPush(appURL), hookToken, "app-push-1"); code != http.StatusAccepted {
			t.Fatalf("app push webhook: %d", code)
		}
		env.waitVersions(t, p, 2*time.Minute, "b2")
		checkImage(c2)
		d.waitIdle(t)
		if n := d.builds(); n != 1 {
			t.Fatalf("the new commit made %d builds, want 1", n)
		}
		if s := serviceOf(d.status(), p, "web"); s.Image != tag+c2[:12] {
			t.Errorf("status image = %q", s.Image)
		}
	})

	t.Run("a broken Dockerfile fails only that service", func(t *testing.T) {
		app.WriteFile("Dockerfile", "FROM scratch\nCOPY nothing-here /x\n"+appEntry)
		app.CommitPush("app broken")
		plain.Image = imageV2
		infra.WriteFile(file, services(builtWeb(appURL), plain))
		infra.CommitPush("plain v2")
		d.syncAndWait(t)
		var st reconcile.ServiceStatus
		env.waitFor(t, 30*time.Second, func() (bool, string) {
			st = serviceOf(d.status(), p, "web")
			return st.Sync == reconcile.SyncFailed, fmt.Sprintf("web status %+v", st)
		})
		if !strings.Contains(st.Reason, "COPY failed") || !strings.Contains(st.Reason, appURL) {
			t.Errorf("status reason %q: want the builder's error and the repository", st.Reason)
		}
		if strings.Contains(d.logs.String(), gitPass) {
			t.Error("the git password is in serve's log")
		}
		env.waitVersions(t, p, 10*time.Second, "b2") // the old container serves on
		env.waitFor(t, time.Minute, func() (bool, string) {
			got := env.versions(p, "plain")
			return slices.Equal(got, []string{"v2"}), fmt.Sprintf("plain answers %q", got)
		})
		d.builds()
		d.syncAndWait(t)
		if n := d.builds(); n != 0 {
			t.Errorf("a sync of the same broken commit built %d times; it is held until git changes", n)
		}
		if st := serviceOf(d.status(), p, "web"); st.Sync != reconcile.SyncFailed {
			t.Errorf("web after another sync: %+v", st)
		}
	})

	t.Run("a fixed commit builds and rolls", func(t *testing.T) {
		app.WriteFile("Dockerfile", appDockerfile("b3"))
		c3 := app.CommitPush("app fixed")
		if code := d.webhook(appPush(appURL), hookToken, "app-push-2"); code != http.StatusAccepted {
			t.Fatalf("app push webhook: %d", code)
		}
		env.waitVersions(t, p, 2*time.Minute, "b3")
		checkImage(c3)
		env.waitFor(t, 30*time.Second, func() (bool, string) {
			s := serviceOf(d.status(), p, "web")
			return s.Sync == reconcile.SyncSynced, fmt.Sprintf("web status %+v", s)
		})
	})
	logBuildFigures(t, firstLogs+d.logs.String())
}

var builtLine = regexp.MustCompile(`msg="build: image built".* duration=(\S+)`)

// logBuildFigures prints the duration of each build serve logged: the first
// is cold (the binary's layer is new), the later ones reuse the cached COPY.
func logBuildFigures(t *testing.T, logs string) {
	for i, m := range builtLine.FindAllStringSubmatch(logs, -1) {
		kind := "cached COPY layer"
		if i == 0 {
			kind = "cold"
		}
		t.Logf("FIGURE build %d of the test app (%s): %s", i+1, kind, m[1])
	}
}

// TestApplyBuildsFromAppRepo drives the one-shot commands: apply builds and
// runs a service with build; plan shows a new app commit as
// build: <repo>@<old12> -> <new12>; apply then rebuilds and rolls it.
func TestApplyBuildsFromAppRepo(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("cbuild")
	bin, err := testAppBinary()
	if err != nil {
		t.Fatal(err)
	}
	app := gittest.NewRepo(t)
	app.WriteExecutable("app", bin)
	app.WriteFile("Dockerfile", appDockerfile("c1"))
	c1 := app.CommitPush("app c1")
	dir := t.TempDir()
	writeProject(t, dir, p, builtWeb(app.FileURL()).String())
	o := newOrca(t, env, dir)
	o.mustApply()
	env.waitVersions(t, p, time.Minute, "c1")

	app.WriteFile("Dockerfile", appDockerfile("c2"))
	c2 := app.CommitPush("app c2")
	plan := o.plan()
	if want := "build: " + app.FileURL() + "@" + c1[:12] + " -> " + c2[:12]; plan.Code != 0 || !strings.Contains(plan.Stdout, want) {
		t.Fatalf("plan does not show %q:\n%s", want, plan)
	}
	o.mustApply()
	env.waitVersions(t, p, time.Minute, "c2")
	for _, c := range env.mustContainers(t, p, "web") {
		if got, want := env.inspect(t, c.ID).Config.Image, "orca-build/"+p+"-web:"+c2[:12]; got != want {
			t.Fatalf("web runs %s, want %s", got, want)
		}
	}
}
