package e2e

// A real registry for the tests of private images: Debian's docker-registry
// (the distribution registry) on loopback with htpasswd basic auth. Docker
// treats 127.0.0.0/8 as an insecure registry, so it speaks plain HTTP.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"golang.org/x/crypto/bcrypt"
)

// testRegistry is one running registry and its single user.
type testRegistry struct {
	host       string // 127.0.0.1:PORT, as image references name it
	user, pass string
	// pushConfig is a DOCKER_CONFIG logged in to it, for pushing.
	pushConfig string
	log        *lockedBuffer
}

// startRegistry runs docker-registry on a free loopback port until the test
// ends, and logs a pusher in. It fails the test when the registry cannot
// start (.ci/install-test-parts installs it).
func startRegistry(t *testing.T) *testRegistry {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatalf("the registry tests need Debian's docker-registry (run .ci/install-test-parts): %v", err)
	}
	dir := t.TempDir()
	r := &testRegistry{host: fmt.Sprintf("127.0.0.1:%d", freePort(t)), user: "deployer", pass: canary(t, "registry"),
		pushConfig: filepath.Join(dir, "pusher"), log: &lockedBuffer{}}
	hash, err := bcrypt.GenerateFromPassword([]byte(r.pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "htpasswd"), r.user+":"+string(hash)+"\n")
	writeFile(t, filepath.Join(dir, "config.yml"), fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
  secret: orca-e2e
auth:
  htpasswd:
    realm: orca-e2e
    path: %s
`, filepath.Join(dir, "data"), r.host, filepath.Join(dir, "htpasswd")))
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start docker-registry: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	waitFor(t, 20*time.Second, func() (bool, string) {
		select {
		case <-exited:
			t.Fatalf("docker-registry exited:\n%s", r.log)
		default:
		}
		res, err := http.Get("http://" + r.host + "/v2/")
		if err != nil {
			return false, fmt.Sprintf("registry at %s: %v", r.host, err)
		}
		res.Body.Close()
		return res.StatusCode == http.StatusUnauthorized, fmt.Sprintf("GET /v2/ without credentials: %d, want 401", res.StatusCode)
	})
	r.login(t, r.pushConfig, r.pass)
	return r
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// dockerCLI runs the docker client with DOCKER_CONFIG=config and stdin.
func dockerCLI(t *testing.T, config, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+config)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// login runs `docker login` into the Docker config dir config, which
// writes its config.json as a user's would be.
func (r *testRegistry) login(t *testing.T, config, pass string) {
	t.Helper()
	dockerCLI(t, config, pass+"\n", "login", r.host, "--username", r.user, "--password-stdin")
}

// ref is the reference of repository:tag in this registry.
func (r *testRegistry) ref(repoTag string) string { return r.host + "/" + repoTag }

// push tags the local image src as repoTag of the registry, pushes it with
// `docker push` and removes the local tag again, so that a later deploy has
// to pull it. It returns the manifest digest the registry now serves.
func (r *testRegistry) push(t *testing.T, src, repoTag string) string {
	t.Helper()
	digest := r.pushKeep(t, src, repoTag)
	untag(t, r.ref(repoTag))
	return digest
}

// pushKeep is push keeping the local tag, as a host that built and pushed
// the image, or pulled it before, holds it.
func (r *testRegistry) pushKeep(t *testing.T, src, repoTag string) string {
	t.Helper()
	ref := r.ref(repoTag)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := docker.ImageTag(ctx, client.ImageTagOptions{Source: src, Target: ref}); err != nil {
		t.Fatalf("tag %s as %s: %v", src, ref, err)
	}
	out := dockerCLI(t, r.pushConfig, "", "push", ref)
	digest := ""
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "sha256:") {
			digest = f
		}
	}
	if digest == "" {
		t.Fatalf("docker push %s printed no digest:\n%s", ref, out)
	}
	t.Cleanup(func() { untag(t, ref) }) // the tag the deploy's pull made
	return digest
}

// untag removes a local tag of a test's own. Force: a test's cleanups run
// before its scope removes the containers that run the tag, and the engine
// refuses to drop a tag a container names without it; the image itself
// stays, held by the shared test image's tag.
func untag(t *testing.T, ref string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := docker.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true}); err != nil && !isNotFound(err) {
		t.Errorf("untag %s: %v", ref, err)
	}
}

// ownTag tags the test image src under a name of env's test and removes
// the tag when the test ends. The tests that push and compare digests use
// it: a tag of their own keeps its image even when another test run
// rebuilds the shared test images meanwhile.
func ownTag(t *testing.T, env *Env, src string) string {
	t.Helper()
	ref := strings.ToLower(env.Prefix) + "-own/app:" + src[strings.LastIndexByte(src, ':')+1:]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := docker.ImageTag(ctx, client.ImageTagOptions{Source: src, Target: ref}); err != nil {
		t.Fatalf("tag %s as %s: %v", src, ref, err)
	}
	t.Cleanup(func() { untag(t, ref) })
	return ref
}
