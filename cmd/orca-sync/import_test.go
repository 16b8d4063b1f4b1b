package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportComposeCommand: the command writes a project that validate
// accepts and says what it could not map; a second run changes nothing.
func TestImportComposeCommand(t *testing.T) {
	dir := t.TempDir()
	args := []string{"import", "compose", "../../importer/testdata/traefik/compose.yaml", "--dir", dir, "--project", "edge"}
	code, out, errOut := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("import: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"wrote services/edge/service.toml: 3 services\n", "host paths mounted (serve and apply need --allow-host-path for them): /var/run/docker.sock\n",
		"not mapped (", "  whoami: labels.traefik.http.routers.whoami.middlewares: "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code, _, errOut := runCLI(t, "validate", dir); code != 0 {
		t.Fatalf("validate of the import: %s", errOut)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "services", "edge", "service.toml"))
	if code, _, errOut := runCLI(t, args...); code == 0 || !strings.Contains(errOut, "exists") {
		t.Fatalf("second import: exit %d: %s", code, errOut)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "services", "edge", "service.toml"))
	if string(before) != string(after) {
		t.Fatal("the second import changed service.toml")
	}
	if code, _, errOut := runCLI(t, "import", "containers", "x", "--dir", dir); code == 0 || !strings.Contains(errOut, "--project is required") {
		t.Fatalf("import containers without --project: exit %d: %s", code, errOut)
	}
}
