package importer

import (
	"math"
	"regexp"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

func (c *composeMapper) deploy(s *Service, cs types.ServiceConfig) {
	replicas := cs.Scale
	mem, cpus := int64(cs.MemLimit), float64(cs.CPUS)
	if d := cs.Deploy; d != nil {
		if d.Replicas != nil {
			replicas = d.Replicas
		}
		if l := d.Resources.Limits; l != nil {
			mem, cpus = max(mem, int64(l.MemoryBytes)), max(cpus, float64(l.NanoCPUs))
			if l.Pids != 0 || len(l.Devices) > 0 {
				c.res.unmapped(s.Name, "deploy.resources.limits", "only memory and cpus map")
			}
		}
		for key, set := range map[string]bool{
			"deploy.resources.reservations": d.Resources.Reservations != nil, "deploy.labels": len(d.Labels) > 0,
			"deploy.update_config": d.UpdateConfig != nil, "deploy.rollback_config": d.RollbackConfig != nil,
			"deploy.restart_policy": d.RestartPolicy != nil, "deploy.mode": d.Mode != "" && d.Mode != "replicated",
			"deploy.placement":     len(d.Placement.Constraints) > 0 || len(d.Placement.Preferences) > 0,
			"deploy.endpoint_mode": d.EndpointMode != "",
		} {
			if set {
				c.res.unmapped(s.Name, key, "a Swarm setting; not supported by service.toml")
			}
		}
	}
	if replicas != nil && *replicas != 1 {
		s.Replicas = replicas
	}
	s.Resources = resources(c.res, s.Name, mem, cpus)
}

// resources maps limits service.toml accepts (memory at least 6Mi, cpu
// 0.01 to 1024 cores).
func resources(res *Result, service string, mem int64, cpus float64) *Resources {
	var r Resources
	if mem > 0 {
		if mem < 6<<20 {
			res.unmapped(service, "resources.memory", "%d bytes: below the 6Mi Docker accepts", mem)
		} else {
			r.Memory = sizeString(mem)
		}
	}
	if cpus > 0 {
		r.CPU = math.Round(cpus*100) / 100
		if r.CPU < 0.01 || r.CPU > 1024 {
			res.unmapped(service, "resources.cpu", "%g: outside 0.01 to 1024 cores", cpus)
			r.CPU = 0
		}
	}
	if r == (Resources{}) {
		return nil
	}
	return &r
}

var restartRE = regexp.MustCompile(`^(no|always|unless-stopped|on-failure(:[0-9]+)?)$`)

func restartPolicy(res *Result, service, p string) string {
	if p == "" {
		return ""
	}
	if !restartRE.MatchString(p) {
		res.unmapped(service, "restart", "%q is not a Docker restart policy", p)
		return ""
	}
	return p
}

func (c *composeMapper) pullPolicy(service, p string) string {
	switch p {
	case "":
		return ""
	case types.PullPolicyAlways, types.PullPolicyNever:
		return p
	case types.PullPolicyMissing, types.PullPolicyIfNotPresent:
		return "if-not-present"
	}
	c.res.unmapped(service, "pull_policy", "%q has no service.toml equivalent", p)
	return ""
}

// copyLabels copies the labels but a proxy's (read by applyRoute), Docker's
// and Compose's own, and orca.*, which orca-sync reserves.
func copyLabels(res *Result, s *Service, labels map[string]string) {
	for _, k := range sortedKeys(labels) {
		switch {
		case isProxyLabel(k), dockerOwnLabel(k):
		case strings.HasPrefix(strings.ToLower(k), "orca."):
			res.unmapped(s.Name, "labels."+k, "the orca. prefix is orca-sync's own")
		default:
			if s.Labels == nil {
				s.Labels = map[string]string{}
			}
			s.Labels[k] = labels[k]
		}
	}
}

// dockerOwnLabel is a label Docker, Compose or an image build puts on a
// container, not the user.
func dockerOwnLabel(k string) bool {
	for _, p := range []string{"com.docker.", "org.opencontainers.", "desktop.docker."} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// projectLevel lists the Compose file's top-level parts that service.toml
// does not carry.
func (c *composeMapper) projectLevel() {
	for _, n := range sortedKeys(c.p.Secrets) {
		c.res.unmapped("", "secrets."+n, "Compose secrets are files; put the value in services/%s/secrets.sops.yaml and reference it as ${secrets.X}", c.res.Project)
	}
	for _, n := range sortedKeys(c.p.Configs) {
		c.res.unmapped("", "configs."+n, "put the file under services/%s/config and mount it", c.res.Project)
	}
	for _, n := range sortedKeys(c.p.Volumes) {
		if v := c.p.Volumes[n]; v.Driver != "" && v.Driver != "local" || len(v.DriverOpts) > 0 {
			c.res.unmapped("", "volumes."+n, "driver %s and its options: orca-sync creates local volumes", v.Driver)
		}
	}
}
