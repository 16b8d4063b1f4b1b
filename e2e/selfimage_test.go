package e2e

// The repository's Dockerfile: orca-sync run as a container deploys the
// bundled example and serves it through its proxy.

import (
	"context"
	"crypto/x509"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/internal/dockertest"
)

// selfImage is the tag the test builds the Dockerfile as.
const selfImage = "orca-test/orca-sync:e2e"

// buildSelfImage builds the repository's Dockerfile as its comment says: the
// static binary built outside Docker and the host's CA bundle beside it.
func buildSelfImage(t *testing.T) {
	t.Helper()
	// A build of its own: the flags differ from orcaBinary's, so it shares
	// little of the build cache and may take minutes on a busy machine.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bin, err := dockertest.Compile(ctx, dockertest.Program{Dir: "../cmd/orca-sync", Binary: "orca-sync"}, runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Fatalf("the host's CA bundle (Debian's ca-certificates): %v", err)
	}
	dockerfile, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"Dockerfile": string(dockerfile), "orca-sync": string(bin), "ca-certificates.crt": string(ca)})
	if err := dockertest.BuildDir(ctx, docker, selfImage, dir); err != nil {
		t.Fatal(err)
	}
}

// exampleForTest is examples/infra with the test's project names and images:
// postgres and whoami become the test app (port 8080, /healthz, its own
// healthcheck command; it ignores other arguments, such as web's --name).
func exampleForTest(t *testing.T, prefix string) map[string]string {
	t.Helper()
	files := map[string]string{}
	root := "../examples/infra"
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		text := string(b)
		for _, project := range []string{"shop", "blog"} {
			rel = strings.Replace(rel, "services/"+project+"/", "services/"+prefix+project+"/", 1)
			text = strings.ReplaceAll(text, "./services/"+project+"/", "./services/"+prefix+project+"/")
		}
		text = strings.ReplaceAll(text, `"postgres:16-alpine"`, fmt.Sprintf("%q", imageV2))
		text = strings.ReplaceAll(text, `"traefik/whoami:v1.10"`, fmt.Sprintf("%q", imageV1))
		text = regexp.MustCompile(`(?m)^port = 80\b`).ReplaceAllString(text, fmt.Sprintf("port = %d", testAppPort))
		text = strings.ReplaceAll(text, `"/health"`, `"/healthz"`)
		text = strings.ReplaceAll(text, `["pg_isready", "-U", "shop"]`, `["/app", "healthcheck"]`)
		text = strings.ReplaceAll(text, "shop-db-data", prefix+"shop-db-data")
		files[rel] = text
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestContainerisedServeDeploysExample runs the image as the README says
// (Docker socket, data dir at the same path, the age key as a file) against
// the bundled example on a local smart-HTTP remote: it deploys the example,
// serves it through its proxy, and its own prune never touches it.
func TestContainerisedServeDeploysExample(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	buildSelfImage(t)
	repo, srv := newServedRepo(t)
	for f, c := range exampleForTest(t, env.Prefix) {
		repo.WriteFile(f, c)
	}
	repo.Commit("the bundled example")
	repo.Push()

	_, keyFile := ageKey(t)
	dataDir := t.TempDir()
	scoped := newScopedDocker(t, env.Prefix)
	sock := strings.TrimPrefix(scoped.host, "unix://")
	ps := newProxyPorts(t)
	apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Host networking: the remote, the API and the proxy are on the host's
	// loopback, as a test has them.
	created, err := env.Docker.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:  env.Prefix + "orca-sync",
		Image: selfImage,
		Config: &container.Config{
			Cmd: []string{"--repo", srv.URL("infra.git"), "--node", env.Prefix, "--listen", apiAddr,
				"--http-addr", ps.http, "--https-addr", ps.https},
			Env: []string{"ORCA_SYNC_DATA_DIR=" + dataDir, "ORCA_SYNC_AGE_KEY_FILE=" + keyFile,
				"ORCA_SYNC_GIT_USERNAME=" + gitUser, "ORCA_SYNC_GIT_PASSWORD=" + gitPass},
		},
		HostConfig: &container.HostConfig{
			NetworkMode: "host",
			Binds:       []string{sock + ":/var/run/docker.sock", dataDir + ":" + dataDir, keyFile + ":" + keyFile + ":ro"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Docker.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, env: env, dataDir: dataDir, api: apiAddr}
	env.waitFor(t, 60*time.Second, func() (bool, string) {
		code, _, err := env.httpGet("http://" + apiAddr + "/api/v1/health")
		return err == nil && code == 200, fmt.Sprintf("health: %d %v", code, err)
	})
	shop, blog := env.project("shop"), env.project("blog")
	ps.daemon = d
	// The example's cluster.toml asks for the internal CA: HTTP redirects,
	// HTTPS answers with a certificate of the CA the container wrote to the
	// shared data dir.
	var root *x509.CertPool
	env.waitFor(t, 2*time.Minute, func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(dataDir, "certs", "internal-ca.pem"))
		if err != nil {
			return false, err.Error()
		}
		root = x509.NewCertPool()
		return root.AppendCertsFromPEM(b), "root not PEM"
	})
	waitHTTPS(t, ps, "shop.example.test", root)
	waitHTTPS(t, ps, "blog.example.test", root)
	checkRedirect(t, ps, "shop.example.test")
	d.waitSynced(t, shop, 1)
	for svc, n := range map[string]int{"db": 1, "api": 2, "web": 1} {
		if cs := env.mustContainers(t, shop, svc); len(cs) != n || !allRunning(cs) {
			t.Errorf("%s/%s: %s", shop, svc, describe(cs))
		}
	}
	before := env.inspect(t, created.ID)

	// Prune: the blog project goes; orca-sync's own container stays.
	repo.Remove("services/" + blog + "/service.toml")
	repo.CommitPush("drop the blog")
	d.syncAndWait(t)
	env.waitFor(t, time.Minute, func() (bool, string) {
		cs, err := env.containers(blog, "blog")
		return err == nil && len(cs) == 0, fmt.Sprintf("blog containers: %s %v", describe(cs), err)
	})
	after := env.inspect(t, created.ID)
	if !after.State.Running || after.State.StartedAt != before.State.StartedAt || after.RestartCount != 0 {
		t.Fatalf("orca-sync's own container was touched: running %v, started %s (was %s), restarts %d",
			after.State.Running, after.State.StartedAt, before.State.StartedAt, after.RestartCount)
	}
	waitHTTPS(t, ps, "shop.example.test", root)
}
