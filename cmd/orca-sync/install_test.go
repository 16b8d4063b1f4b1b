package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstallPrintIsWhatItWrites: --print writes nothing and prints the very
// unit install writes; serve's flags reach ExecStart with paths made absolute.
func TestInstallPrintIsWhatItWrites(t *testing.T) {
	dir := t.TempDir()
	unit, envFile := filepath.Join(dir, "orca-sync.service"), filepath.Join(dir, "env")
	args := []string{"install", "--repo", "../../examples/infra", "--http-addr", ":80", "--user", "daemon",
		"--allow-host-path", "/srv/a,/srv/b",
		"--unit-file", unit, "--env-file", envFile}
	code, printed, errOut := runCLI(t, append(args, "--print")...)
	if code != 0 {
		t.Fatalf("install --print: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(unit); !os.IsNotExist(err) {
		t.Fatalf("--print wrote the unit: %v", err)
	}
	if _, err := os.Stat(envFile); !os.IsNotExist(err) {
		t.Fatalf("--print wrote the environment file: %v", err)
	}
	repo, _ := filepath.Abs("../../examples/infra")
	for _, want := range []string{" serve --allow-host-path=/srv/a --allow-host-path=/srv/b --data-dir=/var/lib/orca-sync --http-addr=:80 --repo=" + repo + "\n", "User=daemon\n", "EnvironmentFile=-" + envFile + "\n"} {
		if !strings.Contains(printed, want) {
			t.Errorf("unit lacks %q:\n%s", want, printed)
		}
	}
	code, out, errOut := runCLI(t, args...)
	if code != 0 || out != "" {
		t.Fatalf("install: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	if !strings.Contains(errOut, "systemctl daemon-reload\n") || !strings.Contains(errOut, "systemctl enable --now orca-sync.service\n") {
		t.Errorf("install did not say what to run:\n%s", errOut)
	}
	written, err := os.ReadFile(unit)
	if err != nil || string(written) != printed {
		t.Fatalf("written unit differs from --print (%v):\n%s\n---\n%s", err, written, printed)
	}
	code, _, errOut = runCLI(t, "uninstall", "--unit-file", unit)
	if code != 0 || !strings.Contains(errOut, "systemctl stop orca-sync.service") {
		t.Fatalf("uninstall: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(unit); !os.IsNotExist(err) {
		t.Fatalf("uninstall left the unit: %v", err)
	}
}

func TestInstallRefuses(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"install", "--print"}, "--repo is required"},
		{[]string{"install", "--print", "--repo", "x", "--once"}, "--once"},
		{[]string{"install", "--print", "--repo", "x", "--user", "no-such-user-orca"}, "no-such-user-orca"},
	} {
		code, out, errOut := runCLI(t, c.args...)
		if code == 0 || out != "" || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want an error naming %s", c.args, code, out, errOut, c.want)
		}
	}
}
