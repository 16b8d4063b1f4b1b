package importer

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/orca-sync/orca-sync/secrets"
)

// infraWithKey is an empty infra checkout whose .sops.yaml encrypts for a
// new age key, and that key.
func infraWithKey(t *testing.T) (string, *secrets.Identities) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	ids, err := secrets.ParseIdentities(id.String(), "test key")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	rule := "creation_rules:\n  - age: " + id.Recipient().String() + "\n"
	if err := os.WriteFile(filepath.Join(root, ".sops.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, ids
}

// importCompose imports testdata/<dir>/compose.yaml into a new checkout and
// returns the result, the checkout and service.toml's text.
func importCompose(t *testing.T, dir string, profiles ...string) (*Result, string, *secrets.Identities, string) {
	t.Helper()
	root, ids := infraWithKey(t)
	res, err := FromCompose(context.Background(), ComposeOptions{File: filepath.Join("testdata", dir, "compose.yaml"), Profiles: profiles})
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(context.Background(), root, res, ids); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "services", res.Project, "service.toml"))
	if err != nil {
		t.Fatal(err)
	}
	return res, root, ids, string(b)
}

func findings(res *Result) []string {
	var out []string
	for _, f := range res.Unmapped {
		out = append(out, f.String())
	}
	return out
}

// wantFindings checks that each want is the start of one finding.
func wantFindings(t *testing.T, res *Result, want ...string) {
	t.Helper()
	got := findings(res)
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
			t.Errorf("unmapped list lacks %q:\n%s", w, strings.Join(got, "\n"))
		}
	}
}

// wantSecrets decrypts the project's secrets file with the test key.
func wantSecrets(t *testing.T, root, project string, ids *secrets.Identities, want map[string]string) {
	t.Helper()
	co := secrets.NewCheckout(root, ids)
	names, err := co.List(context.Background(), project)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(want) {
		t.Errorf("secrets %v, want %d: %v", names, len(want), want)
	}
	for k, v := range want {
		got, err := co.Get(context.Background(), project, k)
		if err != nil || got != v {
			t.Errorf("secret %s = %q (%v), want %q", k, got, err, v)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(root, "services", project, "secrets.sops.yaml"))
	for _, v := range want {
		if strings.Contains(string(raw), v) {
			t.Errorf("secrets file holds %q in the clear", v)
		}
	}
}

func wantLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(text, l+"\n") {
			t.Errorf("service.toml lacks %q:\n%s", l, text)
		}
	}
}

func TestImportWebApp(t *testing.T) {
	res, root, ids, text := importCompose(t, "webapp")
	if res.Project != "notes" {
		t.Fatalf("project %q, want the Compose name notes", res.Project)
	}
	wantLines(t, text,
		`command = ["serve", "--config", "/etc/notes/notes.ini"]`,
		`extra_ports = ["8080:8000"]`,
		`depends_on = ["cache", "db"]`,
		`memory = "512Mi"`, `cpu = 0.5`,
		`source = "notes_uploads"`, `source = "notes_db-data"`,
		`source = "./services/notes/config/notes.ini"`, `read_only = true`,
		`DATABASE_URL = "postgres://notes:${secrets.DATABASE_URL_PASSWORD}@db:5432/notes"`,
		`POSTGRES_PASSWORD = "${secrets.DATABASE_URL_PASSWORD}"`,
		`SESSION_SECRET = "${secrets.SESSION_SECRET}"`,
		`LOG_LEVEL = "info"`,
		`command = ["redis-server", "--appendonly", "yes", "--requirepass", "${secrets.CACHE_ARG_REQUIREPASS}"]`,
		`command = ["/bin/sh", "-c", "pg_isready -U notes -d notes"]`,
		`command = ["redis-cli", "ping"]`,
		`restart_policy = "always"`,
		`"com.example.team" = "notes"`,
	)
	wantSecrets(t, root, "notes", ids, map[string]string{
		"DATABASE_URL_PASSWORD": "Vq3xTz8pL2mN", "SESSION_SECRET": "9f8e7d6c5b4a39281706f5e4d3c2b1a0", "CACHE_ARG_REQUIREPASS": "r3dis-s3cret",
	})
	wantFindings(t, res, "cache: container_name:", "db: shm_size:")
	if len(res.Unmapped) != 2 {
		t.Errorf("unmapped: %v", findings(res))
	}
	got, err := os.ReadFile(filepath.Join(root, "services", "notes", "config", "notes.ini"))
	want, _ := os.ReadFile("testdata/webapp/config/notes.ini")
	if err != nil || string(got) != string(want) {
		t.Errorf("config copy: %q %v", got, err)
	}
	for _, secret := range []string{"Vq3xTz8pL2mN", "r3dis-s3cret", "9f8e7d6c5b4a"} {
		if strings.Contains(text, secret) {
			t.Errorf("service.toml holds the secret %q", secret)
		}
	}
}

func TestImportTraefik(t *testing.T) {
	res, root, _, text := importCompose(t, "traefik")
	wantLines(t, text,
		`domain = "whoami.example.com"`, `routes = ["/api"]`, `port = 80`, `replicas = 2`, `aliases = ["who"]`,
		`internal = true`, `extra_ports = ["80:80", "443:443"]`,
		`source = "/var/run/docker.sock"`, `source = "traefik_ghost-content"`,
		`url = "https://blog.example.com"`,
	)
	if strings.Contains(text, "traefik.") {
		t.Errorf("Traefik labels copied:\n%s", text)
	}
	if strings.Contains(text, "blog.example.com\"\n") && strings.Contains(text, `domain = "blog`) {
		t.Errorf("blog's || rule mapped to a domain:\n%s", text)
	}
	wantFindings(t, res,
		"blog: labels: router rule \"Host(`blog.example.com`) || Host(`www.blog.example.com`)\"",
		"blog: labels.traefik.http.routers.blog.entrypoints:",
		"whoami: labels.traefik.http.middlewares.auth.basicauth.users:",
		"whoami: labels.traefik.http.routers.whoami.middlewares:",
	)
	if _, err := os.Stat(filepath.Join(root, "services", res.Project, "secrets.sops.yaml")); !os.IsNotExist(err) {
		t.Errorf("a secrets file without secrets: %v", err)
	}
}

func TestImportEnvFileExtendsProfiles(t *testing.T) {
	res, root, ids, text := importCompose(t, "envfile")
	wantLines(t, text,
		`image = "ghcr.io/example/worker:1.8.0"`,                                     // WORKER_TAG from .env
		`replicas = 3`, `QUEUE = "high"`, `QUEUE = "default"`, `LOG_FORMAT = "json"`, // extends
		`restart_policy = "on-failure:5"`,
		`CONCURRENCY = "4"`, `API_TOKEN = "${secrets.API_TOKEN}"`, // env_file
		`BROKER_URL = "amqp://worker:${secrets.RABBITMQ_DEFAULT_PASS}@broker:5672/"`,
		`RABBITMQ_DEFAULT_PASS = "${secrets.RABBITMQ_DEFAULT_PASS}"`,
	)
	if strings.Contains(text, "netshoot") {
		t.Errorf("a service of an inactive profile was imported:\n%s", text)
	}
	wantSecrets(t, root, "jobs", ids, map[string]string{"API_TOKEN": "tok_live_51HqLyjWDarjtT1zdp7dc", "RABBITMQ_DEFAULT_PASS": "Jx81kq0PzW"})
	wantFindings(t, res, "debug: profiles: not imported: profile debug is not active", "scheduler: user:", "broker: hostname:")

	res, _, _, text = importCompose(t, "envfile", "debug")
	wantLines(t, text, `image = "nicolaka/netshoot:v0.13"`, `depends_on = ["broker"]`)
	if slices.ContainsFunc(findings(res), func(f string) bool { return strings.Contains(f, "profile") }) {
		t.Errorf("profile debug active, still listed: %v", findings(res))
	}
}

func TestImportRefusesExistingProject(t *testing.T) {
	root, ids := infraWithKey(t)
	res, err := FromCompose(context.Background(), ComposeOptions{File: "testdata/traefik/compose.yaml", Project: "edge"})
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(context.Background(), root, res, ids); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(root, "services", "edge", "service.toml"))
	if err := Write(context.Background(), root, res, ids); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("second import: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(root, "services", "edge", "service.toml"))
	if string(before) != string(after) {
		t.Fatal("second import changed service.toml")
	}
}

func TestSecretHeuristics(t *testing.T) {
	for _, c := range []struct {
		name, value string
		want        bool
	}{
		{"DB_PASSWORD", "x", true}, {"api_key", "abc", true}, {"GITHUB_TOKEN", "ghp", true}, {"JWT_SECRET", "s", true},
		{"LOG_LEVEL", "info", false}, {"EMPTY_PASSWORD", "", false},
		{"OPAQUE", "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA", true},
		{"HOME_DIR", "/var/lib/application/data", false}, {"SITE", "https://example.com/some/long/path", false},
		{"GREETING", "hello world from the app", false}, {"VERSION", "1.2.3", false},
	} {
		if got := looksSecret(c.name, c.value); got != c.want {
			t.Errorf("looksSecret(%q, %q) = %v, want %v", c.name, c.value, got, c.want)
		}
	}
}
