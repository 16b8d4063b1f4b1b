package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Load reads and validates the infra tree at root (a checkout, or its --path
// subdirectory). On any problem it returns nil and Errors listing all of them:
// a checkout is used whole or not at all.
func Load(root string) (*Desired, error) {
	// Absolute, so relative mount sources resolve the same from any
	// working directory.
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	var errs Errors
	d := &Desired{Root: root, ServicesDir: "services"}

	d.Cluster = DefaultCluster()
	if data, err := os.ReadFile(filepath.Join(root, "cluster.toml")); err == nil {
		var cerrs Errors
		d.Cluster, cerrs = ParseClusterFile("cluster.toml", data)
		errs = append(errs, cerrs...)
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, Error{File: "cluster.toml", Message: err.Error()})
	}
	errs = append(errs, findSecretFiles(root, "", ".", d)...)

	entries, err := os.ReadDir(filepath.Join(root, "services"))
	if err != nil {
		msg := "cannot read the services directory: " + err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			msg = "no services/ directory here (is the repository path right?)"
		}
		errs = append(errs, Error{File: "services", Message: msg})
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || strings.HasPrefix(e.Name(), "_") {
			continue
		}
		p, perrs := loadProject(root, e.Name())
		errs = append(errs, perrs...)
		errs = append(errs, findSecretFiles(root, e.Name(), path.Join("services", e.Name()), d)...)
		if p != nil {
			d.Projects = append(d.Projects, p)
		}
	}
	sort.Slice(d.Projects, func(i, j int) bool { return d.Projects[i].Name < d.Projects[j].Name })
	errs = append(errs, checkAcrossProjects(d)...)
	if d.Cluster.Engine == EngineSwarm {
		// Swarm's own nodes take the placement (constraints), not [[node]].
		errs = append(errs, checkSwarm(d)...)
	} else {
		errs = append(errs, checkPlacements(d)...)
	}
	d.Cluster.Proxy.Enabled = proxyEnabled(d)
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	return d, nil
}

func loadProject(root, name string) (*Project, Errors) {
	file := path.Join("services", name, "service.toml")
	if err := validName(name); err != nil {
		return nil, Errors{{File: path.Join("services", name), Message: "project directory name " + err.Error()}}
	}
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
	if err != nil {
		msg := err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			msg = "missing: every directory under services/ is a project and needs a service.toml (prefix a directory with _ to keep other files there)"
		}
		return nil, Errors{{File: file, Message: msg}}
	}
	services, errs := ParseServiceFile(file, name, data)
	sink := errorSink{file: file, lines: newLineIndex(string(data)), errs: &errs}
	for _, s := range services {
		resolveMounts(root, s, sink)
	}
	return &Project{Name: name, File: file, Services: services}, errs
}

// resolveMounts makes relative mount sources absolute against the checkout and
// checks that they exist there — Docker would silently create an empty
// directory for a missing one — and that they stay inside it once symlinks
// are followed: who can merge to the infra repository must not reach the
// host's files through a link (docs/guides/files.md).
func resolveMounts(root string, s *Service, sink errorSink) {
	realRoot, rootErr := filepath.EvalSymlinks(root)
	for i := range s.Mounts {
		m := &s.Mounts[i]
		m.Line = sink.lineOf(s, "mounts", m.Source)
		if path.IsAbs(m.Source) || !m.FromCheckout() {
			m.HostPath = m.Source
			continue
		}
		abs, err := filepath.Abs(filepath.Join(root, filepath.FromSlash(m.Source)))
		if err != nil {
			continue
		}
		m.HostPath = abs
		if _, err := os.Lstat(abs); err != nil {
			sink.mount(s, *m, "mount source %q does not exist in the repository", m.Source)
			continue
		}
		real, err := filepath.EvalSymlinks(abs)
		if err != nil {
			sink.mount(s, *m, "mount source %s resolves outside the checkout (a symlink that leads nowhere: %v)", m.Source, err)
			continue
		}
		if rootErr == nil && !Within(realRoot, real) {
			sink.mount(s, *m, "mount source %s resolves outside the checkout (to %s)", m.Source, real)
		}
	}
}

// Within reports whether p is dir or below it; both are clean absolute paths.
func Within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// checkAcrossProjects checks what spans projects: host+route claims and
// published host ports. Two services placed on different nodes never meet,
// so only services some node runs both of can clash.
func checkAcrossProjects(d *Desired) Errors {
	var errs Errors
	routes := map[string][]*Service{}
	ports := map[string][]*Service{}
	add := func(s *Service, key, format string, args ...any) {
		errs = append(errs, Error{File: s.File, Line: s.Line, Service: s.Name, Key: key, Message: fmt.Sprintf(format, args...)})
	}
	clash := func(claims map[string][]*Service, k string, s *Service) *Service {
		for _, other := range claims[k] {
			if other != s && d.Cluster.share(other, s) {
				return other
			}
		}
		claims[k] = append(claims[k], s)
		return nil
	}
	for _, s := range d.Services() {
		for _, dom := range s.Domains {
			for _, r := range s.Routes {
				if other := clash(routes, dom+r, s); other != nil {
					add(s, "domain", "domain %s route %s is already claimed by %s", dom, r, other)
				}
			}
		}
		for _, p := range s.ExtraPorts {
			k := fmt.Sprintf("%d/%s", p.HostPort, p.Protocol)
			if other := clash(ports, k, s); other != nil {
				add(s, "extra_ports", "host port %s is already published by %s", k, other)
			}
		}
	}
	return errs
}

func proxyEnabled(d *Desired) bool {
	if p := d.Cluster.Proxy.enabledSet; p != nil {
		return *p
	}
	for _, s := range d.Services() {
		if len(s.Domains) > 0 {
			return true
		}
	}
	return false
}

// findSecretFiles records the secrets.* files of dir (relative to root) and
// reports any that is not SOPS-encrypted: a plaintext secret in git is the one
// mistake that cannot be undone by a revert.
func findSecretFiles(root, project, dir string, d *Desired) Errors {
	matches, _ := filepath.Glob(filepath.Join(root, filepath.FromSlash(dir), "secrets.*"))
	var errs Errors
	for _, m := range matches {
		rel := path.Join(dir, filepath.Base(m))
		data, err := os.ReadFile(m)
		if err != nil {
			errs = append(errs, Error{File: rel, Message: err.Error()})
			continue
		}
		if !IsSOPSEncrypted(rel, data) {
			errs = append(errs, Error{File: rel, Message: "is not SOPS-encrypted: encrypt it with `sops --encrypt --age <recipient>` or `orca-sync secrets set`, and never commit secrets in plain text"})
			continue
		}
		d.SecretFiles = append(d.SecretFiles, SecretFile{Project: project, Path: rel})
	}
	return errs
}

var (
	sopsYAMLRE    = regexp.MustCompile(`(?m)^sops:\s*$`)
	sopsYAMLMACRE = regexp.MustCompile(`(?m)^\s+mac: ENC\[`)
)

// IsSOPSEncrypted reports whether data looks like a SOPS file: it carries
// SOPS's metadata with a MAC (a "sops" section for YAML and JSON, sops_*
// keys for dotenv).
func IsSOPSEncrypted(name string, data []byte) bool {
	switch {
	case strings.HasSuffix(name, ".json"):
		var doc struct {
			SOPS *struct {
				MAC string `json:"mac"`
			} `json:"sops"`
		}
		return json.Unmarshal(data, &doc) == nil && doc.SOPS != nil && doc.SOPS.MAC != ""
	case strings.HasSuffix(name, ".env"):
		return bytes.Contains(data, []byte("\nsops_mac=")) || bytes.HasPrefix(data, []byte("sops_mac="))
	case strings.HasSuffix(name, ".yaml"), strings.HasSuffix(name, ".yml"):
		return sopsYAMLRE.Match(data) && sopsYAMLMACRE.Match(data)
	}
	return false
}

// FindRoot returns the nearest directory at or above start that holds an
// infra tree (a services/ directory or cluster.toml), or start itself when
// none does.
func FindRoot(start string) (string, error) {
	root, found, err := findRoot(start, false)
	if err == nil && !found {
		return start, nil
	}
	return root, err
}

// FindRepoRoot is FindRoot for commands that write into the checkout: it
// looks no higher than the git repository's root, takes that root when no
// infra tree is below it, and is an error outside any, so that nothing is
// ever written into a stray file wherever the command happened to run.
func FindRepoRoot(start string) (string, error) {
	root, found, err := findRoot(start, true)
	if err == nil && !found {
		err = errors.New("not inside an infra repository (no services/, cluster.toml or .git above the working directory)")
	}
	return root, err
}

func findRoot(start string, stopAtGit bool) (string, bool, error) {
	abs, err := filepath.Abs(start)
	if err != nil {
		return "", false, fmt.Errorf("find infra root: %w", err)
	}
	for dir := abs; ; dir = filepath.Dir(dir) {
		for _, marker := range []string{"services", "cluster.toml"} {
			if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
				return dir, true, nil
			}
		}
		if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil && stopAtGit {
			return dir, true, nil
		}
		if filepath.Dir(dir) == dir {
			return "", false, nil
		}
	}
}
