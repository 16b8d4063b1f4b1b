package e2e

// Helpers for the tests of `orca-sync serve`: run the real binary as a
// daemon against a git remote, talk to its API, send it webhooks.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/internal/gittest"
	"github.com/orca-sync/orca-sync/reconcile"
	"github.com/orca-sync/orca-sync/state"
)

const (
	gitUser   = "deploy"
	gitPass   = "s3cret-git-password"
	hookToken = "webhook-shared-secret-0123456789"
)

// lockedBuffer collects a process's output while tests read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// daemon is one running `orca-sync serve`.
type daemon struct {
	t       testing.TB
	env     *Env
	args    []string
	environ []string
	dataDir string
	api     string
	// docker is the scoped engine view serve talks to; it counts requests.
	docker *scopedDocker
	cmd    *exec.Cmd
	logs   *lockedBuffer
	done   chan struct{}
}

// startServe runs serve for env's test against repoURL, scoped to the test's
// containers, with git credentials in the environment.
func startServe(t testing.TB, env *Env, repoURL string, extra ...string) *daemon {
	t.Helper()
	return startServeEnv(t, env, repoURL, nil, extra...)
}

// startServeEnv is startServe with extra environment variables. The host's
// DOCKER_*, ORCA_SYNC_* and SOPS_* variables are not passed on: a test gets
// only the engine, credentials and age key it sets up.
func startServeEnv(t testing.TB, env *Env, repoURL string, environ []string, extra ...string) *daemon {
	t.Helper()
	return startServeWith(t, env, repoURL, environ, nil, extra...)
}

// startServeVia is startServe with the Docker endpoint passed through via,
// so a test can put something of its own in between.
func startServeVia(t testing.TB, env *Env, repoURL string, via func(host string) string, extra ...string) *daemon {
	t.Helper()
	return startServeWith(t, env, repoURL, nil, via, extra...)
}

func startServeWith(t testing.TB, env *Env, repoURL string, environ []string, via func(host string) string, extra ...string) *daemon {
	t.Helper()
	if _, err := orcaBinary(); err != nil {
		t.Fatal(err)
	}
	scoped := newScopedDocker(t, env.Prefix)
	host := scoped.host
	if via != nil {
		host = via(host)
	}
	d := &daemon{t: t, env: env, dataDir: t.TempDir(), api: fmt.Sprintf("127.0.0.1:%d", freePort(t)), docker: scoped}
	d.args = append([]string{"serve", "--repo", repoURL, "--data-dir", d.dataDir, "--listen", d.api,
		"--node", env.Prefix}, extra...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") && !strings.HasPrefix(kv, "ORCA_SYNC_") && !strings.HasPrefix(kv, "SOPS_") {
			d.environ = append(d.environ, kv)
		}
	}
	d.environ = append(d.environ, "DOCKER_HOST="+host,
		"ORCA_SYNC_GIT_USERNAME="+gitUser, "ORCA_SYNC_GIT_PASSWORD="+gitPass)
	d.environ = append(d.environ, environ...)
	d.start()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("serve logs:\n%s", d.logs.String())
		}
	})
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	bin, _ := orcaBinary()
	d.cmd = exec.Command(bin, d.args...)
	d.cmd.Env = d.environ
	d.logs = &lockedBuffer{}
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func() { d.cmd.Wait(); close(d.done) }()
	d.env.waitFor(d.t, 30*time.Second, func() (bool, string) {
		code, _, err := d.env.httpGet("http://" + d.api + "/api/v1/health")
		return err == nil && code == 200, fmt.Sprintf("health: %d %v\n%s", code, err, d.logs.String())
	})
}

// kill ends serve with SIGKILL, as a crash would.
func (d *daemon) kill() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// stop ends serve with SIGTERM, then SIGKILL after a grace period.
func (d *daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(40 * time.Second):
		d.kill()
	}
}

func (d *daemon) token() string {
	b, err := os.ReadFile(filepath.Join(d.dataDir, "admin.token"))
	if err != nil {
		d.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// call sends an API request with the admin token and returns status and body.
func (d *daemon) call(method, path string) (int, []byte) {
	d.t.Helper()
	req, _ := http.NewRequest(method, "http://"+d.api+path, nil)
	req.Header.Set("Authorization", "Bearer "+d.token())
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func (d *daemon) status() reconcile.Status {
	d.t.Helper()
	code, body := d.call(http.MethodGet, "/api/v1/status")
	var st reconcile.Status
	if code != 200 || json.Unmarshal(body, &st) != nil {
		d.t.Fatalf("status: %d %s", code, body)
	}
	return st
}

func (d *daemon) history() []state.SyncRecord {
	d.t.Helper()
	code, body := d.call(http.MethodGet, "/api/v1/history?limit=100")
	var recs []state.SyncRecord
	if code != 200 || json.Unmarshal(body, &recs) != nil {
		d.t.Fatalf("history: %d %s", code, body)
	}
	return recs
}

// serviceOf returns the status of project/name, or a zero value.
func serviceOf(st reconcile.Status, project, name string) reconcile.ServiceStatus {
	for _, s := range st.Services {
		if s.Project == project && s.Name == name {
			return s
		}
	}
	return reconcile.ServiceStatus{}
}

// pushEvent is the body of a GitHub push webhook for repoURL's branch main.
func pushEvent(repoURL string) []byte {
	b, _ := json.Marshal(map[string]any{
		"ref":        "refs/heads/main",
		"repository": map[string]any{"full_name": "ops/infra", "clone_url": repoURL},
	})
	return b
}

// webhook posts a GitHub push event signed with secret ("" = unsigned).
func (d *daemon) webhook(body []byte, secret, delivery string) int {
	d.t.Helper()
	return d.postGitHub("push", body, secret, delivery)
}

// postGitHub posts a GitHub webhook of event, signed with secret ("" =
// unsigned), and returns the answer's status code.
func (d *daemon) postGitHub(event string, body []byte, secret, delivery string) int {
	d.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+d.api+"/api/v1/webhooks/github", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		d.t.Fatalf("webhook: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// newServedRepo is a new repository served as "infra.git" by a smart-HTTP
// remote of its own with the test credentials; its URL is
// srv.URL("infra.git").
func newServedRepo(t testing.TB) (*gittest.Repo, *gittest.Server) {
	t.Helper()
	return gittest.Served(t, "infra.git", gitUser, gitPass)
}

// syncAndWait asks serve to sync now and waits until a sync that started
// after the request has finished: status shows it as the last sync and no
// sync is under way. It returns that status.
func (d *daemon) syncAndWait(t testing.TB) reconcile.Status {
	t.Helper()
	asked := time.Now()
	if code, body := d.call(http.MethodPost, "/api/v1/sync"); code != http.StatusAccepted {
		t.Fatalf("sync: %d %s", code, body)
	}
	return d.waitSyncSince(t, asked)
}

// waitIdle waits until this serve process has finished a sync (after a
// start: its start-up sync) and no sync is under way.
func (d *daemon) waitIdle(t testing.TB) reconcile.Status {
	t.Helper()
	return d.waitSyncSince(t, time.Time{})
}

// waitSyncSince waits until the last sync of this serve process started
// after since and no sync is under way.
func (d *daemon) waitSyncSince(t testing.TB, since time.Time) reconcile.Status {
	t.Helper()
	var st reconcile.Status
	waitFor(t, 60*time.Second, func() (bool, string) {
		st = d.status()
		done := st.LastSync != nil && st.LastSync.Started.After(since) && !st.Syncing
		return done, fmt.Sprintf("last sync %+v, syncing %v, want one started after %v", st.LastSync, st.Syncing, since.Format(time.RFC3339Nano))
	})
	return st
}
