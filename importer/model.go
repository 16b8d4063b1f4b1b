// Package importer turns a Compose file or running containers into a
// services/<project>/ directory of an infra checkout: service.toml, the files
// its relative bind mounts name (copied under config/), and the secret-looking
// values, encrypted into secrets.sops.yaml (docs/guides/moving-in-from-compose.md).
// What service.toml cannot say is listed, never dropped silently.
package importer

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Service is one [[service]] table as import writes it. Field order is the
// order of the keys in the file.
type Service struct {
	Name          string            `toml:"name"`
	Image         string            `toml:"image"`
	Replicas      *int              `toml:"replicas,omitempty"`
	Port          int               `toml:"port,omitzero"`
	Domain        string            `toml:"domain,omitempty"`
	Domains       []string          `toml:"domains,omitempty"`
	Routes        []string          `toml:"routes,omitempty"`
	Command       []string          `toml:"command,omitempty"`
	ExtraPorts    []string          `toml:"extra_ports,omitempty"`
	Aliases       []string          `toml:"aliases,omitempty"`
	Internal      bool              `toml:"internal,omitempty"`
	DependsOn     []string          `toml:"depends_on,omitempty"`
	PullPolicy    string            `toml:"pull_policy,omitempty"`
	RestartPolicy string            `toml:"restart_policy,omitempty"`
	Resources     *Resources        `toml:"resources,omitempty"`
	Volumes       []Volume          `toml:"volumes,omitempty"`
	Mounts        []Mount           `toml:"mounts,omitempty"`
	Env           map[string]string `toml:"env,omitempty"`
	Labels        map[string]string `toml:"labels,omitempty"`
	Readiness     *Probe            `toml:"readiness,omitempty"`
}

// Resources is [service.resources].
type Resources struct {
	Memory string  `toml:"memory,omitempty"`
	CPU    float64 `toml:"cpu,omitzero"`
}

// Volume is a named Docker volume.
type Volume struct {
	Source string `toml:"source"`
	Target string `toml:"target"`
}

// Mount is a bind mount: "./services/..." of the checkout or a host path.
type Mount struct {
	Source   string `toml:"source"`
	Target   string `toml:"target"`
	ReadOnly bool   `toml:"read_only,omitempty"`
}

// Probe is an exec readiness probe (what a Compose healthcheck is).
type Probe struct {
	Type         string   `toml:"type"`
	Command      []string `toml:"command"`
	IntervalSecs int      `toml:"interval_secs,omitzero"`
	TimeoutSecs  int      `toml:"timeout_secs,omitzero"`
}

// Finding is one thing of the source that service.toml does not carry.
type Finding struct {
	Service string // "" for the whole file
	Key     string
	Reason  string
}

func (f Finding) String() string {
	if f.Service == "" {
		return f.Key + ": " + f.Reason
	}
	return f.Service + ": " + f.Key + ": " + f.Reason
}

// Copy is a file or directory a relative bind mount names, copied into the
// checkout.
type Copy struct {
	From string // absolute path on this machine
	To   string // relative to the infra root, slash-separated
}

// Result is one imported project.
type Result struct {
	Project  string
	Services []*Service
	// Secrets are the values moved out of service.toml, by secret name.
	Secrets  map[string]string
	Copies   []Copy
	Unmapped []Finding
}

func (r *Result) unmapped(service, key, format string, args ...any) {
	r.Unmapped = append(r.Unmapped, Finding{Service: service, Key: key, Reason: fmt.Sprintf(format, args...)})
}

// SortFindings orders the unmapped list by service, then key.
func (r *Result) SortFindings() {
	sort.SliceStable(r.Unmapped, func(i, j int) bool {
		a, b := r.Unmapped[i], r.Unmapped[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		return a.Key < b.Key
	})
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Name makes s a service.toml name ([a-z0-9][a-z0-9-]*, at most 63): lower
// case, anything else a dash.
func Name(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	n := strings.Trim(b.String(), "-")
	if len(n) > 63 {
		n = strings.TrimRight(n[:63], "-")
	}
	if n == "" {
		n = "app"
	}
	return n
}

// escape makes a value literal in service.toml, where "${" starts a
// secret reference and "$${" is a literal "${".
func escape(s string) string { return strings.ReplaceAll(s, "${", "$${") }

func escapeAll(ss []string) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = escape(s)
	}
	return out
}

// sizeString writes a byte count as service.toml reads sizes.
func sizeString(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.suffix)
		}
	}
	return fmt.Sprint(n)
}

// HostPaths are the absolute mount sources of r's services, in order.
func HostPaths(r *Result) []string {
	var out []string
	for _, s := range r.Services {
		for _, m := range s.Mounts {
			if strings.HasPrefix(m.Source, "/") {
				out = append(out, m.Source)
			}
		}
	}
	return out
}
