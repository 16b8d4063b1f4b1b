// Package config loads an infra checkout (cluster.toml and every
// services/<project>/service.toml) into a typed, validated desired state.
//
// Loading never stops at the first problem: every error of the checkout is
// collected, each with its file, line (where one can be found), service and key,
// so an operator fixes a commit in one round trip.
package config

import (
	"strings"
	"time"
)

// Desired is the whole desired state of one checkout.
type Desired struct {
	// Root is the checkout directory; relative mount sources resolve against it.
	Root string
	// ServicesDir is the services tree relative to Root ("services", or "<path>/services").
	ServicesDir string
	Cluster     Cluster
	// Projects are sorted by name.
	Projects []*Project
	// SecretFiles lists every secrets.* file found, cluster-wide first.
	SecretFiles []SecretFile
	// Secrets holds the decrypted values of SecretFiles once the secrets
	// package has resolved them; nil until then, and every reference is
	// refused. It never leaves memory: the field is not serialised.
	Secrets SecretValues `json:"-"`
}

// SecretValues are a checkout's resolved secrets. Lookups take the project
// because a project's own file comes first, then the cluster's.
type SecretValues interface {
	// Value returns the value of ${secrets.NAME} as seen from project ("" for
	// cluster.toml).
	Value(project, name string) (string, error)
	// Hash is a keyed hash of that value, for the spec hash: it changes when
	// the value does, and cannot be used to guess it.
	Hash(project, name string) string
}

// SecretFile is a SOPS-encrypted file of the checkout. Project is "" for the
// cluster-wide file.
type SecretFile struct {
	Project string
	Path    string // relative to Root
}

// Project is one directory under services/: a namespace with its own network.
type Project struct {
	Name string
	// File is the service.toml path relative to Root.
	File string
	// Services are in file order.
	Services []*Service
}

// Service returns the project's service with the given name, or nil.
func (p *Project) Service(name string) *Service {
	for _, s := range p.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Services returns every service of every project, projects in name order.
func (d *Desired) Services() []*Service {
	var all []*Service
	for _, p := range d.Projects {
		all = append(all, p.Services...)
	}
	return all
}

// Project returns the project with the given name, or nil.
func (d *Desired) Project(name string) *Project {
	for _, p := range d.Projects {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Service is one [[service]] table with every default applied.
type Service struct {
	Project string
	Name    string
	// File is the service.toml path relative to the checkout root; Line is the
	// line of its [[service]] header.
	File string
	Line int

	Image       string
	Runtime     string
	Replicas    int
	Port        int
	Domains     []string
	Routes      []string
	StripPrefix bool
	// TLSCert and TLSKey are PEM files (relative paths resolve against the
	// checkout root) that the proxy serves for Domains instead of a managed
	// certificate.
	TLSCert       string
	TLSKey        string
	Health        string
	Command       []string
	Env           map[string]string
	Resources     Resources
	Volumes       []Volume
	Mounts        []Mount
	ExtraPorts    []PortBinding
	Aliases       []string
	Internal      bool
	DependsOn     []string
	Placement     *Placement
	Readiness     *Probe
	Liveness      *Probe
	Deploy        Deploy
	PullPolicy    string
	RestartPolicy string
	Drift         string
	Watch         *Watch
	Labels        map[string]string
	Backup        *Backup
	Build         *Build
	// Hooks are the one-off containers run around a rollout; nil without
	// [service.hooks].
	Hooks *Hooks
	// Schedule is the 6-field cron expression of a job ("" for a service
	// that runs replicas); a job has no replicas of its own.
	Schedule string
	// StopGrace is how long a stopping container gets between SIGTERM and
	// SIGKILL (stop_grace_secs).
	StopGrace time.Duration

	// SecretRefs are the names of ${secrets.NAME} references in env values
	// and command arguments, sorted and unique.
	SecretRefs []string

	// index is the position of the [[service]] table in its file.
	index int
}

// Key is the service's identity across the whole host: "<project>/<name>".
func (s *Service) Key() string { return s.Project + "/" + s.Name }

// Resources limits a container. Zero values mean "no limit".
type Resources struct {
	Memory      string
	MemoryBytes int64
	CPU         float64
	NanoCPUs    int64
}

// Volume is a named Docker volume. orca-sync never deletes volumes.
type Volume struct {
	Source string `toml:"source" json:"source"`
	Target string `toml:"target" json:"target"`
}

// Mount is a bind mount. Source is as written; HostPath is the absolute path
// on the host (relative sources resolve against the checkout root). A `./`
// source is read-only unless read_only = false says otherwise
// (docs/reference/service-toml.md).
type Mount struct {
	Source   string `toml:"source" json:"source"`
	Target   string `toml:"target" json:"target"`
	ReadOnly bool   `toml:"read_only" json:"read_only"`
	HostPath string `toml:"-" json:"-"`
	// Line is where the mount is written in its service.toml, for errors
	// found after loading (a host path the host does not allow).
	Line int `toml:"-" json:"-"`
	// Content is the content hash of a `./` source, set by files.Hasher's
	// Resolve after loading; "" for host paths.
	Content string `toml:"-" json:"-"`
}

// FromCheckout reports whether the source is a file or directory of the
// checkout (`./...`) rather than a host path.
func (m Mount) FromCheckout() bool { return strings.HasPrefix(m.Source, "./") }

// PortBinding publishes a container port on the host.
type PortBinding struct {
	HostIP        string `json:"host_ip,omitempty"`
	HostPort      int    `json:"host_port"`
	ContainerPort int    `json:"container_port"`
	Protocol      string `json:"protocol"`
}

// Placement selects the nodes that apply a service (docs/guides/several-hosts.md).
type Placement struct {
	Node   string
	Labels map[string]string
	// Line is where placement is written in the service's file.
	Line int
}

// Probe types.
const (
	ProbeHTTP = "http"
	ProbeTCP  = "tcp"
	ProbeExec = "exec"
)

// Probe is a readiness or liveness check.
type Probe struct {
	Type             string
	Path             string
	Port             int
	Command          []string
	Interval         time.Duration
	Timeout          time.Duration
	FailureThreshold int
	InitialDelay     time.Duration
	// ExpectMin..ExpectMax is the accepted HTTP status range.
	ExpectMin, ExpectMax int
}

// Rollout strategies.
const (
	StrategyRolling   = "rolling"
	StrategyRecreate  = "recreate"
	StrategyBlueGreen = "blue-green"
	StrategyCanary    = "canary"
)

// Deploy is a service's rollout strategy.
type Deploy struct {
	Strategy string
	MaxSurge int
	Timeout  time.Duration
	Drain    time.Duration
	// drainSet says drain_secs was written, which Swarm refuses
	// (checkSwarm): the default applies on plain Docker only.
	drainSet       bool
	MinReady       time.Duration
	CanaryWeight   int
	CanaryReplicas int
	Steps          []CanaryStep
	Analysis       Analysis
	AutoPromote    bool
	// Sticky keeps a client on the side (canary or stable) it first got,
	// by a cookie, while a canary runs.
	Sticky bool
}

// CanaryStep routes Weight percent of requests to the canary for Pause.
type CanaryStep struct {
	Weight int
	Pause  time.Duration
}

// Analysis bounds a canary's measured behaviour. MaxP95 of zero means no
// latency bound.
type Analysis struct {
	MaxErrorRate float64
	MaxP95       time.Duration
	MinRequests  int
}

// Pull policies.
const (
	PullAlways       = "always"
	PullIfNotPresent = "if-not-present"
	PullNever        = "never"
)

// Drift policies.
const (
	DriftCorrect = "correct"
	DriftWarn    = "warn"
)

// Watch names an application repository whose pushes re-pull this image.
type Watch struct {
	Repo   string
	Branch string
}

// Backup configures the per-service part of volume backups
// (docs/reference/service-toml.md#servicebackup).
type Backup struct {
	// PreHook is the argv exec'd in the service's first running replica
	// before its volumes are archived: pre_hook = "..." is ["sh", "-c", "..."],
	// a list is taken as given. Empty: no hook.
	PreHook []string
	// SecretRefs are the ${secrets.NAME} names PreHook uses. They are not
	// the service's SecretRefs, which the spec hash covers: a secret only
	// the hook uses never rolls the service.
	SecretRefs []string
}

// Hooks are a service's [service.hooks] (docs/reference/service-toml.md#hooks).
type Hooks struct {
	PreDeploy  *Hook
	PostDeploy *Hook
}

// Hook is one hook: the arguments of the image's entrypoint, as the
// service's own command, and how long it may run.
type Hook struct {
	Command []string
	Timeout time.Duration
}

// Hook names.
const (
	HookPreDeploy  = "pre_deploy"
	HookPostDeploy = "post_deploy"
)

// IsJob reports whether the service runs on a schedule instead of keeping
// replicas.
func (s *Service) IsJob() bool { return s.Schedule != "" }

// Build builds the image from git instead of pulling it
// (docs/reference/service-toml.md#build). Branch, Context and Dockerfile
// hold their defaults when not given.
type Build struct {
	Repo   string
	Branch string
	// Context is the build context's directory in the app repository;
	// Dockerfile is relative to it. Both are clean relative paths.
	Context    string
	Dockerfile string
	Args       map[string]string
}

func (v Volume) String() string { return v.Source + ":" + v.Target }

func (m Mount) String() string {
	s := m.Source + ":" + m.Target
	if m.ReadOnly {
		s += ":ro"
	}
	return s
}
