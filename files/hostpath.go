package files

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/orca-sync/orca-sync/config"
)

// AllowFlag is the flag (and, through ORCA_SYNC_ALLOW_HOST_PATH, the
// variable) that allows host paths; errors name it.
const AllowFlag = "--allow-host-path"

// dockerSockets are where a Docker socket lives: a mount that is or holds
// one gives the container the host. It is allowed only by its own path,
// never by a prefix (docs/guides/files.md).
var dockerSockets = []string{"/var/run/docker.sock", "/run/docker.sock"}

// HostPolicy is what host paths (absolute mount sources) this host lets a
// checkout mount: those below an allowed prefix.
type HostPolicy struct {
	allow   []string
	sockets []string
}

// NewHostPolicy checks the allowed prefixes (absolute paths). dockerHost is
// $DOCKER_HOST, whose unix socket counts as a Docker socket too.
func NewHostPolicy(allow []string, dockerHost string) (HostPolicy, error) {
	p := HostPolicy{sockets: append([]string(nil), dockerSockets...)}
	if sock, ok := strings.CutPrefix(dockerHost, "unix://"); ok && sock != "" {
		p.sockets = append(p.sockets, path.Clean(sock))
	}
	for _, a := range allow {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if !path.IsAbs(a) {
			return HostPolicy{}, fmt.Errorf("%s %q: give an absolute path", AllowFlag, a)
		}
		p.allow = append(p.allow, path.Clean(a))
	}
	return p, nil
}

// Check returns the config.Errors of every host path of d this host does
// not allow, each naming the flag; nil when all are allowed.
func (p HostPolicy) Check(d *config.Desired) error {
	var errs config.Errors
	for _, s := range d.Services() {
		for _, m := range s.Mounts {
			if !path.IsAbs(m.Source) {
				continue
			}
			if msg := p.refusal(m.Source); msg != "" {
				errs = append(errs, config.Error{File: s.File, Line: m.Line, Service: s.Name, Key: "mounts", Message: msg})
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// refusal says why a host path is not allowed, "" when it is. The path is
// checked as written and with its symlinks followed (when it exists).
func (p HostPolicy) refusal(src string) string {
	forms := []string{path.Clean(src)}
	if real, err := filepath.EvalSymlinks(src); err == nil && real != forms[0] {
		forms = append(forms, filepath.ToSlash(real))
	}
	for _, f := range forms {
		if sock := p.socketIn(f); sock != "" && !p.named(sock) {
			return fmt.Sprintf("mount source %s gives the container the Docker socket %s, which a prefix never allows: "+
				"allow it by its own path with %s %s (or ORCA_SYNC_ALLOW_HOST_PATH)", src, sock, AllowFlag, sock)
		}
		if !p.covered(f) {
			return fmt.Sprintf("mount source %s is a host path this host does not allow: allow it (or a directory above it) "+
				"with %s PREFIX (or ORCA_SYNC_ALLOW_HOST_PATH, comma-separated)", src, AllowFlag)
		}
	}
	return ""
}

// socketIn is the Docker socket f is or holds, "".
func (p HostPolicy) socketIn(f string) string {
	for _, s := range p.sockets {
		if config.Within(f, s) {
			return s
		}
	}
	return ""
}

func (p HostPolicy) named(sock string) bool {
	for _, a := range p.allow {
		if a == sock {
			return true
		}
	}
	return false
}

func (p HostPolicy) covered(f string) bool {
	for _, a := range p.allow {
		if config.Within(a, f) {
			return true
		}
	}
	return false
}
