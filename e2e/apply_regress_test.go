package e2e

// Regression tests for bugs found by the e2e suite (each test's comment says
// what went wrong and where it was fixed).

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// TestApplyRelativeDir runs `orca-sync apply .` in the checkout, as an
// operator would: a bind mount from the checkout must still resolve.
//
// Was a bug (apply/container.go, rollout.containerConfig): the host path of a
// "./services/..." mount is filepath.Join(root, source) with root the DIR
// argument as typed, so a relative DIR gives a relative bind source, which
// the engine refuses: "invalid mount path: 'services/<p>/config/motd.txt'
// mount path must be absolute". config.Load had made it absolute
// (Mount.HostPath), but diff.NewSpec drops HostPath.
func TestApplyRelativeDir(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	p := env.project("rel")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"cluster.toml":                       clusterToml,
		"services/" + p + "/config/motd.txt": "relative\n",
	})
	writeProject(t, dir, p, svc{Name: "web", Image: imageV1, Deploy: deploy{MinReadySecs: 1, TimeoutSecs: 30},
		Tables: "[[service.mounts]]\nsource = \"./services/" + p + "/config/motd.txt\"\ntarget = \"/etc/motd.txt\"\nread_only = true\n"}.String())
	orca := newOrca(t, env, dir)
	if r := orca.runIn(dir, "apply", "."); r.Code != 0 {
		t.Fatalf("orca-sync apply . in the checkout failed:\n%s", r)
	}
	web := env.mustContainers(t, p, "web")
	if len(web) != 1 {
		t.Fatalf("web: %s", describe(web))
	}
	if got := env.get(t, env.appURL(t, web[0].ID, "orca-"+p)+"/file?path=/etc/motd.txt"); got != "relative\n" {
		t.Errorf("/etc/motd.txt = %q", got)
	}
	if r := orca.runIn(dir, "plan", ".", "--exit-code"); r.Code != 0 {
		t.Errorf("plan . after apply .: want exit 0\n%s", r)
	}
}

// TestApplyUndoKeepsCapacity fails a rolling update at its second container:
// the first new container is ready and one old container already retired.
// The undo must keep 3 ready containers while it puts the old set back.
//
// Was a bug (apply/rollout.go, rollout.undo): the undo first removes the new
// containers (ready and serving), then restarts the retired old ones and
// waits for them to be ready, so for the old container's start and
// readiness time only 2 of 3 replicas serve.
func TestApplyUndoKeepsCapacity(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	p := env.project("undocap")
	netName := "orca-" + p
	dir := t.TempDir()
	web := func(image string) string {
		// initial_delay_secs leaves the test the time to make the second
		// new container fail its probe. timeout_secs leaves a loaded engine
		// (the whole suite in parallel takes seconds to start three
		// containers) the time to bring up the first, healthy set.
		s := webApp(image, 3)
		s.Readiness.InitialDelaySecs = 2
		s.Deploy = deploy{Strategy: "rolling", TimeoutSecs: 15}
		return s.String()
	}
	writeFiles(t, dir, map[string]string{"cluster.toml": clusterToml})
	writeProject(t, dir, p, web(imageV1))
	orca := newOrca(t, env, dir)
	orca.mustApply()

	writeProject(t, dir, p, web(imageV2))
	mon := env.watchReady(p, "web")
	done := make(chan cliResult, 1)
	go func() { done <- orca.apply() }()
	// Make the second v2 container (replica 2) fail /healthz for good.
	var r cliResult
	failed := ""
	for r.args == nil {
		select {
		case r = <-done:
			continue
		case <-time.After(50 * time.Millisecond):
		}
		if failed != "" {
			continue
		}
		cs, err := env.containers(p, "web")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.Image != imageV2 || !strings.HasSuffix(nameOf(c), "-2") {
				continue
			}
			ip, err := env.containerIP(c.ID, netName)
			if err != nil {
				continue
			}
			resp, err := httpClient.Post("http://"+ip+":8080/healthz/fail", "text/plain", nil)
			if err != nil {
				continue // not listening yet
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				failed = nameOf(c)
			}
		}
	}
	samples := mon.stop()
	if failed == "" {
		t.Fatalf("could not make the second new container fail:\n%s", r)
	}
	if r.Code == 0 || !strings.Contains(r.Stdout, "FAILED") {
		t.Fatalf("apply with a failing second container: want exit 1 and FAILED\n%s", r)
	}
	low := 0
	for _, s := range samples {
		if s.ready < 3 {
			if low++; low <= 5 {
				t.Errorf("fewer than 3 ready containers during the rollout and its undo: %v", s)
			}
		}
	}
	if low > 0 {
		t.Logf("%d of %d samples below 3 ready; apply:\n%s", low, len(samples), r)
	}
	now := env.mustContainers(t, p, "web")
	if len(now) != 3 || !allRunning(now) {
		t.Fatalf("after the undo: %s, want 3 running v1 containers", describe(now))
	}
	for _, c := range now {
		if c.Image != imageV1 {
			t.Errorf("after the undo: %s runs %s, want %s", nameOf(c), c.Image, imageV1)
		}
	}
}

// TestApplyNetworkCreatedOnce applies a fresh project of 8 services, all in
// the first depends_on wave: the project network must be created once, and
// every service must start.
//
// Was a bug (apply/rollout.go prepare, docker/docker.go EnsureNetwork): every
// service of the wave calls EnsureNetwork at the same moment; on Docker
// 20.10 (API < 1.44) each of them creates a network of the same name, and
// the duplicates are removed only afterwards. Meanwhile a container created
// or started on that name fails with "network orca-<project> is ambiguous
// (2 matches found on name)", and with many services the engine runs out of
// address pools ("could not find an available, non-overlapping IPv4 address
// pool"): 10 projects of 10 services fail to apply on a fresh host.
func TestApplyNetworkCreatedOnce(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	p := env.project("net")
	dir := t.TempDir()
	var eight []svc
	for i := range 8 {
		eight = append(eight, svc{Name: fmt.Sprintf("svc%d", i), Image: imageV1,
			Deploy: deploy{TimeoutSecs: 30, Keys: []string{"min_ready_secs = 0"}}})
	}
	writeFiles(t, dir, map[string]string{"cluster.toml": clusterToml})
	writeProject(t, dir, p, services(eight...))
	orca := newOrca(t, env, dir)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs := env.Docker.Events(ctx, client.EventsListOptions{
		Filters: make(client.Filters).Add("type", "network").Add("event", "create"),
	})
	r := orca.apply()
	if r.Code != 0 {
		t.Errorf("fresh apply of 8 services in one project failed:\n%s", r)
	}
	// Count the creates of orca-<p> seen until a quiet moment after apply.
	creates := 0
	for quiet := false; !quiet; {
		select {
		case m := <-evs.Messages:
			if m.Actor.Attributes["name"] == "orca-"+p {
				creates++
			}
		case err := <-evs.Err:
			t.Fatalf("event stream: %v", err)
		case <-time.After(500 * time.Millisecond):
			quiet = true
		}
	}
	if creates != 1 {
		t.Errorf("network orca-%s was created %d times, want once", p, creates)
	}
	if cs := env.mustContainers(t, p, ""); len(cs) != 8 || !allRunning(cs) {
		t.Errorf("after apply: %s, want 8 running containers", describe(cs))
	}
}
