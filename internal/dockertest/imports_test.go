package dockertest_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyTestsImport: no non-test package of the module imports the test
// support packages (they link the testing package).
func TestOnlyTestsImport(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "../../...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const mod = "github.com/orca-sync/orca-sync/internal/"
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		for _, imp := range strings.Fields(imports) {
			if (imp == mod+"dockertest" || imp == mod+"gittest") && !strings.HasPrefix(pkg, mod) {
				t.Errorf("%s imports %s outside its tests", pkg, imp)
			}
		}
	}
}
