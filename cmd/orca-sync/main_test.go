package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestValidateExample(t *testing.T) {
	code, out, errOut := runCLI(t, "validate", "../../examples/infra")
	if code != 0 || out != "" || errOut != "" {
		t.Fatalf("validate examples/infra: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestValidateReportsEveryError(t *testing.T) {
	dir := t.TempDir()
	svc := filepath.Join(dir, "services", "shop", "service.toml")
	if err := os.MkdirAll(filepath.Dir(svc), 0o755); err != nil {
		t.Fatal(err)
	}
	src := "[[service]]\nname = \"web\"\nimage = \"app:v1\"\nreplica = 2\n\n[[service]]\nname = \"db\"\nimage = \"pg:16\"\ndepends_on = [\"cache\"]\n"
	if err := os.WriteFile(svc, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "validate", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	want := "services/shop/service.toml:4: web: unknown key \"replica\"\n" +
		"services/shop/service.toml:9: db: depends_on \"cache\": no such service in this project\n"
	if errOut != want {
		t.Fatalf("stderr:\n%s\nwant:\n%s", errOut, want)
	}
	code, out, _ := runCLI(t, "validate", "--output", "json", dir)
	if code != 1 || !strings.Contains(out, `"valid": false`) || !strings.Contains(out, `"key": "replica"`) {
		t.Fatalf("json: exit %d\n%s", code, out)
	}
}

func TestValidateFindsRootFromSubdirectory(t *testing.T) {
	t.Chdir("../../examples/infra/services/shop")
	if code, _, errOut := runCLI(t, "validate"); code != 0 {
		t.Fatalf("validate from a project directory: exit %d: %s", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "orca-sync ") {
		t.Fatalf("version: exit %d %q", code, out)
	}
}

func TestUnknownCommandFails(t *testing.T) {
	if code, _, errOut := runCLI(t, "deploy"); code != 1 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}
