package config

import "time"

// Cluster is cluster.toml with every default applied. A checkout without
// cluster.toml gets DefaultCluster.
type Cluster struct {
	Name   string
	Domain string
	// Node is this host's default node name.
	Node string
	// Engine is what orca-sync converges: EngineDocker (containers, the
	// default) or EngineSwarm (Swarm services; docs/guides/swarm.md).
	Engine string

	Reconcile Reconcile
	Proxy     Proxy
	ACME      ACME
	Webhook   Webhook
	GitHub    GitHub
	Notify    []Notify
	Tokens    []Token
	Nodes     []Node
	// Registries are the [[registry]] credentials every pull from their
	// host sends (docs/reference/cluster-toml.md#registry).
	Registries []Registry
	Backup     BackupConfig

	// SecretRefs are the ${secrets.NAME} names used anywhere in cluster.toml.
	SecretRefs []string
}

// Reconcile tunes the sync loop and the prune guard.
type Reconcile struct {
	Interval   time.Duration
	Prune      bool
	PruneGuard float64
	AllowEmpty bool
}

// Proxy configures the built-in reverse proxy.
type Proxy struct {
	// Enabled is true when set so, or when unset and any service has a domain.
	Enabled        bool
	HTTPPort       int
	HTTPSPort      int
	TrustedProxies []string
	MaxBody        string
	MaxBodyBytes   int64

	enabledSet *bool
}

// TLS modes.
const (
	TLSACME     = "acme"
	TLSInternal = "internal"
	TLSOff      = "off"
)

// DefaultACMECA is Let's Encrypt's production directory.
const DefaultACMECA = "https://acme-v02.api.letsencrypt.org/directory"

// ACME configures certificates.
type ACME struct {
	Email string
	CA    string
	TLS   string
}

// Webhook holds the shared secrets that authenticate webhook deliveries.
type Webhook struct {
	Secret      string
	GitLabToken string
}

// GitHub configures commit statuses and pull request plans.
type GitHub struct {
	Token   string
	Repo    string
	APIURL  string
	PRPlans bool
}

// NotifyEvents returns the event names a [[notify]] sink may subscribe to.
func NotifyEvents() []string {
	return []string{
		"sync_succeeded", "sync_failed", "rollout_failed", "drift_detected",
		"canary_started", "canary_step", "canary_promoted", "canary_aborted", "degraded", "job_failed",
		"backup_failed",
	}
}

// Notify is one [[notify]] sink.
type Notify struct {
	Type           string
	URL            string
	Events         []string
	RepeatInterval time.Duration
}

// Token roles.
const (
	RoleAdmin    = "admin"
	RoleDeployer = "deployer"
	RoleViewer   = "viewer"
)

// Token is an API bearer token. Value is either the token itself or
// "sha256:<hex>" of it.
type Token struct {
	Name  string `toml:"name"`
	Value string `toml:"value"`
	Role  string `toml:"role"`
	// Line is the line of the token's value in cluster.toml, for the errors
	// found once its value is resolved from secrets (CheckResolved).
	Line int `toml:"-"`
}

// Registry is one [[registry]] of cluster.toml.
type Registry struct {
	// Host is the registry as image references name it, normalised by
	// RegistryHost ("docker.io" for Docker Hub).
	Host     string
	Username string
	// Password is normally ${secrets.NAME}; resolved in memory only.
	Password string
}

// Node is a host of a multi-host setup.
type Node struct {
	Name   string
	Labels map[string]string
}
