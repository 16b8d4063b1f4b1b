package diff

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/orca-sync/orca-sync/config"
)

// Kind is what kind of out-of-band change a finding is.
type Kind string

// Drift kinds (docs/guides/drift-and-healing.md).
const (
	// KindStopped: a container is not running (exited, paused, restarting, created, dead).
	KindStopped Kind = "stopped"
	// KindRemoved: a replica of a deployed service is gone, or Docker is
	// removing it.
	KindRemoved Kind = "removed"
	// KindExtra: a managed container no desired replica accounts for.
	KindExtra Kind = "extra"
	// KindModified: a container's actual config differs from its spec.
	KindModified Kind = "modified"
	// KindUnhealthy: the image HEALTHCHECK or the liveness probe fails.
	KindUnhealthy Kind = "unhealthy"
)

// Finding is one drifted field of one container. Secret fields carry no
// values, only Secret = true.
type Finding struct {
	Project   string    `json:"project"`
	Service   string    `json:"service"`
	Container string    `json:"container"`
	ID        string    `json:"container_id,omitempty"`
	Kind      Kind      `json:"kind"`
	Field     string    `json:"field,omitempty"`
	From      string    `json:"from,omitempty"`
	To        string    `json:"to,omitempty"`
	Secret    bool      `json:"secret,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	FirstSeen time.Time `json:"first_seen,omitzero"`
}

// Key identifies a finding across checks, so its first-seen time survives;
// it holds no value, so a secret never reaches it.
func (f Finding) Key() string {
	return strings.Join([]string{f.Project, f.Service, f.Container, string(f.Kind), f.Field}, "\x00")
}

// ServiceKey is "<project>/<service>".
func (f Finding) ServiceKey() string { return f.Project + "/" + f.Service }

func (f Finding) String() string {
	s := fmt.Sprintf("%s %s", f.Kind, f.Container)
	if f.Field == "" {
		return s
	}
	fc := FieldChange{Field: f.Field, From: f.From, To: f.To, Secret: f.Secret, Detail: f.Detail}
	return s + ": " + fc.String()
}

// Live is a container's actual configuration, as an inspect reads it, in the
// terms of a Spec. Image defaults (env, command, labels) are known so that
// they are not mistaken for hand-made changes.
type Live struct {
	Image   string
	ImageID string
	// Env is the container's environment, image defaults included.
	Env map[string]string
	// Command is the container's Cmd (the image's when none was given).
	Command []string
	Ports   []config.PortBinding
	// Volumes and Binds are the named volumes and bind mounts attached.
	Volumes []config.Volume
	Binds   []config.Mount
	// Networks maps each attached network to the container's aliases on it
	// (Docker's own alias, the short container ID, left out).
	Networks      map[string][]string
	Labels        map[string]string
	RestartPolicy string
	MemoryBytes   int64
	NanoCPUs      int64
	ExitCode      int
	OOMKilled     bool

	ImageEnv     map[string]string
	ImageCommand []string
	ImageLabels  map[string]string
}

// DriftInput is what a drift check compares.
type DriftInput struct {
	Desired []Service
	Live    []Container
	// Inspected holds the actual config of live containers by ID; a
	// container missing from it is checked from the list call alone.
	Inspected map[string]*Live
	// Deployed holds, per service key, how many replicas the service is
	// known to have run at its desired spec: only those can be "removed" —
	// a service that never ran, or replicas git just added, are pending
	// creation, not drift.
	Deployed map[string]int
	// Expand resolves the ${secrets.NAME} templates of a project's value so
	// secret-backed env values can be compared; nil compares their presence
	// only. It is used for containers of the desired spec only: an older
	// container's label names older secret values.
	Expand func(project, value string) (string, error)
	// Unhealthy maps container IDs whose liveness probe is failing to the
	// probe's last error.
	Unhealthy map[string]string
	// ModifiedMounts maps container IDs to the targets of their mounts whose
	// snapshot was changed on the host by hand (files.Store's Modified).
	ModifiedMounts map[string][]string
	Node           string
	// NameNode is the node part of container names (NameNode).
	NameNode string
}

// Drift returns every out-of-band change of the live containers against the
// desired services, sorted by service, container, kind and field. It reads
// only its input.
func Drift(in DriftInput) []Finding {
	var out []Finding
	byKey := map[string][]Container{}
	for _, c := range in.Live {
		// A container Docker is removing (docker rm -f seen mid-way) is gone
		// for the user: it is reported as removed, like one already
		// deleted, not as stopped or extra.
		if !OwnNode(c, in.Node) || c.State == StateRemoving {
			continue
		}
		byKey[c.Project+"/"+c.Service] = append(byKey[c.Project+"/"+c.Service], c)
	}
	seen := map[string]bool{}
	for i := range in.Desired {
		d := &in.Desired[i]
		seen[d.Key()] = true
		out = append(out, serviceDrift(d, byKey[d.Key()], in)...)
	}
	for k, cs := range byKey {
		if seen[k] {
			continue
		}
		for _, c := range cs {
			out = append(out, Finding{Project: c.Project, Service: c.Service, Container: c.Name, ID: c.ID, Kind: KindExtra,
				Field: "service", From: "", To: "not in git"})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// OwnNode reports whether a managed container belongs to this host's node. A
// managed container without orca.node was not made by any orca-sync (a copy
// run by hand), so every node counts it as its own.
func OwnNode(c Container, node string) bool {
	return node == "" || c.Node == "" || c.Node == node
}

func serviceDrift(d *Service, live []Container, in DriftInput) []Finding {
	var out []Finding
	finding := func(c Container, k Kind, field, from, to string) Finding {
		return Finding{Project: d.Project, Service: d.Name, Container: c.Name, ID: c.ID, Kind: k, Field: field, From: from, To: to}
	}
	sorted := append([]Container(nil), live...)
	sort.Slice(sorted, func(i, j int) bool {
		return sorted[i].Index < sorted[j].Index || (sorted[i].Index == sorted[j].Index && sorted[i].Name < sorted[j].Name)
	})
	taken := map[int]bool{}
	for _, c := range sorted {
		if c.Index < 1 || c.Index > d.Replicas || taken[c.Index] {
			out = append(out, finding(c, KindExtra, "replicas", "", fmt.Sprintf("%d wanted", d.Replicas)))
			continue
		}
		taken[c.Index] = true
		out = append(out, stateDrift(c, in, finding)...)
		if li := in.Inspected[c.ID]; li != nil {
			spec := c.Spec
			if spec == nil {
				spec = &d.Spec
			}
			var expand func(string) (string, error)
			if in.Expand != nil && c.Hash == d.Hash {
				expand = func(v string) (string, error) { return in.Expand(d.Project, v) }
			}
			for _, fc := range ConfigDrift(spec, li, expand) {
				f := finding(c, KindModified, fc.Field, fc.From, fc.To)
				f.Secret = fc.Secret
				out = append(out, f)
			}
		}
		for _, t := range in.ModifiedMounts[c.ID] {
			f := finding(c, KindModified, "mounts["+t+"]", "", "")
			f.Detail = "content modified"
			out = append(out, f)
		}
	}
	if ran := in.Deployed[d.Key()]; ran > 0 {
		for i := 1; i <= min(ran, d.Replicas); i++ {
			if !taken[i] {
				name := ContainerName(d.Project, d.Name, d.Hash, in.NameNode, i)
				out = append(out, Finding{Project: d.Project, Service: d.Name, Container: name, Kind: KindRemoved, Field: "state", From: "running", To: "missing"})
			}
		}
	}
	return out
}

func stateDrift(c Container, in DriftInput, finding func(Container, Kind, string, string, string) Finding) []Finding {
	switch c.State {
	case "running":
	case "exited", "dead":
		to := c.State
		if li := in.Inspected[c.ID]; li != nil {
			to = fmt.Sprintf("%s (exit code %d)", c.State, li.ExitCode)
			if li.OOMKilled {
				to += ", out of memory"
			}
		}
		return []Finding{finding(c, KindStopped, "state", "running", to)}
	default: // paused, restarting, created
		return []Finding{finding(c, KindStopped, "state", "running", c.State)}
	}
	if c.Health == "unhealthy" {
		return []Finding{finding(c, KindUnhealthy, "health", "healthy", "unhealthy (image HEALTHCHECK)")}
	}
	if why, ok := in.Unhealthy[c.ID]; ok {
		return []Finding{finding(c, KindUnhealthy, "liveness", "passing", why)}
	}
	return nil
}

// ServicesOf returns the service keys that have findings.
func ServicesOf(fs []Finding) map[string][]Finding {
	out := map[string][]Finding{}
	for _, f := range fs {
		out[f.ServiceKey()] = append(out[f.ServiceKey()], f)
	}
	return out
}
