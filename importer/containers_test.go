package importer

import (
	"slices"
	"strings"
	"testing"
)

func TestFromContainers(t *testing.T) {
	res := FromContainers("legacy", []Container{{
		Name: "web_1", Image: "ghcr.io/acme/web:3",
		Env:      []string{"PATH=/usr/bin", "MODE=prod", "DB_PASSWORD=hunter2", "LITERAL=${HOME}"},
		ImageEnv: []string{"PATH=/usr/bin", "MODE=dev"},
		Cmd:      []string{"serve"}, ImageCmd: []string{"serve"},
		Labels:      map[string]string{"team": "web", "org.opencontainers.image.version": "3", "maintainer": "x", "com.docker.compose.project": "old"},
		ImageLabels: map[string]string{"maintainer": "x"},
		Mounts: []ContainerMount{{Type: "volume", Name: "webdata", Target: "/data"}, {Type: "bind", Source: "/srv/web", Target: "/srv", ReadOnly: true},
			{Type: "volume", Name: strings.Repeat("ab", 32), Target: "/cache"}},
		Networks:      map[string][]string{"bridge": nil, "shared": {"frontend", "Bad_Alias"}},
		Ports:         []ContainerPort{{HostIP: "0.0.0.0", HostPort: "8080", ContainerPort: 80, Protocol: "tcp"}, {HostPort: "", ContainerPort: 81}},
		RestartPolicy: "on-failure:3", MemoryBytes: 256 << 20, NanoCPUs: 500_000_000,
	}})
	if len(res.Services) != 1 {
		t.Fatalf("services: %+v", res.Services)
	}
	s := res.Services[0]
	if s.Name != "web-1" || s.Image != "ghcr.io/acme/web:3" || s.Command != nil {
		t.Errorf("name %q image %q command %q", s.Name, s.Image, s.Command)
	}
	wantEnv := map[string]string{"MODE": "prod", "DB_PASSWORD": "${secrets.DB_PASSWORD}", "LITERAL": "$${HOME}"}
	if len(s.Env) != len(wantEnv) {
		t.Errorf("env %v, want %v", s.Env, wantEnv)
	}
	for k, v := range wantEnv {
		if s.Env[k] != v {
			t.Errorf("env %s = %q, want %q", k, s.Env[k], v)
		}
	}
	if res.Secrets["DB_PASSWORD"] != "hunter2" {
		t.Errorf("secrets %v", res.Secrets)
	}
	if !slices.Equal(s.ExtraPorts, []string{"8080:80"}) || !slices.Equal(s.Aliases, []string{"frontend"}) {
		t.Errorf("ports %v aliases %v", s.ExtraPorts, s.Aliases)
	}
	if len(s.Volumes) != 1 || s.Volumes[0] != (Volume{"webdata", "/data"}) || len(s.Mounts) != 1 || s.Mounts[0] != (Mount{"/srv/web", "/srv", true}) {
		t.Errorf("volumes %v mounts %v", s.Volumes, s.Mounts)
	}
	if len(s.Labels) != 1 || s.Labels["team"] != "web" {
		t.Errorf("labels %v", s.Labels)
	}
	if s.RestartPolicy != "on-failure:3" || s.Resources == nil || *s.Resources != (Resources{"256Mi", 0.5}) {
		t.Errorf("restart %q resources %+v", s.RestartPolicy, s.Resources)
	}
	wantFindings(t, res, "web-1: name: renamed", "web-1: mounts: /cache: an anonymous volume", `web-1: networks.shared.aliases: "Bad_Alias"`, "networks.shared:")
	if slices.ContainsFunc(findings(res), func(f string) bool { return strings.Contains(f, "networks.bridge") }) {
		t.Errorf("the default bridge listed: %v", findings(res))
	}
}
