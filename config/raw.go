package config

import (
	"fmt"
	"strconv"
	"strings"
)

// The raw* types mirror the TOML files. Pointers tell "unset" from a zero
// value, so defaults apply only where the operator wrote nothing.

type rawServiceFile struct {
	Service []rawService `toml:"service"`
}

type rawService struct {
	Name          *string           `toml:"name"`
	Image         *string           `toml:"image"`
	Runtime       *string           `toml:"runtime"`
	Replicas      *int              `toml:"replicas"`
	Port          *int              `toml:"port"`
	Domain        *string           `toml:"domain"`
	Domains       []string          `toml:"domains"`
	Routes        []string          `toml:"routes"`
	StripPrefix   bool              `toml:"strip_prefix"`
	TLSCert       string            `toml:"tls_cert"`
	TLSKey        string            `toml:"tls_key"`
	Health        string            `toml:"health"`
	Command       []string          `toml:"command"`
	Cmd           []string          `toml:"cmd"`
	Env           map[string]string `toml:"env"`
	Resources     *rawResources     `toml:"resources"`
	Volumes       []Volume          `toml:"volumes"`
	Mounts        []rawMount        `toml:"mounts"`
	ExtraPorts    []string          `toml:"extra_ports"`
	Aliases       []string          `toml:"aliases"`
	Internal      bool              `toml:"internal"`
	DependsOn     []string          `toml:"depends_on"`
	Placement     *rawPlacement     `toml:"placement"`
	Readiness     *rawProbe         `toml:"readiness"`
	Liveness      *rawProbe         `toml:"liveness"`
	Deploy        rawDeploy         `toml:"deploy"`
	PullPolicy    *string           `toml:"pull_policy"`
	RestartPolicy *string           `toml:"restart_policy"`
	Drift         *string           `toml:"drift"`
	Watch         *rawWatch         `toml:"watch"`
	Labels        map[string]string `toml:"labels"`
	Backup        *rawBackup        `toml:"backup"`
	Build         *rawBuild         `toml:"build"`
	Hooks         *rawHooks         `toml:"hooks"`
	Schedule      *string           `toml:"schedule"`
	StopGraceSecs *int              `toml:"stop_grace_secs"`
}

type rawHooks struct {
	PreDeploy  *rawHook `toml:"pre_deploy"`
	PostDeploy *rawHook `toml:"post_deploy"`
}

type rawHook struct {
	Command     []string `toml:"command"`
	TimeoutSecs *int     `toml:"timeout_secs"`
}

type rawMount struct {
	Source   string `toml:"source"`
	Target   string `toml:"target"`
	ReadOnly *bool  `toml:"read_only"`
}

type rawResources struct {
	Memory *string  `toml:"memory"`
	CPU    *float64 `toml:"cpu"`
}

type rawPlacement struct {
	Node   string            `toml:"node"`
	Labels map[string]string `toml:"labels"`
}

type rawProbe struct {
	Type             *string     `toml:"type"`
	Path             *string     `toml:"path"`
	Port             *int        `toml:"port"`
	Command          []string    `toml:"command"`
	IntervalSecs     *int        `toml:"interval_secs"`
	TimeoutSecs      *int        `toml:"timeout_secs"`
	FailureThreshold *int        `toml:"failure_threshold"`
	InitialDelaySecs *int        `toml:"initial_delay_secs"`
	ExpectStatus     statusRange `toml:"expect_status"`
}

type rawDeploy struct {
	Strategy       *string      `toml:"strategy"`
	MaxSurge       *int         `toml:"max_surge"`
	TimeoutSecs    *int         `toml:"timeout_secs"`
	DrainSecs      *int         `toml:"drain_secs"`
	MinReadySecs   *int         `toml:"min_ready_secs"`
	CanaryWeight   *int         `toml:"canary_weight"`
	CanaryReplicas *int         `toml:"canary_replicas"`
	Steps          []rawStep    `toml:"steps"`
	Analysis       *rawAnalysis `toml:"analysis"`
	AutoPromote    *bool        `toml:"auto_promote"`
	Sticky         *bool        `toml:"sticky"`
}

type rawStep struct {
	Weight    int `toml:"weight"`
	PauseSecs int `toml:"pause_secs"`
}

type rawAnalysis struct {
	MaxErrorRate *float64 `toml:"max_error_rate"`
	MaxP95Ms     *int     `toml:"max_p95_ms"`
	MinRequests  *int     `toml:"min_requests"`
}

type rawWatch struct {
	Repo   string `toml:"repo"`
	Branch string `toml:"branch"`
}

type rawBackup struct {
	// PreHook is a string (run as `sh -c`) or a list of strings (an argv).
	PreHook any `toml:"pre_hook"`
}

type rawBuild struct {
	Repo       string            `toml:"repo"`
	Branch     string            `toml:"branch"`
	Dockerfile string            `toml:"dockerfile"`
	Context    string            `toml:"context"`
	Args       map[string]string `toml:"args"`
}

// statusRange is expect_status: "200-399", "200" or 200.
type statusRange struct {
	set      bool
	min, max int
	err      error
}

// UnmarshalTOML keeps a malformed range as an error for validation to report
// with its service, rather than aborting the whole file's decode.
func (r *statusRange) UnmarshalTOML(v any) error {
	r.set = true
	switch x := v.(type) {
	case int64:
		r.min, r.max = int(x), int(x)
	case string:
		lo, hi, isRange := strings.Cut(x, "-")
		var errLo, errHi error
		r.min, errLo = strconv.Atoi(strings.TrimSpace(lo))
		r.max = r.min
		if isRange {
			r.max, errHi = strconv.Atoi(strings.TrimSpace(hi))
		}
		if errLo != nil || errHi != nil {
			r.err = fmt.Errorf("%q is not a status or a range such as \"200-399\"", x)
		}
	default:
		r.err = fmt.Errorf("must be a status code or a string such as \"200-399\"")
	}
	return nil
}

// rawClusterFile mirrors cluster.toml.
type rawClusterFile struct {
	Cluster struct {
		Name   string `toml:"name"`
		Domain string `toml:"domain"`
		Node   string `toml:"node"`
		Engine string `toml:"engine"`
	} `toml:"cluster"`
	Reconcile struct {
		IntervalSecs *int     `toml:"interval_secs"`
		Prune        *bool    `toml:"prune"`
		PruneGuard   *float64 `toml:"prune_guard"`
		AllowEmpty   bool     `toml:"allow_empty"`
	} `toml:"reconcile"`
	Proxy struct {
		Enabled        *bool    `toml:"enabled"`
		HTTPPort       *int     `toml:"http_port"`
		HTTPSPort      *int     `toml:"https_port"`
		TrustedProxies []string `toml:"trusted_proxies"`
		MaxBody        *string  `toml:"max_body"`
	} `toml:"proxy"`
	ACME struct {
		Email string `toml:"email"`
		CA    string `toml:"ca"`
		// Directory is orca's name for ca.
		Directory string `toml:"directory"`
		TLS       string `toml:"tls"`
	} `toml:"acme"`
	Webhook struct {
		Secret      string `toml:"secret"`
		GitLabToken string `toml:"gitlab_token"`
	} `toml:"webhook"`
	GitHub struct {
		Token   string `toml:"token"`
		Repo    string `toml:"repo"`
		APIURL  string `toml:"api_url"`
		PRPlans *bool  `toml:"pr_plans"`
	} `toml:"github"`
	Notify []struct {
		Type               string   `toml:"type"`
		URL                string   `toml:"url"`
		Events             []string `toml:"events"`
		RepeatIntervalSecs *int     `toml:"repeat_interval_secs"`
	} `toml:"notify"`
	Token []Token `toml:"token"`
	Node  []struct {
		Name   string            `toml:"name"`
		Labels map[string]string `toml:"labels"`
	} `toml:"node"`
	Backup struct {
		Enabled       bool   `toml:"enabled"`
		Schedule      string `toml:"schedule"`
		RetentionDays int    `toml:"retention_days"`
		Targets       []struct {
			Type      string `toml:"type"`
			Path      string `toml:"path"`
			Endpoint  string `toml:"endpoint"`
			Bucket    string `toml:"bucket"`
			Region    string `toml:"region"`
			AccessKey string `toml:"access_key"`
			SecretKey string `toml:"secret_key"`
		} `toml:"targets"`
	} `toml:"backup"`
	Registry []struct {
		Host     string `toml:"host"`
		Username string `toml:"username"`
		Password string `toml:"password"`
	} `toml:"registry"`
}
