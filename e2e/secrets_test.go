package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/orca-sync/orca-sync/reconcile"
)

// secretsServices: api reads DB_PASSWORD from the project file, mail reads
// SMTP_PASSWORD from the cluster file, web uses no secret.
func secretsServices(apiImage string) string {
	withEnv := func(name, image string, env map[string]string) svc {
		return svc{Name: name, Image: image, Port: 8080, Env: env, Readiness: healthz, Deploy: deploy{TimeoutSecs: passingRolloutSecs}}
	}
	return services(
		withEnv("api", apiImage, map[string]string{"DB_PASSWORD": "${secrets.DB_PASSWORD}", "LITERAL": "$${secrets.DB_PASSWORD}", "LOG_ENV": "DB_PASSWORD"}),
		withEnv("mail", imageV1, map[string]string{"SMTP_PASSWORD": "${secrets.SMTP_PASSWORD}"}),
		withEnv("web", imageV1, map[string]string{"MODE": "plain"})) +
		// A job that prints the secret it was given, as a dump script that
		// logs its DSN: its output must reach status, history and `run`
		// redacted (docs/guides/hooks-and-jobs.md).
		"\n" + job("dump", never, "echo password=$DB_PASSWORD; exit 3") + "[service.env]\nDB_PASSWORD = \"${secrets.DB_PASSWORD}\"\n"
}

// ageKey writes a new age identity to a file and returns it.
func ageKey(t *testing.T) (*age.X25519Identity, string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(f, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return id, f
}

func canary(t *testing.T, label string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return "orca-canary-" + label + "-" + hex.EncodeToString(b)
}

// envOf asks a running container of project/service for env var name.
func (e *Env) envOf(t *testing.T, project, service, name string) []string {
	t.Helper()
	var out []string
	for _, c := range e.mustContainers(t, project, service) {
		ip, err := e.containerIP(c.ID, "orca-"+project)
		if err != nil {
			out = append(out, "no ip")
			continue
		}
		_, body, err := e.httpGet("http://" + ip + ":8080/env?name=" + name)
		if err != nil {
			body = "unreachable"
		}
		out = append(out, body)
	}
	return out
}

// TestServeSecrets: a secret from an encrypted project file reaches the
// container; rotating it recreates only the service that uses it; its value is
// nowhere but in that container's env; a commit this host cannot decrypt
// changes nothing and status names the file.
func TestServeSecrets(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("secrets")
	id, keyFile := ageKey(t)
	dbPassword, rotated, smtp, hook := canary(t, "db"), canary(t, "rotated"), canary(t, "smtp"), canary(t, "hook")

	repo, srv := newServedRepo(t)
	url := srv.URL("infra.git")
	file := "services/" + p + "/service.toml"
	secretFile := "services/" + p + "/secrets.sops.yaml"
	repo.WriteFile(".sops.yaml", "creation_rules:\n  - path_regex: secrets\\.sops\\.yaml$\n    age: "+id.Recipient().String()+"\n")
	repo.WriteFile("cluster.toml", "[webhook]\nsecret = \"${secrets.WEBHOOK_SECRET}\"\n[reconcile]\ninterval_secs = 3600\n")
	repo.WriteFile(file, secretsServices(imageV1))
	cli := newOrca(t, env, repo.Dir())
	set := func(project, name, value string) {
		t.Helper()
		args := []string{"secrets", "set", "--dir", repo.Dir(), "--age-key-file", keyFile, name, value}
		if project != "" {
			args = append(args, "--project", project)
		}
		if r := cli.run(args...); r.Code != 0 {
			t.Fatalf("secrets set:\n%s", r)
		}
	}
	set(p, "DB_PASSWORD", dbPassword)
	set("", "SMTP_PASSWORD", smtp)
	set("", "WEBHOOK_SECRET", hook)
	repo.Commit("services with secrets")
	repo.Push()

	tmp := t.TempDir()
	d := startServeEnv(t, env, url, []string{"TMPDIR=" + tmp}, "--age-key-file", keyFile)
	env.waitFor(t, 60*time.Second, func() (bool, string) {
		got := env.envOf(t, p, "api", "DB_PASSWORD")
		return slices.Equal(got, []string{dbPassword}), fmt.Sprintf("api's DB_PASSWORD = %q", got)
	})
	if got := env.envOf(t, p, "api", "LITERAL"); !slices.Equal(got, []string{"${secrets.DB_PASSWORD}"}) {
		t.Errorf("api's LITERAL = %q: $${ must reach the container as a literal ${", got)
	}
	// mail starts beside api and may not listen yet when api answers.
	env.waitFor(t, 30*time.Second, func() (bool, string) {
		got := env.envOf(t, p, "mail", "SMTP_PASSWORD")
		return slices.Equal(got, []string{smtp}), fmt.Sprintf("mail's SMTP_PASSWORD = %q, want the cluster file's value", got)
	})
	var outputs []string // everything an operator or a viewer can read
	collectAPI := func() {
		for _, path := range []string{"/api/v1/status", "/api/v1/plan", "/api/v1/history?limit=100",
			"/api/v1/drift", "/api/v1/services/" + p + "/api/logs?tail=100"} {
			_, body := d.call(http.MethodGet, path)
			outputs = append(outputs, path+": "+string(body))
		}
	}
	// The job's output holds the secret it printed as its reference.
	code, body := d.call(http.MethodPost, "/api/v1/services/"+p+"/dump/run")
	if code != http.StatusOK || !strings.Contains(string(body), "password=${secrets.DB_PASSWORD}") || !strings.Contains(string(body), `"exit_code":3`) {
		t.Errorf("run of the job that prints its secret: %d %s", code, body)
	}
	outputs = append(outputs, "run: "+string(body))
	collectAPI()
	// api prints its DB_PASSWORD at start, as an app that logs its DSN does:
	// the logs API (viewer role and up) shows the reference, not the value.
	if _, logs := d.call(http.MethodGet, "/api/v1/services/"+p+"/api/logs?tail=100"); !strings.Contains(string(logs), "DB_PASSWORD=${secrets.DB_PASSWORD}") {
		t.Errorf("api's logs through the API: want its printed secret as DB_PASSWORD=${secrets.DB_PASSWORD}, got:\n%s", logs)
	}

	t.Run("rotation recreates only the service that uses the secret", func(t *testing.T) {
		before := map[string][]string{}
		for _, s := range []string{"api", "mail", "web"} {
			before[s] = idsOf(env.mustContainers(t, p, s))
		}
		set(p, "DB_PASSWORD", rotated)
		repo.Commit("rotate DB_PASSWORD")
		repo.Push()
		// The webhook secret itself comes from the cluster's secrets file.
		if code := d.webhook(pushEvent(url), hook, "rotate"); code != http.StatusAccepted {
			t.Fatalf("webhook signed with the resolved secret: %d, want 202", code)
		}
		env.waitFor(t, 60*time.Second, func() (bool, string) {
			got := env.envOf(t, p, "api", "DB_PASSWORD")
			return slices.Equal(got, []string{rotated}), fmt.Sprintf("api's DB_PASSWORD = %q", got)
		})
		env.waitFor(t, 30*time.Second, func() (bool, string) {
			s := serviceOf(d.status(), p, "api")
			return s.Sync == reconcile.SyncSynced, fmt.Sprintf("api %+v", s)
		})
		for _, s := range []string{"mail", "web"} {
			if after := idsOf(env.mustContainers(t, p, s)); !slices.Equal(after, before[s]) {
				t.Errorf("%s was recreated by a secret it does not use: %v -> %v", s, before[s], after)
			}
		}
		if after := idsOf(env.mustContainers(t, p, "api")); slices.Equal(after, before["api"]) {
			t.Errorf("api kept its container %v", after)
		}
		collectAPI()
		for _, args := range [][]string{{"plan", repo.Dir(), "--age-key-file", keyFile, "--node", env.Prefix},
			{"plan", repo.Dir(), "--age-key-file", keyFile, "--node", env.Prefix, "--output", "json"},
			{"secrets", "list", "--dir", repo.Dir(), "--project", p}} {
			r := cli.run(args...)
			if r.Code != 0 {
				t.Fatalf("%s", r)
			}
			outputs = append(outputs, r.String())
		}
	})

	t.Run("a commit for a key this host does not hold changes nothing", func(t *testing.T) {
		before := containerIDs(t, env, p)
		other, _ := ageKey(t)
		repo.Remove(secretFile)
		repo.WriteFile(".sops.yaml", "creation_rules:\n  - path_regex: secrets\\.sops\\.yaml$\n    age: "+other.Recipient().String()+"\n")
		set(p, "DB_PASSWORD", "for-another-host")
		repo.WriteFile(file, secretsServices(imageV2)) // would roll api if applied
		sha := repo.Commit("encrypted for another key")
		repo.Push()
		d.webhook(pushEvent(url), hook, "other-key")
		env.waitFor(t, 30*time.Second, func() (bool, string) {
			st := d.status()
			ok := st.LastSync != nil && st.LastSync.Commit == sha && st.LastSync.Result == reconcile.ResultInvalid
			return ok, fmt.Sprintf("last sync %+v", st.LastSync)
		})
		st := d.status()
		if len(st.Errors) != 1 || st.Errors[0].File != secretFile || !strings.Contains(st.Errors[0].Message, "cannot be decrypted") ||
			!strings.Contains(st.Errors[0].Message, other.Recipient().String()) {
			t.Errorf("status errors = %+v, want one naming %s as not decryptable", st.Errors, secretFile)
		}
		if after := containerIDs(t, env, p); !slices.Equal(before, after) {
			t.Errorf("an undecryptable commit changed containers: %v -> %v", before, after)
		}
		if got := env.envOf(t, p, "api", "DB_PASSWORD"); !slices.Equal(got, []string{rotated}) {
			t.Errorf("api's DB_PASSWORD = %q, want the last good value", got)
		}
		collectAPI()
	})

	t.Run("the values are nowhere but in the containers' env", func(t *testing.T) {
		d.stop() // flush and release state.db; logs are complete
		searchLeaks(t, leakSearch{values: []string{dbPassword, rotated, smtp, hook}, daemon: d, env: env,
			project: p, outputs: outputs, dirs: []string{d.dataDir, tmp, repo.Dir()}})
		inEnv := 0
		for _, c := range env.mustContainers(t, p, "") {
			for _, kv := range env.inspect(t, c.ID).Config.Env {
				if strings.Contains(kv, rotated) || strings.Contains(kv, smtp) {
					inEnv++
				}
			}
		}
		if inEnv != 2 {
			t.Errorf("found the live values in %d env entries, want 2 (api's DB_PASSWORD, mail's SMTP_PASSWORD)", inEnv)
		}
		if !bytes.Contains([]byte(strings.Join(outputs, "")), []byte("DB_PASSWORD")) {
			t.Error("the outputs searched never mention DB_PASSWORD: the search proves nothing")
		}
	})
}

// leakSearch is where a secret value must not be: every line serve logged,
// the API and CLI outputs a test collected, every file under dirs (serve's
// data dir with state.db among them) and the labels of the project's
// containers.
type leakSearch struct {
	values  []string
	daemon  *daemon // stopped, so its logs are complete and state.db is flushed
	env     *Env
	project string
	outputs []string
	dirs    []string
}

// searchLeaks fails t for each place of ls that holds one of its values.
func searchLeaks(t *testing.T, ls leakSearch) {
	t.Helper()
	check := func(where, text string) {
		for _, v := range ls.values {
			if strings.Contains(text, v) {
				t.Errorf("a secret value leaked into %s", where)
			}
		}
	}
	for i, line := range strings.Split(ls.daemon.logs.String(), "\n") {
		check(fmt.Sprintf("serve log line %d (%q)", i+1, line), line)
	}
	for _, o := range ls.outputs {
		check("an API or CLI output: "+o[:min(len(o), 200)], o)
	}
	for _, dir := range ls.dirs {
		filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("read %s: %v", path, err)
				return nil
			}
			check(path, string(b))
			return nil
		})
	}
	if _, err := os.Stat(filepath.Join(ls.daemon.dataDir, "state.db")); err != nil {
		t.Errorf("no state file was searched: %v", err)
	}
	for _, c := range ls.env.mustContainers(t, ls.project, "") {
		for k, v := range ls.env.inspect(t, c.ID).Config.Labels {
			check(fmt.Sprintf("label %s of %s", k, c.ID[:12]), v)
		}
	}
}
