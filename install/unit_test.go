package install

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// verify runs systemd-analyze verify on text as orca-sync.service and fails
// on any complaint: verify exits 0 on a key it ignores ("Failed to parse
// ..., ignoring"), so its output counts too.
func verify(t *testing.T, text string) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatalf("systemd-analyze is needed (Debian's systemd; .ci/install-test-parts installs it): %v", err)
	}
	path := filepath.Join(t.TempDir(), "orca-sync.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", path).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s\nunit:\n%s", err, out, text)
	}
}

func testUnit(t *testing.T) Unit {
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Unit{Binary: bin, Args: []string{"--repo=https://git.example.com/infra.git", "--data-dir=/var/lib/orca-sync", "--http-addr=:80"},
		DataDir: "/var/lib/orca-sync", EnvFile: "/etc/orca-sync/orca-sync.env"}
}

func TestUnitVerifies(t *testing.T) {
	u := testUnit(t)
	verify(t, u.Render())
	// As a user: "daemon" exists on Debian and is not systemd's special
	// "nobody", which verify warns about.
	u.User = "daemon"
	if err := u.Check(); err != nil {
		t.Fatal(err)
	}
	verify(t, u.Render())
}

func TestVerifyCatchesABrokenUnit(t *testing.T) {
	// The check above can fail: verify complains of an ignored value.
	u := testUnit(t)
	text := strings.Replace(u.Render(), "Restart=always", "Restart=sometimes", 1)
	path := filepath.Join(t.TempDir(), "orca-sync.service")
	os.WriteFile(path, []byte(text), 0o644)
	out, _ := exec.Command("systemd-analyze", "verify", "--man=no", path).CombinedOutput()
	if !strings.Contains(string(out), "sometimes") {
		t.Fatalf("verify said nothing of Restart=sometimes: %q", out)
	}
}

func TestUnitKeys(t *testing.T) {
	u := testUnit(t)
	u.User = "daemon"
	u.Args = append(u.Args, "--path=infra dir/100%", "--node=$HOST")
	text := u.Render()
	for _, want := range []string{
		"ExecStart=" + u.Binary + ` serve --repo=https://git.example.com/infra.git --data-dir=/var/lib/orca-sync --http-addr=:80 "--path=infra dir/100%%" --node=$$HOST` + "\n",
		"Restart=always\n", "AmbientCapabilities=CAP_NET_BIND_SERVICE\n", "EnvironmentFile=-/etc/orca-sync/orca-sync.env\n",
		"User=daemon\n", "SupplementaryGroups=docker\n", "StateDirectory=orca-sync\n", "WorkingDirectory=-/var/lib/orca-sync\n",
		"WantedBy=multi-user.target\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("unit lacks %q:\n%s", want, text)
		}
	}
	verify(t, text)
}

func TestCheckRefuses(t *testing.T) {
	u := testUnit(t)
	u.User = "no-such-user-orca"
	if err := u.Check(); err == nil || !strings.Contains(err.Error(), "no-such-user-orca") {
		t.Fatalf("unknown user: %v", err)
	}
	u = testUnit(t)
	u.DataDir = "relative"
	if err := u.Check(); err == nil {
		t.Fatal("a relative data dir passed")
	}
}

func TestWriteAndRemove(t *testing.T) {
	dir := t.TempDir()
	u := testUnit(t)
	u.EnvFile = filepath.Join(dir, "etc", "orca-sync.env")
	unit := filepath.Join(dir, "orca-sync.service")
	if err := Write(u, unit); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(unit)
	if string(got) != u.Render() {
		t.Fatalf("written unit differs from Render:\n%s", got)
	}
	st, err := os.Stat(u.EnvFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("env file: %v %v", st, err)
	}
	// An existing environment file keeps its values.
	os.WriteFile(u.EnvFile, []byte("ORCA_SYNC_GIT_PASSWORD=x\n"), 0o600)
	if err := Write(u, unit); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(u.EnvFile); string(b) != "ORCA_SYNC_GIT_PASSWORD=x\n" {
		t.Fatalf("env file overwritten: %q", b)
	}
	wants := filepath.Join(dir, "multi-user.target.wants")
	os.MkdirAll(wants, 0o755)
	if err := os.Symlink(unit, filepath.Join(wants, "orca-sync.service")); err != nil {
		t.Fatal(err)
	}
	if err := Remove(unit); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{unit, filepath.Join(wants, "orca-sync.service")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	if err := Remove(unit); err == nil {
		t.Fatal("removing a missing unit succeeded")
	}
}
