// Package install renders, writes and removes the systemd unit that runs
// `orca-sync serve` as a service (docs/guides/installing.md). It knows
// nothing of serve's flags beyond the arguments it is handed: the command
// line parses them.
package install

import (
	"fmt"
	"os/user"
	"path/filepath"
	"strings"
)

// Default locations of the unit and of its environment file.
const (
	DefaultUnitFile = "/etc/systemd/system/orca-sync.service"
	DefaultEnvFile  = "/etc/orca-sync/orca-sync.env"
	// DockerGroup is the group whose members may use the Docker socket.
	DockerGroup = "docker"
)

// Unit is what the service runs and as whom.
type Unit struct {
	// Binary is the absolute path of the orca-sync binary.
	Binary string
	// Args are serve's flags, as they go on the command line.
	Args []string
	// DataDir is serve's --data-dir (absolute); also the working directory.
	DataDir string
	// EnvFile is the EnvironmentFile holding ORCA_SYNC_* values (git
	// credentials and the like, kept off the command line).
	EnvFile string
	// User runs the service; empty runs it as root.
	User string
}

// Check reports what would make the unit fail to start: relative paths, and
// a user or docker group that does not exist on this host.
func (u Unit) Check() error {
	for what, p := range map[string]string{"binary": u.Binary, "data dir": u.DataDir, "environment file": u.EnvFile} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("the unit's %s %q must be an absolute path", what, p)
		}
	}
	if u.User == "" {
		return nil
	}
	if _, err := user.Lookup(u.User); err != nil {
		return fmt.Errorf("--user %s: %w", u.User, err)
	}
	if _, err := user.LookupGroup(DockerGroup); err != nil {
		return fmt.Errorf("--user %s needs the group %q that may use the Docker socket: %w", u.User, DockerGroup, err)
	}
	return nil
}

// Render returns the unit file's text.
func (u Unit) Render() string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("# Written by `orca-sync install`; `orca-sync uninstall` removes it.")
	line("[Unit]")
	line("Description=orca-sync: pull-based GitOps for this Docker host")
	line("Documentation=https://github.com/orca-sync/orca-sync/blob/main/docs/guides/installing.md")
	line("Wants=network-online.target")
	line("After=network-online.target docker.service")
	line("Wants=docker.service")
	line("")
	line("[Service]")
	line("Type=simple")
	line("ExecStart=%s", execLine(append([]string{u.Binary, "serve"}, u.Args...)))
	line("Restart=always")
	line("RestartSec=5")
	// Binds the proxy's :80 and :443 without running as root.
	line("AmbientCapabilities=CAP_NET_BIND_SERVICE")
	// "-": the file is optional; it holds ORCA_SYNC_* values such as
	// ORCA_SYNC_GIT_PASSWORD, which do not belong on a command line.
	line("EnvironmentFile=-%s", u.EnvFile)
	if u.User != "" {
		line("User=%s", u.User)
		line("SupplementaryGroups=%s", DockerGroup)
	}
	if rel, ok := stateDirectory(u.DataDir); ok {
		// systemd creates it (owned by User) before the service starts.
		line("StateDirectory=%s", rel)
		line("StateDirectoryMode=0700")
	}
	// The orca seed's first pitfall was a daemon started in the wrong
	// directory: the unit pins it.
	line("WorkingDirectory=-%s", u.DataDir)
	line("")
	line("[Install]")
	line("WantedBy=multi-user.target")
	return b.String()
}

// stateDirectory is dir relative to /var/lib, where systemd's
// StateDirectory= can create it.
func stateDirectory(dir string) (string, bool) {
	rel, err := filepath.Rel("/var/lib", filepath.Clean(dir))
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", false
	}
	return rel, true
}

// execLine joins args as systemd's ExecStart= reads them: a word with a
// space, quote, backslash or specifier is double-quoted, `%` doubled (a
// specifier) and `$` doubled (an environment variable otherwise).
func execLine(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = execWord(a)
	}
	return strings.Join(out, " ")
}

func execWord(a string) string {
	a = strings.ReplaceAll(a, "%", "%%")
	a = strings.ReplaceAll(a, "$", "$$")
	if a != "" && !strings.ContainsAny(a, " \t\"'\\;") {
		return a
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(a) + `"`
}

// Name is the unit's name as systemctl knows it: the file's base name.
func Name(unitFile string) string { return filepath.Base(unitFile) }
