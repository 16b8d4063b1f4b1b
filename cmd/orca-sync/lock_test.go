//go:build unix

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/state"
)

// holdLockEnv makes the test binary a lock holder instead of a test run:
// it takes the data dir's lock as serve does, says "locked" and holds it
// until its stdin closes.
const holdLockEnv = "ORCA_SYNC_TEST_HOLD_DATA_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(holdLockEnv); dir != "" {
		lock, err := state.LockDataDir(dir, "serve")
		if err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		fmt.Println("locked")
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = lock.Unlock()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holdDataDir runs another process that holds dir's lock as serve would,
// and returns its pid; it ends with the test.
func holdDataDir(t *testing.T, dir string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdLockEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "locked" {
		t.Fatalf("lock holder: %q, %v", line, err)
	}
	return cmd.Process.Pid
}

// TestApplyRefusedWhileServeHoldsDataDir: apply takes the data dir's lock
// before anything else, so while another process (serve) holds it apply
// exits 1 naming the holder, without reaching Docker or the checkout's
// secrets. ORCA_SYNC_DATA_DIR selects the data dir like --data-dir.
func TestApplyRefusedWhileServeHoldsDataDir(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	pid := holdDataDir(t, dataDir)
	want := fmt.Sprintf("orca-sync: data dir %s is in use by orca-sync serve (pid %d)\n", dataDir, pid)

	code, out, errOut := runCLI(t, "apply", "--data-dir", dataDir, "../../examples/infra")
	if code != 1 || errOut != want || out != "" {
		t.Fatalf("apply --data-dir: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, want)
	}
	t.Setenv("ORCA_SYNC_DATA_DIR", dataDir)
	code, _, errOut = runCLI(t, "apply", "../../examples/infra")
	if code != 1 || errOut != want {
		t.Fatalf("apply with ORCA_SYNC_DATA_DIR: exit %d, stderr %q; want exit 1 and %q", code, errOut, want)
	}
}

// TestServeRefusedWhileDataDirHeld: a second serve (also --once) on a held
// data dir exits 1 with the same message instead of waiting on state.db.
func TestServeRefusedWhileDataDirHeld(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	pid := holdDataDir(t, dataDir)
	want := fmt.Sprintf("orca-sync: data dir %s is in use by orca-sync serve (pid %d)\n", dataDir, pid)
	code, _, errOut := runCLI(t, "serve", "--once", "--repo", "../../examples/infra", "--data-dir", dataDir)
	if code != 1 || errOut != want {
		t.Fatalf("serve --once: exit %d, stderr %q; want exit 1 and %q", code, errOut, want)
	}
}
