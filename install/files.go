package install

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// envFileHeader starts a new environment file; serve reads every
// ORCA_SYNC_<FLAG> as that flag.
const envFileHeader = `# Environment of the orca-sync service (read by systemd, mode 0600).
# Every serve flag can be set here as ORCA_SYNC_<FLAG>, e.g.
#   ORCA_SYNC_GIT_USERNAME=deploy
#   ORCA_SYNC_GIT_PASSWORD=...
#   ORCA_SYNC_AGE_KEY_FILE=/etc/orca-sync/age.key
`

// Write writes the unit to unitFile (replacing it atomically) and creates
// the environment file, mode 0600, when it does not exist yet (an existing
// one keeps its values).
func Write(u Unit, unitFile string) error {
	if err := writeAtomic(unitFile, []byte(u.Render()), 0o644); err != nil {
		return fmt.Errorf("write the unit: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(u.EnvFile), 0o755); err != nil {
		return fmt.Errorf("create the environment file: %w", err)
	}
	f, err := os.OpenFile(u.EnvFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create the environment file: %w", err)
	}
	if _, err := f.WriteString(envFileHeader); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", u.EnvFile, err)
	}
	return f.Close()
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".orca-sync-unit-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Remove deletes the unit file and the links `systemctl enable` made to it
// in the *.wants directories beside it. The environment file stays: it may
// hold credentials the operator wants back. A missing unit is an error, so a
// wrong --unit-file is not taken for success.
func Remove(unitFile string) error {
	if _, err := os.Stat(unitFile); err != nil {
		return fmt.Errorf("remove the unit: %w", err)
	}
	links, _ := filepath.Glob(filepath.Join(filepath.Dir(unitFile), "*.wants", filepath.Base(unitFile)))
	for _, l := range links {
		if dst, err := os.Readlink(l); err == nil && (dst == unitFile || filepath.Base(dst) == filepath.Base(unitFile)) {
			if err := os.Remove(l); err != nil {
				return fmt.Errorf("remove the unit's link: %w", err)
			}
		}
	}
	if err := os.Remove(unitFile); err != nil {
		return fmt.Errorf("remove the unit: %w", err)
	}
	return nil
}

// InstallCommands are the systemctl commands that start the installed unit
// now and at every boot.
func InstallCommands(unitFile string) [][]string {
	return [][]string{{"systemctl", "daemon-reload"}, {"systemctl", "enable", "--now", Name(unitFile)}}
}

// UninstallCommands stop the removed unit and make systemd forget it.
func UninstallCommands(unitFile string) [][]string {
	return [][]string{{"systemctl", "stop", Name(unitFile)}, {"systemctl", "daemon-reload"}}
}

// Run runs the commands in turn, their output to the process's, and stops
// at the first that fails.
func Run(ctx context.Context, cmds [][]string) error {
	for _, c := range cmds {
		cmd := exec.CommandContext(ctx, c[0], c[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(c, " "), err)
		}
	}
	return nil
}
