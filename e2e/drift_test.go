package e2e

// Drift reports and self-healing against the real engine: out-of-band
// changes are reported field by field and repaired (drift = "correct") or
// left alone (drift = "warn"); crashes and failing liveness probes are
// repaired within seconds, flapping services are marked Degraded.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/internal/gittest"
	"github.com/orca-sync/orca-sync/reconcile"
)

// driftWeb is service "web" of imageV1 with MODE=prod, the service the
// drift and self-healing tests change behind orca-sync's back; keys are
// more top-level lines.
func driftWeb(replicas int, keys ...string) svc {
	s := webApp(imageV1, replicas)
	s.Keys = keys
	s.Env = map[string]string{"MODE": "prod"}
	s.Deploy.TimeoutSecs = 30
	return s
}

func clusterInterval(secs int) string {
	return fmt.Sprintf("[reconcile]\ninterval_secs = %d\n", secs)
}

// serveRepo commits files to a new repo behind a smart-HTTP remote and
// starts serve on it; it returns the daemon, the repo and its URL.
func serveRepo(t *testing.T, env *Env, files map[string]string, via func(string) string) (*daemon, *gittest.Repo) {
	t.Helper()
	repo, srv := newServedRepo(t)
	for name, content := range files {
		repo.WriteFile(name, content)
	}
	repo.Commit("first")
	repo.Push()
	return startServeVia(t, env, srv.URL("infra.git"), via), repo
}

func (d *daemon) drift() reconcile.DriftReport {
	d.t.Helper()
	code, body := d.call(http.MethodGet, "/api/v1/drift")
	var rep reconcile.DriftReport
	if code != 200 || json.Unmarshal(body, &rep) != nil {
		d.t.Fatalf("drift: %d %s", code, body)
	}
	return rep
}

// hasFinding reports whether rep has a finding of kind on container about field.
func hasFinding(rep reconcile.DriftReport, kind diff.Kind, ctr, field string) (diff.Finding, bool) {
	for _, f := range rep.Findings {
		if f.Kind == kind && f.Container == ctr && f.Field == field {
			return f, true
		}
	}
	return diff.Finding{}, false
}

// repaired returns the history's repaired lines, oldest first.
func (d *daemon) repaired() []string {
	var out []string
	recs := d.history()
	for i := len(recs) - 1; i >= 0; i-- {
		for _, s := range recs[i].Services {
			out = append(out, s.Repaired...)
		}
	}
	return out
}

func (d *daemon) waitRepaired(t *testing.T, prefix string) {
	t.Helper()
	d.env.waitFor(t, 30*time.Second, func() (bool, string) {
		got := d.repaired()
		return slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, prefix) }),
			fmt.Sprintf("history repaired %q, want one starting %q", got, prefix)
	})
}

// waitSynced waits until status says project/web is Synced and Healthy with
// n ready replicas (so no rollout is under way), and returns its containers.
func (d *daemon) waitSynced(t *testing.T, project string, n int) []container.Summary {
	t.Helper()
	var cs []container.Summary
	d.env.waitFor(t, 60*time.Second, func() (bool, string) {
		st := d.status()
		s := serviceOf(st, project, "web")
		if st.Syncing {
			return false, "a sync is under way"
		}
		if s.Sync != reconcile.SyncSynced || s.Health != reconcile.HealthHealthy || s.Ready != n {
			return false, fmt.Sprintf("status %+v", s)
		}
		var err error
		cs, err = d.env.containers(project, "web")
		return err == nil && len(cs) == n && allRunning(cs), fmt.Sprintf("web: %s, want %d running", describe(cs), n)
	})
	return cs
}

// waitQuiet waits until no sync has run for a second, so a hand-made change
// of several steps is not caught half-way by a sync that events of an
// earlier step signalled (that sync would rightly repair the half-made
// state, and the test would not see the change it makes).
func (d *daemon) waitQuiet(t *testing.T) {
	t.Helper()
	d.env.waitFor(t, 30*time.Second, func() (bool, string) {
		st := d.status()
		return !st.Syncing && st.LastSync != nil && time.Since(st.LastSync.Finished) > time.Second, "syncs still running"
	})
}

// handCopy recreates container id by hand, as an operator would with docker
// run: same name, labels, image and network, one env value changed. The
// original is renamed aside first and removed last, so no sync in between
// sees the replica missing.
func (e *Env) handCopy(t *testing.T, project, id, envKV string) string {
	t.Helper()
	ctx, cancel := e.ctx()
	defer cancel()
	ci := e.inspect(t, id)
	name := strings.TrimPrefix(ci.Name, "/")
	if _, err := e.Docker.ContainerRename(ctx, id, client.ContainerRenameOptions{NewName: name + "-aside"}); err != nil {
		t.Fatal(err)
	}
	key, _, _ := strings.Cut(envKV, "=")
	var envs []string
	for _, kv := range ci.Config.Env {
		if !strings.HasPrefix(kv, key+"=") {
			envs = append(envs, kv)
		}
	}
	cfg := *ci.Config
	cfg.Env = append(envs, envKV)
	net := "orca-" + project
	res, err := e.Docker.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name, Config: &cfg,
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(net), RestartPolicy: ci.HostConfig.RestartPolicy},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			net: {Aliases: []string{"web"}},
		}},
	})
	if err != nil {
		t.Fatalf("create the hand-made copy: %v", err)
	}
	if _, err := e.Docker.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Docker.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	return res.ID
}

func envOf(t *testing.T, e *Env, id, key string) string {
	for _, kv := range e.inspect(t, id).Config.Env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// TestDriftCorrectRepairs: with drift = "correct" (the default), a docker
// stop, a docker rm -f, a stray managed container and a container recreated
// by hand with another env value are each repaired at the next sync, and
// the history records each repair with its kind and field.
func TestDriftCorrectRepairs(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("dfix")
	d, _ := serveRepo(t, env, map[string]string{
		"cluster.toml":                    clusterInterval(3600),
		"services/" + p + "/service.toml": driftWeb(2).String(),
	}, nil)
	web := d.waitSynced(t, p, 2)
	sync := func() {
		if code, body := d.call(http.MethodPost, "/api/v1/sync"); code != http.StatusAccepted {
			t.Fatalf("sync: %d %s", code, body)
		}
	}

	t.Run("docker stop", func(t *testing.T) {
		ctx, cancel := env.ctx()
		defer cancel()
		grace := 1
		if _, err := env.Docker.ContainerStop(ctx, web[0].ID, client.ContainerStopOptions{Timeout: &grace}); err != nil {
			t.Fatal(err)
		}
		d.waitRepaired(t, "stopped "+nameOf(web[0])+": state: running -> exited")
		web = d.waitSynced(t, p, 2)
	})
	t.Run("docker rm -f", func(t *testing.T) {
		ctx, cancel := env.ctx()
		defer cancel()
		name := nameOf(web[1])
		if _, err := env.Docker.ContainerRemove(ctx, web[1].ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		d.waitRepaired(t, "removed "+name+": state: running -> missing")
		web = d.waitSynced(t, p, 2)
		if !slices.Contains(names(web), name) {
			t.Errorf("after the repair: %s, want %s back", describe(web), name)
		}
	})
	t.Run("stray managed container", func(t *testing.T) {
		stray := env.startApp(t, appSpec{Project: p, Service: "ghost", Name: p + "-ghost-1",
			Labels: map[string]string{"orca.node": env.Prefix}})
		sync()
		d.waitRepaired(t, "extra "+p+"-ghost-1: service: + not in git")
		env.waitFor(t, 30*time.Second, func() (bool, string) {
			cs, _ := env.containers(p, "ghost")
			return len(cs) == 0, fmt.Sprintf("the stray %s is still there: %s", stray[:12], describe(cs))
		})
	})
	t.Run("recreated by hand with another env value", func(t *testing.T) {
		name := nameOf(web[0])
		d.waitQuiet(t)
		copyID := env.handCopy(t, p, web[0].ID, "MODE=debug")
		sync()
		d.waitRepaired(t, `modified `+name+`: env.MODE: "prod" -> "debug"`)
		env.waitFor(t, 30*time.Second, func() (bool, string) {
			cs, _ := env.containers(p, "web")
			for _, c := range cs {
				if nameOf(c) == name && c.ID != copyID && c.State == "running" {
					return envOf(t, env, c.ID, "MODE") == "prod", "MODE of the replacement"
				}
			}
			return false, fmt.Sprintf("web: %s, want %s replaced", describe(cs), name)
		})
		d.waitSynced(t, p, 2)
	})
	if rep := d.drift(); len(rep.Findings) != 0 {
		t.Errorf("after the repairs the drift report still has %+v", rep.Findings)
	}
}

func names(cs []container.Summary) []string {
	var out []string
	for _, c := range cs {
		out = append(out, nameOf(c))
	}
	return out
}

// TestDriftWarnReports: with drift = "warn" the same changes are reported,
// each with its kind and field and a stable first-seen time, status says
// OutOfSync, and nothing is touched over several ticks — until a commit
// changes the service, which then converges.
func TestDriftWarnReports(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("dwarn")
	file := "services/" + p + "/service.toml"
	d, repo := serveRepo(t, env, map[string]string{
		"cluster.toml": clusterInterval(1),
		file:           driftWeb(3, `drift = "warn"`).String(),
	}, nil)
	web := d.waitSynced(t, p, 3)
	ctx, cancel := env.ctx()
	defer cancel()
	grace := 1
	if _, err := env.Docker.ContainerStop(ctx, web[0].ID, client.ContainerStopOptions{Timeout: &grace}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Docker.ContainerRemove(ctx, web[1].ID, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	copyID := env.handCopy(t, p, web[2].ID, "MODE=debug")
	strayID := env.startApp(t, appSpec{Project: p, Service: "web", Name: p + "-web-stray",
		Labels: map[string]string{"orca.node": env.Prefix}})
	want := []struct {
		kind      diff.Kind
		ctr       string
		field     string
		from, to  string
		toPrefix  bool
		checkFrom bool
	}{
		{diff.KindStopped, nameOf(web[0]), "state", "running", "exited (exit code", true, true},
		{diff.KindRemoved, nameOf(web[1]), "state", "running", "missing", false, true},
		{diff.KindModified, nameOf(web[2]), "env.MODE", `"prod"`, `"debug"`, false, true},
		{diff.KindExtra, p + "-web-stray", "replicas", "", "3 wanted", false, false},
	}
	var first reconcile.DriftReport
	env.waitFor(t, 15*time.Second, func() (bool, string) {
		first = d.drift()
		for _, w := range want {
			f, ok := hasFinding(first, w.kind, w.ctr, w.field)
			if !ok || (w.checkFrom && f.From != w.from) || (w.toPrefix && !strings.HasPrefix(f.To, w.to)) || (!w.toPrefix && f.To != w.to) {
				return false, fmt.Sprintf("want %s %s %s %s -> %s in %+v", w.kind, w.ctr, w.field, w.from, w.to, first.Findings)
			}
		}
		return true, ""
	})
	before := describe(env.mustContainers(t, p, "web"))
	for range 4 { // four ticks of interval_secs = 1, each a sync that could have repaired
		d.waitSyncSince(t, d.status().LastSync.Started)
	}
	if after := describe(env.mustContainers(t, p, "web")); after != before {
		t.Fatalf("drift = \"warn\" changed containers:\n before %s\n after  %s", before, after)
	}
	later := d.drift()
	f1, _ := hasFinding(first, diff.KindModified, nameOf(web[2]), "env.MODE")
	f2, ok := hasFinding(later, diff.KindModified, nameOf(web[2]), "env.MODE")
	if !ok || f1.FirstSeen.IsZero() || !f2.FirstSeen.Equal(f1.FirstSeen) {
		t.Errorf("first seen: %v then %v, want one stable time", f1.FirstSeen, f2.FirstSeen)
	}
	if s := serviceOf(d.status(), p, "web"); s.Sync != reconcile.SyncOutOfSync || !strings.Contains(s.Reason, "warn") || s.Drift < 4 {
		t.Errorf("status: %+v, want OutOfSync with the drift", s)
	}
	if r := newOrcaClient(t, d, "drift"); !strings.Contains(r, "modified") || !strings.Contains(r, "env.MODE") {
		t.Errorf("orca-sync drift:\n%s", r)
	}

	// A commit changes the service: git wins, and the drift goes.
	prod2 := driftWeb(3, `drift = "warn"`)
	prod2.Env["MODE"] = "prod2"
	repo.WriteFile(file, prod2.String())
	repo.Commit("MODE prod2")
	repo.Push()
	d.call(http.MethodPost, "/api/v1/sync")
	env.waitFor(t, 60*time.Second, func() (bool, string) {
		cs, _ := env.containers(p, "web")
		if len(cs) != 3 || !allRunning(cs) {
			return false, describe(cs)
		}
		for _, c := range cs {
			if c.ID == copyID || c.ID == strayID || envOf(t, env, c.ID, "MODE") != "prod2" {
				return false, describe(cs)
			}
		}
		return len(d.drift().Findings) == 0, fmt.Sprintf("drift %+v", d.drift().Findings)
	})
}

// newOrcaClient runs `orca-sync <cmd>` against d and returns its stdout.
func newOrcaClient(t *testing.T, d *daemon, args ...string) string {
	t.Helper()
	o := newOrca(t, d.env, t.TempDir())
	r := o.run(append(args, "--server", "http://"+d.api, "--data-dir", d.dataDir)...)
	if r.Code != 0 {
		t.Fatalf("orca-sync %v: %s", args, r)
	}
	return r.Stdout
}

// TestDriftSecretEnv: a container recreated by hand with another value of a
// secret-backed env key is reported as that key changed, and neither value
// appears in the report, the CLI's output or serve's log.
func TestDriftSecretEnv(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("dsec")
	id, keyFile := ageKey(t)
	value, other := canary(t, "drift-db"), canary(t, "drift-hand")
	repo, srv := newServedRepo(t)
	repo.WriteFile(".sops.yaml", "creation_rules:\n  - path_regex: secrets\\.sops\\.yaml$\n    age: "+id.Recipient().String()+"\n")
	repo.WriteFile("cluster.toml", clusterInterval(3600))
	withSecret := driftWeb(1, `drift = "warn"`)
	withSecret.Env["DB_PASSWORD"] = "${secrets.DB_PASSWORD}"
	repo.WriteFile("services/"+p+"/service.toml", withSecret.String())
	cli := newOrca(t, env, repo.Dir())
	if r := cli.run("secrets", "set", "--dir", repo.Dir(), "--age-key-file", keyFile, "--project", p, "DB_PASSWORD", value); r.Code != 0 {
		t.Fatalf("secrets set:\n%s", r)
	}
	repo.Commit("secret env")
	repo.Push()
	d := startServeEnv(t, env, srv.URL("infra.git"), nil, "--age-key-file", keyFile)
	web := d.waitSynced(t, p, 1)
	if got := envOf(t, env, web[0].ID, "DB_PASSWORD"); got != value {
		t.Fatalf("DB_PASSWORD in the container: %q", got)
	}
	if rep := d.drift(); len(rep.Findings) != 0 {
		t.Fatalf("drift before any change: %+v", rep.Findings)
	}
	d.waitQuiet(t)
	env.handCopy(t, p, web[0].ID, "DB_PASSWORD="+other)
	var f diff.Finding
	env.waitFor(t, 15*time.Second, func() (bool, string) {
		var ok bool
		f, ok = hasFinding(d.drift(), diff.KindModified, nameOf(web[0]), "env.DB_PASSWORD")
		return ok, "waiting for the changed secret env"
	})
	if !f.Secret || f.From != "" || f.To != "" {
		t.Errorf("finding %+v, want a valueless secret change", f)
	}
	_, body := d.call(http.MethodGet, "/api/v1/drift")
	text := newOrcaClient(t, d, "drift")
	if !strings.Contains(text, "changed (secret)") {
		t.Errorf("orca-sync drift:\n%s", text)
	}
	for what, s := range map[string]string{"API": string(body), "CLI": text, "serve log": d.logs.String()} {
		if strings.Contains(s, value) || strings.Contains(s, other) {
			t.Errorf("a secret value leaked into the %s", what)
		}
	}
}
