package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// TestDockerSmoke proves the harness end to end: network, labelled container,
// HTTP to its IP, and a cleanup that leaves nothing behind.
func TestDockerSmoke(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	project := env.project("smoke")
	netName := "orca-" + env.Prefix + "-smoke"
	if _, err := env.Docker.NetworkCreate(ctx, netName, client.NetworkCreateOptions{
		Driver: "bridge",
		Labels: map[string]string{"orca.managed": "true", "orca.project": project},
	}); err != nil {
		t.Fatal(err)
	}

	created, err := env.Docker.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:  project + "-web-0",
		Image: imageV1,
		Config: &container.Config{
			Env: []string{"GREETING=hello"},
			Labels: map[string]string{
				"orca.managed": "true",
				"orca.project": project,
				"orca.service": "web",
			},
		},
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(netName)},
		NetworkingConfig: &network.NetworkingConfig{
			EndpointsConfig: map[string]*network.EndpointSettings{netName: {Aliases: []string{"web"}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Docker.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}

	cs, err := env.containers(project, "web")
	if err != nil || len(cs) != 1 || cs[0].ID != created.ID {
		t.Fatalf("containers(%s, web) = %v, %v", project, cs, err)
	}
	if other, _ := env.containers(project, "db"); len(other) != 0 {
		t.Fatalf("containers(%s, db) = %v", project, other)
	}

	ip, err := env.containerIP(created.ID, netName)
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://%s:%d", ip, testAppPort)
	var body string
	env.waitFor(t, 20*time.Second, func() (bool, string) {
		code, b, err := env.httpGet(base + "/")
		body = b
		return err == nil && code == 200, fmt.Sprintf("GET %s/: %d %q %v", base, code, b, err)
	})
	if body != "v1" {
		t.Fatalf("body %q, want v1", body)
	}
	if _, v, _ := env.httpGet(base + "/env?name=GREETING"); v != "hello" {
		t.Fatalf("env GREETING = %q", v)
	}

	if err := env.Cleanup(); err != nil {
		t.Fatal(err)
	}
	left, err := env.leftovers()
	if err != nil || len(left) != 0 {
		t.Fatalf("after cleanup: %v %v", left, err)
	}
	if _, err := env.Docker.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{}); !isNotFound(err) {
		t.Fatalf("container still inspectable: %v", err)
	}
}

// TestHealthcheckImage checks the Docker HEALTHCHECK of imageHealthcheck
// reaches "healthy", and "unhealthy" with HEALTHZ_FAIL=1.
func TestHealthcheckImage(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	start := func(name string, envv ...string) string {
		res, err := env.Docker.ContainerCreate(ctx, client.ContainerCreateOptions{
			Name:  env.project("hc") + "-" + name,
			Image: imageHealthcheck,
			Config: &container.Config{Env: envv, Labels: map[string]string{
				"orca.managed": "true", "orca.project": env.project("hc"), "orca.service": name,
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.Docker.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
			t.Fatal(err)
		}
		return res.ID
	}
	good, bad := start("good"), start("bad", "HEALTHZ_FAIL=1")
	health := func(id string) string {
		res, err := env.Docker.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil || res.Container.State == nil || res.Container.State.Health == nil {
			return fmt.Sprintf("inspect: %v", err)
		}
		return string(res.Container.State.Health.Status)
	}
	env.waitFor(t, 30*time.Second, func() (bool, string) {
		g, b := health(good), health(bad)
		return g == "healthy" && b == "unhealthy", "good=" + g + " bad=" + b
	})
}

// TestAppImageInDocker checks what later tests rely on the test app for, in
// real containers: DNS between services on a network (from a scratch image),
// graceful SIGTERM as PID 1, EXIT_AFTER_MS, and volumes outliving containers.
func TestAppImageInDocker(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	project := env.project("app")
	netName := "orca-" + project

	web := env.startApp(t, appSpec{Project: project, Service: "web", Image: imageV2})
	vol := env.Prefix + "data"
	probe := env.startApp(t, appSpec{Project: project, Service: "probe", Binds: []string{vol + ":/data"}})
	crash := env.startApp(t, appSpec{Project: project, Service: "crash", Env: []string{"EXIT_AFTER_MS=300"}})
	webURL, probeURL := env.appURL(t, web, netName), env.appURL(t, probe, netName)

	if code, body, err := env.httpGet(probeURL + "/fetch?url=http://web:8080/"); err != nil || code != 200 || body != "v2" {
		t.Fatalf("probe -> web by DNS: %d %q %v", code, body, err)
	}
	if code, body, err := env.httpGet(webURL + "/"); err != nil || code != 200 || body != "v2" {
		t.Fatalf("web: %d %q %v", code, body, err)
	}

	if code := env.waitExit(t, crash, 30*time.Second); code != 3 {
		t.Fatalf("EXIT_AFTER_MS: exit code %d, want 3", code)
	}

	timeout := 10
	start := time.Now()
	if _, err := env.Docker.ContainerStop(ctx, web, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("docker stop took %v: SIGTERM not handled", took)
	}
	if code := env.waitExit(t, web, 10*time.Second); code != 0 {
		t.Fatalf("stopped web exited %d, want 0", code)
	}

	// A named volume keeps its data across containers.
	req, _ := http.NewRequest("POST", probeURL+"/file?path=/data/x/note.txt", strings.NewReader("kept"))
	resp, err := httpClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("write to volume: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := env.Docker.ContainerRemove(ctx, probe, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	probe2 := env.startApp(t, appSpec{Project: project, Service: "probe2", Binds: []string{vol + ":/data"}, Unmanaged: true})
	if code, body, _ := env.httpGet(env.appURL(t, probe2, netName) + "/file?path=/data/x/note.txt"); code != 200 || body != "kept" {
		t.Fatalf("read from volume in a new container: %d %q", code, body)
	}
}
