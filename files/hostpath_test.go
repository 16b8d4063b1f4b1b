package files

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/config"
)

func desiredMounting(sources ...string) *config.Desired {
	s := &config.Service{Project: "p", Name: "web", File: "services/p/service.toml"}
	for i, src := range sources {
		s.Mounts = append(s.Mounts, config.Mount{Source: src, Target: "/m" + string(rune('a'+i)), Line: 7 + i})
	}
	return &config.Desired{Projects: []*config.Project{{Name: "p", Services: []*config.Service{s}}}}
}

func TestHostPolicy(t *testing.T) {
	data := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink("/etc", link); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		allow  []string
		source string
		want   string // "" allowed, else a part of the error
	}{
		{"none allowed", nil, data, "services/p/service.toml:8: web: mounts: mount source " + data + " is a host path this host does not allow: allow it (or a directory above it) with --allow-host-path PREFIX"},
		{"below a prefix", []string{filepath.Dir(data)}, data + "/x", ""},
		{"the prefix itself", []string{data}, data, ""},
		{"a sibling that shares the prefix's letters", []string{data}, data + "x", "--allow-host-path"},
		{"dot-dot out of the prefix", []string{data}, data + "/../other", "--allow-host-path"},
		{"a symlink out of the prefix", []string{filepath.Dir(link)}, link, "--allow-host-path"},
		{"the Docker socket under an allowed prefix", []string{"/"}, "/var/run/docker.sock", "which a prefix never allows: allow it by its own path with --allow-host-path /var/run/docker.sock"},
		{"a directory that holds the Docker socket", []string{"/run"}, "/run", "Docker socket /run/docker.sock"},
		{"the Docker socket named", []string{"/var/run/docker.sock", "/run/docker.sock"}, "/var/run/docker.sock", ""},
		{"DOCKER_HOST's socket", []string{"/srv"}, "/srv/d.sock", "Docker socket /srv/d.sock"},
	}
	for _, c := range cases {
		p, err := NewHostPolicy(c.allow, "unix:///srv/d.sock")
		if err != nil {
			t.Fatal(err)
		}
		err = p.Check(desiredMounting("./services/p/config", c.source))
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v, want allowed", c.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
	if _, err := NewHostPolicy([]string{"relative/dir"}, ""); err == nil {
		t.Errorf("a relative --allow-host-path was accepted")
	}
}

func TestResolveSetsContentHashes(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"a.yaml": "a"})
	d := desiredMounting("./a.yaml", "./missing", "/host")
	svc := d.Projects[0].Services[0]
	svc.Mounts[0].HostPath = filepath.Join(dir, "a.yaml")
	svc.Mounts[1].HostPath = filepath.Join(dir, "missing")
	err := NewHasher().Resolve(t.Context(), d)
	if err == nil || !strings.Contains(err.Error(), "services/p/service.toml:8: web: mounts: mount source ./missing cannot be read") {
		t.Errorf("Resolve: %v, want the unreadable source named", err)
	}
	if svc.Mounts[0].Content == "" || svc.Mounts[2].Content != "" {
		t.Errorf("content hashes %q %q, want one for the ./ source only", svc.Mounts[0].Content, svc.Mounts[2].Content)
	}
}
