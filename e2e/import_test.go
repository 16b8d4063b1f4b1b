package e2e

// Tests of `orca-sync import`: a Compose file and hand-run containers become
// a services/<project>/ that apply turns back into running containers.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// importInfra is an empty infra checkout whose .sops.yaml encrypts for a new
// age key, and the key's file.
func importInfra(t *testing.T) (dir, keyFile string) {
	t.Helper()
	id, keyFile := ageKey(t)
	dir = t.TempDir()
	writeFiles(t, dir, map[string]string{".sops.yaml": "creation_rules:\n  - age: " + id.Recipient().String() + "\n"})
	return dir, keyFile
}

// substitute rewrites an imported service.toml for the test images: every
// image (by service, in order), exec probes run the test app's healthcheck,
// and service commands go (the test app takes none).
func substitute(t *testing.T, file string, images map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	service := ""
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "name = "):
			service = strings.Trim(strings.TrimPrefix(line, "name = "), `"`)
		case strings.HasPrefix(line, "image = "):
			line = fmt.Sprintf("image = %q", images[service])
		case strings.HasPrefix(line, "command = ") && strings.Contains(out[len(out)-1], "type = \"exec\""):
			line = `command = ["/app", "healthcheck"]`
		case strings.HasPrefix(line, "command = "):
			continue
		}
		out = append(out, line)
	}
	text := strings.Join(out, "\n")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return text
}

// TestImportComposeApplyConverges imports the web app + Postgres + Redis
// Compose file of importer/testdata, substitutes the test images and applies
// it: every service runs, the app reaches its published port, reads its
// decrypted secrets and its copied config file.
func TestImportComposeApplyConverges(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	dir, keyFile := importInfra(t)
	project := env.project("notes")
	o := newOrca(t, env, dir)
	r := o.run("import", "compose", "../importer/testdata/webapp/compose.yaml", "--project", project, "--dir", dir)
	if r.Code != 0 {
		t.Fatalf("import:\n%s", r)
	}
	for _, want := range []string{"wrote services/" + project + "/service.toml: 3 services", "wrote 3 secrets", "cache: container_name:", "db: shm_size:"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("import output lacks %q:\n%s", want, r)
		}
	}
	for _, secret := range []string{"Vq3xTz8pL2mN", "r3dis-s3cret", "9f8e7d6c5b4a"} {
		if strings.Contains(r.Stdout+r.Stderr, secret) {
			t.Errorf("import printed the secret %q:\n%s", secret, r)
		}
	}
	port := freePort(t)
	file := filepath.Join(dir, "services", project, "service.toml")
	text := substitute(t, file, map[string]string{"app": imageV1, "db": imageV2, "cache": imageV3})
	// The published port and the volumes get the test's own names.
	text = strings.ReplaceAll(text, `"8080:8000"`, fmt.Sprintf(`"127.0.0.1:%d:%d"`, port, testAppPort))
	text = regexp.MustCompile(`source = "notes_`).ReplaceAllString(text, `source = "`+env.Prefix+`notes_`)
	writeFiles(t, dir, map[string]string{"services/" + project + "/service.toml": text})

	r = o.apply("--age-key-file", keyFile)
	if r.Code != 0 {
		t.Fatalf("apply of the imported project:\n%s\n--- service.toml:\n%s", r, text)
	}
	for _, s := range []string{"app", "db", "cache"} {
		cs := env.mustContainers(t, project, s)
		if len(cs) != 1 || !allRunning(cs) {
			t.Fatalf("%s: %s", s, describe(cs))
		}
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if got := env.get(t, base+"/env?name=DATABASE_URL"); !strings.Contains(got, "postgres://notes:Vq3xTz8pL2mN@db:5432/notes") {
		t.Errorf("app's DATABASE_URL: %q", got)
	}
	if got := env.get(t, base+"/file?path=/etc/notes/notes.ini"); !strings.Contains(got, "listen = :8000") {
		t.Errorf("app's mounted config: %q", got)
	}
	db := env.inspect(t, env.mustContainers(t, project, "db")[0].ID)
	if !slices.Contains(db.Config.Env, "POSTGRES_PASSWORD=Vq3xTz8pL2mN") {
		t.Errorf("db env: %v", db.Config.Env)
	}
	again := o.apply("--age-key-file", keyFile)
	for svc, l := range applyLines(again.Stdout) {
		if again.Code != 0 || l.Started != 0 || l.Removed != 0 {
			t.Errorf("a second apply changed %s:\n%s", svc, again)
		}
	}
}

// TestImportContainersRoundTrip: two containers run by hand (env with a
// secret, a volume, a published port, a network alias) are imported, removed
// and applied; the new containers match the old by image, env, ports and
// mounts.
func TestImportContainersRoundTrip(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	dir, keyFile := importInfra(t)
	project := env.project("moved")
	netName := env.Prefix + "handnet"
	port := freePort(t)
	api := env.startApp(t, appSpec{Project: project, Service: "api", Name: env.Prefix + "api", Image: imageV1, Unmanaged: true,
		Network: netName, Aliases: []string{"backend"}, HostPort: port,
		Env: []string{"MODE=hand-run", "SECRET_TOKEN=tok-0123456789abcdef"}, Binds: []string{env.Prefix + "apidata:/data"}})
	worker := env.startApp(t, appSpec{Project: project, Service: "worker", Name: env.Prefix + "worker", Image: imageV2, Unmanaged: true,
		Network: netName, Aliases: []string{"jobs"}, Env: []string{"API_URL=http://backend:8080"}})
	old := map[string]container.InspectResponse{"api": env.inspect(t, api), "worker": env.inspect(t, worker)}

	o := newOrca(t, env, dir)
	r := o.run("import", "containers", env.Prefix+"api", env.Prefix+"worker", "--project", project, "--dir", dir)
	if r.Code != 0 {
		t.Fatalf("import containers:\n%s", r)
	}
	text, _ := os.ReadFile(filepath.Join(dir, "services", project, "service.toml"))
	for _, want := range []string{`aliases = ["backend"]`, `aliases = ["jobs"]`, `SECRET_TOKEN = "${secrets.SECRET_TOKEN}"`,
		fmt.Sprintf(`extra_ports = ["127.0.0.1:%d:%d"]`, port, testAppPort), `source = "` + env.Prefix + `apidata"`} {
		if !strings.Contains(string(text), want) {
			t.Errorf("service.toml lacks %s:\n%s", want, text)
		}
	}
	if strings.Contains(string(text), "VERSION") {
		t.Errorf("the image's own env was imported:\n%s", text)
	}
	// The move: the hand-run containers go, apply starts their successors.
	ctx, cancel := env.ctx()
	defer cancel()
	for _, id := range []string{api, worker} {
		if _, err := env.Docker.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	if r := o.apply("--age-key-file", keyFile); r.Code != 0 {
		t.Fatalf("apply:\n%s\n--- service.toml:\n%s", r, text)
	}
	for _, s := range []string{"api", "worker"} {
		// A service is named after its container.
		cs := env.mustContainers(t, project, env.Prefix+s)
		if len(cs) != 1 {
			t.Fatalf("%s: %s", s, describe(cs))
		}
		got, was := env.inspect(t, cs[0].ID), old[s]
		if got.Config.Image != was.Config.Image {
			t.Errorf("%s image %s, was %s", s, got.Config.Image, was.Config.Image)
		}
		if a, b := sorted(got.Config.Env), sorted(was.Config.Env); !slices.Equal(a, b) {
			t.Errorf("%s env %v, was %v", s, a, b)
		}
		if a, b := fmt.Sprint(got.HostConfig.PortBindings), fmt.Sprint(was.HostConfig.PortBindings); a != b {
			t.Errorf("%s ports %s, was %s", s, a, b)
		}
		if a, b := mountsOf(got), mountsOf(was); !slices.Equal(a, b) {
			t.Errorf("%s mounts %v, was %v", s, a, b)
		}
	}
	if got := env.get(t, fmt.Sprintf("http://127.0.0.1:%d/env?name=SECRET_TOKEN", port)); !strings.Contains(got, "tok-0123456789abcdef") {
		t.Errorf("api's SECRET_TOKEN after the move: %q", got)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func mountsOf(c container.InspectResponse) []string {
	var out []string
	for _, m := range c.Mounts {
		out = append(out, fmt.Sprintf("%s %s %s %s rw=%v", m.Type, m.Name, m.Source, m.Destination, m.RW))
	}
	slices.Sort(out)
	return out
}
