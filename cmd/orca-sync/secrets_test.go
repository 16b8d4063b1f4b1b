package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

// runCLIStdin runs orca-sync with stdin.
func runCLIStdin(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCommand(&out, &errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	code = 0
	if err != nil {
		code = 1
		if e, ok := err.(exitError); ok {
			code = e.code
		} else {
			errOut.WriteString(err.Error())
		}
	}
	return code, out.String(), errOut.String()
}

// secretsRepo is a git work tree with a project and a .sops.yaml for a new
// key; it returns the root and the key file.
func secretsRepo(t *testing.T) (root, keyFile string, id *age.X25519Identity) {
	t.Helper()
	root = t.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(".git/HEAD", "ref: refs/heads/main\n")
	write("services/shop/service.toml", "[[service]]\nname = \"api\"\nimage = \"app:v1\"\nenv = {DB = \"${secrets.DB_PASSWORD}\"}\n")
	write(".sops.yaml", "creation_rules:\n  - path_regex: secrets\\.sops\\.(yaml|json|env)$\n    age: "+id.Recipient().String()+"\n")
	keyDir := t.TempDir()
	keyFile = filepath.Join(keyDir, "key.txt")
	if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return root, keyFile, id
}

func TestSecretsCommands(t *testing.T) {
	root, keyFile, _ := secretsRepo(t)
	t.Setenv("SOPS_AGE_KEY_FILE", keyFile)
	t.Setenv("SOPS_AGE_KEY", "")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	sub := filepath.Join(root, "services", "shop")
	t.Chdir(sub) // the repository is found by walking up

	if code, _, errOut := runCLIStdin(t, "from stdin\n", "secrets", "set", "--project", "shop", "DB_PASSWORD"); code != 0 {
		t.Fatalf("set: %d %s", code, errOut)
	}
	if code, _, errOut := runCLIStdin(t, "", "secrets", "set", "API_KEY", "api-key-plain-value"); code != 0 || !strings.Contains(errOut, "set API_KEY in secrets.sops.yaml") {
		t.Fatalf("set: %d %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(root, "secrets.sops.yaml")); err != nil {
		t.Fatal("the cluster file is not at the repository root:", err)
	}
	if code, out, _ := runCLIStdin(t, "", "secrets", "get", "-p", "shop", "DB_PASSWORD"); code != 0 || out != "from stdin\n" {
		t.Errorf("get = %d %q", code, out)
	}
	t.Setenv("SOPS_AGE_KEY_FILE", "") // list reads names without a key
	if code, out, _ := runCLIStdin(t, "", "secrets", "list", "--dir", root); code != 0 || out != "API_KEY\n" {
		t.Errorf("list = %d %q", code, out)
	}
	t.Setenv("SOPS_AGE_KEY_FILE", keyFile)
	if code, _, _ := runCLIStdin(t, "", "secrets", "rm", "API_KEY"); code != 0 {
		t.Error("rm failed")
	}
	if code, _, errOut := runCLIStdin(t, "", "secrets", "get", "API_KEY"); code != 1 || !strings.Contains(errOut, "no secret API_KEY in secrets.sops.yaml") {
		t.Errorf("get after rm = %d %q", code, errOut)
	}
	if code, _, errOut := runCLIStdin(t, "", "secrets", "set", "bad-name", "x"); code != 1 || !strings.Contains(errOut, `secret name "bad-name"`) {
		t.Errorf("bad name = %d %q", code, errOut)
	}
	for _, f := range []string{filepath.Join(root, "secrets.sops.yaml"), filepath.Join(sub, "secrets.sops.yaml")} {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte("from stdin")) || bytes.Contains(b, []byte("api-key-plain-value")) {
			t.Errorf("%s holds a value in plain text", f)
		}
	}
	entries, _ := os.ReadDir(sub)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("left a temporary file %s", e.Name())
		}
	}

	// Outside any repository nothing is written.
	stray := t.TempDir()
	t.Chdir(stray)
	if code, _, errOut := runCLIStdin(t, "", "secrets", "set", "X", "y"); code != 1 || !strings.Contains(errOut, "not inside an infra repository") {
		t.Errorf("outside a repository = %d %q", code, errOut)
	}
	if entries, _ := os.ReadDir(stray); len(entries) != 0 {
		t.Errorf("wrote %v outside the repository", entries)
	}
}

// sopsModule is the module of the sops command, built at the version this
// module requires (go.mod), from the module cache: no network is needed.
const sopsModule = "github.com/getsops/sops/v3"

// sopsBinary builds the real sops once per machine and version (under the
// user cache dir) and returns its path.
func sopsBinary(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	version, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", sopsModule).Output()
	if err != nil {
		t.Fatalf("go list -m %s: %v", sopsModule, err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "orca-sync-tests", "sops-"+strings.TrimSpace(string(version)))
	bin := filepath.Join(dir, "sops")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Built beside its final name, then renamed: a concurrent test run
	// never sees half a binary.
	tmp, err := os.CreateTemp(dir, "sops-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp.Name(), sopsModule+"/cmd/sops")
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build sops %s from the module cache: %v\n%s", version, err, out)
	}
	if err := os.Rename(tmp.Name(), bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestSopsInterop: a file the sops command encrypted is read and edited by
// orca-sync, and what orca-sync secrets set wrote decrypts with sops -d. It
// builds sops the first time (half a minute), so -short skips it.
func TestSopsInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sops command; run without -short")
	}
	sops := sopsBinary(t)
	root, keyFile, id := secretsRepo(t)
	t.Setenv("SOPS_AGE_KEY", "")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	sopsRun := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(sops, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "SOPS_AGE_KEY_FILE="+keyFile)
		out, err := cmd.Output()
		if err != nil {
			stderr := ""
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("sops %v: %v\n%s", args, err, stderr)
		}
		return string(out)
	}

	// sops -> orca-sync, in each format.
	plain := map[string]string{
		"services/shop/secrets.sops.env": "DB_PASSWORD=from-sops-env\n",
		"secrets.sops.json":              `{"API_KEY": "from-sops-json"}`,
	}
	for rel, content := range plain {
		p := filepath.Join(root, rel)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		sopsRun("--encrypt", "--age", id.Recipient().String(), "--in-place", rel)
	}
	for _, c := range []struct{ project, name, want string }{{"shop", "DB_PASSWORD", "from-sops-env"}, {"", "API_KEY", "from-sops-json"}} {
		args := []string{"secrets", "get", "--dir", root, "--age-key-file", keyFile, c.name}
		if c.project != "" {
			args = append(args, "--project", c.project)
		}
		if code, out, errOut := runCLIStdin(t, "", args...); code != 0 || out != c.want+"\n" {
			t.Errorf("get %s = %d %q %s", c.name, code, out, errOut)
		}
	}
	// plan resolves the sops-made project file (it then fails only for lack
	// of Docker, or plans; either way no secrets error).
	if code, _, errOut := runCLIStdin(t, "", "validate", root); code != 0 {
		t.Fatalf("validate: %s", errOut)
	}

	// orca-sync -> sops: edit the sops-made file and write a new one.
	if code, _, errOut := runCLIStdin(t, "rotated\n", "secrets", "set", "--dir", root, "--age-key-file", keyFile, "-p", "shop", "DB_PASSWORD"); code != 0 {
		t.Fatal(errOut)
	}
	if out := sopsRun("--decrypt", "services/shop/secrets.sops.env"); out != "DB_PASSWORD=rotated\n" {
		t.Errorf("sops -d of the edited env file = %q", out)
	}
	if err := os.Remove(filepath.Join(root, "secrets.sops.json")); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLIStdin(t, "", "secrets", "set", "--dir", root, "--age-key-file", keyFile, "WEBHOOK_SECRET", "new-file"); code != 0 {
		t.Fatal(errOut)
	}
	if out := sopsRun("--decrypt", "secrets.sops.yaml"); out != "WEBHOOK_SECRET: new-file\n" {
		t.Errorf("sops -d of the new yaml file = %q", out)
	}
	if out := sopsRun("--decrypt", "--extract", `["WEBHOOK_SECRET"]`, "secrets.sops.yaml"); out != "new-file" {
		t.Errorf("sops --extract = %q", out)
	}
}
