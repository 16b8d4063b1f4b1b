package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/reconcile"
)

// registryServices: private pulls image from the test registry, public runs
// a local image; both behind healthz.
func registryServices(image, public, publicMode string) string {
	return services(
		svc{Name: "private", Image: image, Port: testAppPort, Readiness: healthz, Deploy: deploy{TimeoutSecs: passingRolloutSecs}},
		svc{Name: "public", Image: public, Port: testAppPort, Readiness: healthz, Env: map[string]string{"MODE": publicMode},
			Deploy: deploy{TimeoutSecs: passingRolloutSecs}})
}

// waitService waits until project/name of d's status meets ok.
func waitService(t *testing.T, d *daemon, project, name string, ok func(reconcile.ServiceStatus) bool) reconcile.ServiceStatus {
	t.Helper()
	var s reconcile.ServiceStatus
	waitFor(t, 90*time.Second, func() (bool, string) {
		s = serviceOf(d.status(), project, name)
		return ok(s), fmt.Sprintf("%s/%s: %+v", project, name, s)
	})
	return s
}

func syncedHealthy(s reconcile.ServiceStatus) bool {
	return s.Sync == reconcile.SyncSynced && s.Health == reconcile.HealthHealthy
}

// TestRegistryDockerConfig: an image of a registry with basic auth deploys
// with the credentials `docker login` wrote to the Docker config of the user
// serve runs as, and with nothing else. Before that login the service is
// Failed naming the registry and the fix while another service deploys; the
// refusal is not pinned, so the sync after the login deploys it. A :latest
// pushed again unchanged rolls nothing; pushed with new content it rolls.
func TestRegistryDockerConfig(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("regcfg")
	reg := startRegistry(t)
	v1, v2 := ownTag(t, env, imageV1), ownTag(t, env, imageV2)
	latest := reg.ref("orca/app:latest")
	digestV1 := reg.push(t, v1, "orca/app:latest")

	repo, srv := newServedRepo(t)
	repo.WriteFile("cluster.toml", "[reconcile]\ninterval_secs = 3600\n")
	repo.WriteFile("services/"+p+"/service.toml", registryServices(latest, v1, "one"))
	repo.Commit("a private image")
	repo.Push()
	serveConfig := t.TempDir() // the Docker config of serve's user: no login yet
	d := startServeEnv(t, env, srv.URL("infra.git"), []string{"DOCKER_CONFIG=" + serveConfig})
	d.waitIdle(t)

	private := waitService(t, d, p, "private", func(s reconcile.ServiceStatus) bool { return s.Sync == reconcile.SyncFailed })
	for _, want := range []string{"unauthorized at " + reg.host, "[[registry]]", "docker login " + reg.host} {
		if !strings.Contains(private.Reason, want) {
			t.Errorf("private's reason %q does not say %q", private.Reason, want)
		}
	}
	waitService(t, d, p, "public", syncedHealthy)
	if cs := env.mustContainers(t, p, "private"); len(cs) != 0 {
		t.Errorf("private has %d containers without its image", len(cs))
	}

	reg.login(t, serveConfig, reg.pass) // the fix is on the host, not in git
	d.syncAndWait(t)
	private = waitService(t, d, p, "private", syncedHealthy)
	if private.Digest != digestV1 {
		t.Errorf("status digest of private = %q, want the pushed %s", private.Digest, digestV1)
	}
	if got := env.envOf(t, p, "private", "VERSION"); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("private's VERSION = %q, want [v1]", got)
	}

	t.Run("latest pushed again unchanged rolls nothing", func(t *testing.T) {
		before := idsOf(env.mustContainers(t, p, ""))
		logged := len(d.logs.String())
		reg.pushKeep(t, v1, "orca/app:latest")
		d.syncAndWait(t)
		if after := idsOf(env.mustContainers(t, p, "")); !slices.Equal(before, after) {
			t.Errorf("an unchanged tag rolled containers: %v -> %v", before, after)
		}
		if log := d.logs.String()[logged:]; !strings.Contains(log, "Image is up to date for "+latest) {
			t.Errorf("the sync did not pull %s (or downloaded it again); serve logged:\n%s", latest, log)
		}
		waitService(t, d, p, "private", syncedHealthy)
	})

	t.Run("latest pushed with new content rolls", func(t *testing.T) {
		before := idsOf(env.mustContainers(t, p, "private"))
		digestV2 := reg.push(t, v2, "orca/app:latest")
		d.syncAndWait(t)
		env.waitFor(t, 60*time.Second, func() (bool, string) {
			got := env.envOf(t, p, "private", "VERSION")
			return slices.Equal(got, []string{"v2"}), fmt.Sprintf("private's VERSION = %q", got)
		})
		if after := idsOf(env.mustContainers(t, p, "private")); slices.Equal(before, after) {
			t.Errorf("private kept its containers %v", after)
		}
		s := waitService(t, d, p, "private", syncedHealthy)
		if s.Digest != digestV2 {
			t.Errorf("status digest of private = %q, want the new %s", s.Digest, digestV2)
		}
	})
}

// TestRegistryClusterSecret: an image of a registry with basic auth deploys
// with the credentials of a [[registry]] entry whose password comes from the
// cluster's SOPS file, and with nothing else (serve's Docker config is
// empty). A wrong password fails that service only, naming the registry;
// its old container keeps running and another service of the commit rolls.
// The passwords appear nowhere.
func TestRegistryClusterSecret(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("regsops")
	reg := startRegistry(t)
	v1, v2 := ownTag(t, env, imageV1), ownTag(t, env, imageV2)
	reg.push(t, v1, "orca/app:v1")
	wrong := canary(t, "wrong-registry-password")
	id, keyFile := ageKey(t)

	repo, srv := newServedRepo(t)
	repo.WriteFile(".sops.yaml", "creation_rules:\n  - path_regex: secrets\\.sops\\.yaml$\n    age: "+id.Recipient().String()+"\n")
	sink := newNotifySink(t, http.StatusOK) // every kind: the notifications are searched too
	repo.WriteFile("cluster.toml", fmt.Sprintf("[reconcile]\ninterval_secs = 3600\n\n[[registry]]\nhost = %q\nusername = %q\npassword = \"${secrets.REGISTRY_PASSWORD}\"\n\n[[notify]]\ntype = \"webhook\"\nurl = %q\n", reg.host, reg.user, sink.URL))
	file := "services/" + p + "/service.toml"
	repo.WriteFile(file, registryServices(reg.ref("orca/app:v1"), v1, "one"))
	cli := newOrca(t, env, repo.Dir())
	setPassword := func(v string) {
		t.Helper()
		if r := cli.run("secrets", "set", "--dir", repo.Dir(), "--age-key-file", keyFile, "REGISTRY_PASSWORD", v); r.Code != 0 {
			t.Fatalf("secrets set:\n%s", r)
		}
	}
	setPassword(reg.pass)
	repo.Commit("a private image, credentials in git")
	repo.Push()
	d := startServeEnv(t, env, srv.URL("infra.git"), []string{"DOCKER_CONFIG=" + t.TempDir()}, "--age-key-file", keyFile)
	waitService(t, d, p, "private", syncedHealthy)
	waitService(t, d, p, "public", syncedHealthy)

	var outputs []string
	collect := func() {
		for _, path := range []string{"/api/v1/status", "/api/v1/plan", "/api/v1/history?limit=100", "/api/v1/drift"} {
			_, body := d.call(http.MethodGet, path)
			outputs = append(outputs, path+": "+string(body))
		}
	}
	collect()

	t.Run("a wrong password fails only that service", func(t *testing.T) {
		privateBefore := idsOf(env.mustContainers(t, p, "private"))
		publicBefore := idsOf(env.mustContainers(t, p, "public"))
		reg.push(t, v2, "orca/app:v2")
		setPassword(wrong)
		repo.WriteFile(file, registryServices(reg.ref("orca/app:v2"), v1, "two"))
		repo.Commit("v2 of the private image, and a wrong password")
		repo.Push()
		d.syncAndWait(t)
		s := waitService(t, d, p, "private", func(s reconcile.ServiceStatus) bool { return s.Sync == reconcile.SyncFailed })
		for _, want := range []string{"unauthorized at " + reg.host, "cluster.toml [[registry]]"} {
			if !strings.Contains(s.Reason, want) {
				t.Errorf("private's reason %q does not say %q", s.Reason, want)
			}
		}
		waitService(t, d, p, "public", syncedHealthy)
		if after := idsOf(env.mustContainers(t, p, "public")); slices.Equal(after, publicBefore) {
			t.Errorf("public kept its containers %v: the other service of the commit did not roll", after)
		}
		cs := env.mustContainers(t, p, "private")
		if !slices.Equal(idsOf(cs), privateBefore) || !allRunning(cs) {
			t.Errorf("private's old containers %v: want %v still running", idsOf(cs), privateBefore)
		}
		if got := env.envOf(t, p, "private", "VERSION"); !slices.Equal(got, []string{"v1"}) {
			t.Errorf("private's VERSION = %q, want the old v1 serving", got)
		}
		// Not pinned: the next sync pulls again, and fails the same way.
		d.syncAndWait(t)
		s = serviceOf(d.status(), p, "private")
		if s.Sync != reconcile.SyncFailed || strings.Contains(s.Reason, "held") {
			t.Errorf("private after another sync: %+v; want Failed by the pull again, not held", s)
		}
		collect()
		r := cli.run("plan", repo.Dir(), "--age-key-file", keyFile, "--node", env.Prefix)
		outputs = append(outputs, r.String())
	})

	t.Run("the passwords are nowhere", func(t *testing.T) {
		d.stop()
		sink.mu.Lock()
		notified := fmt.Sprint(sink.got)
		sink.mu.Unlock()
		outputs = append(outputs, "notifications: "+notified)
		searchLeaks(t, leakSearch{values: []string{reg.pass, wrong}, daemon: d, env: env, project: p,
			outputs: outputs, dirs: []string{d.dataDir, repo.Dir()}})
		if !strings.Contains(strings.Join(outputs, ""), reg.host) {
			t.Error("the outputs searched never name the registry: the search proves nothing")
		}
		if !strings.Contains(notified, "unauthorized at "+reg.host) {
			t.Errorf("no notification names the refused pull at %s: the search of notifications proves nothing; got %.500s", reg.host, notified)
		}
	})
}
