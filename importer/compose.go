package importer

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// ComposeOptions say which Compose file to import and how.
type ComposeOptions struct {
	File string
	// Project is the orca-sync project; "" takes the Compose project's name.
	Project string
	// Profiles are the Compose profiles to activate; services of others are
	// listed as not imported.
	Profiles []string
}

// FromCompose loads a Compose file as docker compose would (interpolation
// from the environment and .env, env_file, extends, profiles) and maps it.
func FromCompose(ctx context.Context, o ComposeOptions) (*Result, error) {
	file, err := filepath.Abs(o.File)
	if err != nil {
		return nil, err
	}
	popts, err := cli.NewProjectOptions([]string{file},
		cli.WithWorkingDirectory(filepath.Dir(file)), cli.WithOsEnv, cli.WithEnvFiles(), cli.WithDotEnv, cli.WithProfiles(o.Profiles))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", o.File, err)
	}
	p, err := popts.LoadProject(ctx)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", o.File, err)
	}
	name := o.Project
	if name == "" {
		name = p.Name
	}
	res := &Result{Project: Name(name)}
	if res.Project != name {
		res.unmapped("", "project", "named %s (project names are [a-z0-9-])", res.Project)
	}
	c := composeMapper{p: p, res: res}
	for _, n := range sortedKeys(p.DisabledServices) {
		res.unmapped(Name(n), "profiles", "not imported: profile %s is not active (pass --profile)", strings.Join(p.DisabledServices[n].Profiles, ", "))
	}
	for _, n := range sortedKeys(p.Services) {
		if s := c.service(p.Services[n]); s != nil {
			res.Services = append(res.Services, s)
		}
	}
	c.projectLevel()
	res.Secrets = c.secrets.values
	res.SortFindings()
	return res, nil
}

type composeMapper struct {
	p       *types.Project
	res     *Result
	secrets secretSet
}

// handledKeys are the service keys the mapper reads; any other key a
// service sets is listed as unmapped.
var handledKeys = map[string]bool{
	"name": true, "image": true, "command": true, "environment": true, "env_file": true, "ports": true,
	"expose": true, "volumes": true, "networks": true, "depends_on": true, "healthcheck": true, "deploy": true,
	"restart": true, "labels": true, "pull_policy": true, "scale": true, "mem_limit": true, "cpus": true,
	"profiles": true, "extends": true,
}

func (c *composeMapper) service(cs types.ServiceConfig) *Service {
	s := &Service{Name: Name(cs.Name), Image: cs.Image}
	if s.Name != cs.Name {
		c.res.unmapped(s.Name, "name", "renamed from %q (names are [a-z0-9-]); other services reach it as %s now", cs.Name, s.Name)
	}
	if s.Image == "" {
		c.res.unmapped(s.Name, "build", "not imported: no image (orca-sync does not build images; build it elsewhere and name it in image)")
		return nil
	}
	c.unhandled(s.Name, cs)
	s.Command = c.command(s.Name, cs.Command)
	c.environment(s, cs.Environment)
	ports := c.ports(s, cs)
	c.volumes(s, cs.Volumes)
	c.networks(s, cs.Networks)
	c.dependsOn(s, cs.DependsOn)
	s.Readiness = c.healthcheck(s.Name, cs.HealthCheck)
	c.deploy(s, cs)
	s.RestartPolicy = restartPolicy(c.res, s.Name, cs.Restart)
	s.PullPolicy = c.pullPolicy(s.Name, cs.PullPolicy)
	copyLabels(c.res, s, cs.Labels)
	applyRoute(c.res, s, cs.Labels, ports)
	if len(s.ExtraPorts) > 0 && s.Replicas != nil && *s.Replicas > 1 {
		c.res.unmapped(s.Name, "deploy.replicas", "%d: a service with published ports runs one container", *s.Replicas)
		s.Replicas = nil
	}
	return s
}

// unhandled lists every key the service sets that the mapper does not read.
func (c *composeMapper) unhandled(name string, cs types.ServiceConfig) {
	b, err := json.Marshal(cs)
	if err != nil {
		return
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return
	}
	for _, k := range sortedKeys(m) {
		if handledKeys[k] || isEmpty(m[k]) {
			continue
		}
		c.res.unmapped(name, k, "%s", unhandledReason(k))
	}
}

func unhandledReason(k string) string {
	switch k {
	case "entrypoint":
		return "service.toml has no entrypoint: the image's runs, with command as its arguments"
	case "build":
		return "orca-sync does not build images; the image is used as named"
	case "container_name", "hostname":
		return "orca-sync names containers <project>-<service>-<n>; the service name is the DNS name"
	case "secrets", "configs":
		return "not supported by service.toml: use mounts of files in services/<project>/config or ${secrets.X} in env"
	}
	return "not supported by service.toml"
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case float64:
		return x == 0
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// command keeps the arguments, with a value after a password-like flag (and
// any generated-looking argument) moved to the secrets.
func (c *composeMapper) command(service string, cmd []string) []string {
	out := escapeAll(cmd)
	for i, a := range cmd {
		prev := ""
		if i > 0 {
			prev = strings.ToLower(cmd[i-1])
		}
		flagSecret := strings.HasPrefix(prev, "-") && containsAny(prev, "pass", "secret", "token", "key")
		if a != "" && (flagSecret || highEntropy(a)) {
			out[i] = c.secrets.ref(service, service+"_arg_"+strings.TrimLeft(prev, "-"), a)
		}
	}
	return out
}

func containsAny(s string, words ...string) bool {
	return slices.ContainsFunc(words, func(w string) bool { return strings.Contains(s, w) })
}

func (c *composeMapper) environment(s *Service, env types.MappingWithEquals) {
	plain := map[string]string{}
	for _, k := range sortedKeys(env) {
		if env[k] == nil {
			c.res.unmapped(s.Name, "environment."+k, "no value: it is taken from the environment docker compose runs in, which does not set it")
			continue
		}
		plain[k] = *env[k]
	}
	s.Env = c.secrets.env(s.Name, plain)
}

// ports maps published ports to extra_ports and returns the container ports
// the service publishes or exposes.
func (c *composeMapper) ports(s *Service, cs types.ServiceConfig) []int {
	var targets []int
	add := func(p int) {
		if !slices.Contains(targets, p) {
			targets = append(targets, p)
		}
	}
	for _, p := range cs.Ports {
		add(int(p.Target))
		switch {
		case p.Published == "":
			c.res.unmapped(s.Name, "ports", "%d: no host port (Docker would pick one); extra_ports needs one", p.Target)
			continue
		case strings.Contains(p.Published, "-"):
			c.res.unmapped(s.Name, "ports", "%s:%d: a port range; list each port in extra_ports", p.Published, p.Target)
			continue
		}
		spec := fmt.Sprintf("%s:%d", p.Published, p.Target)
		if p.HostIP != "" && p.HostIP != "0.0.0.0" && p.HostIP != "::" {
			spec = p.HostIP + ":" + spec
		}
		if p.Protocol == "udp" {
			spec += "/udp"
		}
		s.ExtraPorts = append(s.ExtraPorts, spec)
	}
	for _, e := range cs.Expose {
		if n, err := strconv.Atoi(strings.TrimSuffix(e, "/tcp")); err == nil {
			add(n)
		}
	}
	return targets
}

func (c *composeMapper) volumes(s *Service, vols []types.ServiceVolumeConfig) {
	for _, v := range vols {
		switch v.Type {
		case types.VolumeTypeVolume:
			if v.Source == "" {
				c.res.unmapped(s.Name, "volumes", "%s: an anonymous volume; name it to keep its data", v.Target)
				continue
			}
			s.Volumes = append(s.Volumes, Volume{Source: c.volumeName(v.Source), Target: v.Target})
		case types.VolumeTypeBind:
			c.bind(s, v)
		default:
			c.res.unmapped(s.Name, "volumes", "%s: a %s mount is not supported by service.toml", v.Target, v.Type)
		}
	}
}

// volumeName is the Docker volume's name, so the service keeps the data
// docker compose left in it (compose names it <project>_<key>).
func (c *composeMapper) volumeName(key string) string {
	if vc, ok := c.p.Volumes[key]; ok && vc.Name != "" {
		return vc.Name
	}
	return c.p.Name + "_" + key
}

// bind maps a bind mount: a path under the Compose file's directory is
// copied into the checkout, any other is a host path.
func (c *composeMapper) bind(s *Service, v types.ServiceVolumeConfig) {
	rel, err := filepath.Rel(c.p.WorkingDir, v.Source)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
		s.Mounts = append(s.Mounts, Mount{Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly})
		return
	}
	if _, err := os.Stat(v.Source); err != nil {
		c.res.unmapped(s.Name, "volumes", "%s: the bind source %s does not exist here; add it under services/%s/config and mount it", v.Target, rel, c.res.Project)
		return
	}
	to := configPath(c.res.Project, strings.TrimPrefix(filepath.ToSlash(rel), "config/"))
	if rel == "." {
		to = configPath(c.res.Project, "")
	}
	if !slices.ContainsFunc(c.res.Copies, func(cp Copy) bool { return cp.To == to }) {
		c.res.Copies = append(c.res.Copies, Copy{From: v.Source, To: to})
	}
	s.Mounts = append(s.Mounts, Mount{Source: "./" + to, Target: v.Target, ReadOnly: v.ReadOnly})
}

// networks: every service of a project shares one network, so aliases
// carry over; an external network (shared with other stacks) becomes
// internal (the network every project can reach).
func (c *composeMapper) networks(s *Service, nets map[string]*types.ServiceNetworkConfig) {
	for _, n := range sortedKeys(nets) {
		nc := c.p.Networks[n]
		if nc.External {
			s.Internal = true
		}
		if nc.Internal {
			c.res.unmapped(s.Name, "networks."+n, "an internal network (no outside access); the project network is not internal")
		}
		if nets[n] == nil {
			continue
		}
		for _, a := range nets[n].Aliases {
			if !nameRE.MatchString(a) || a == s.Name {
				c.res.unmapped(s.Name, "networks."+n+".aliases", "%q is not a service.toml name ([a-z0-9-])", a)
				continue
			}
			if !slices.Contains(s.Aliases, a) {
				s.Aliases = append(s.Aliases, a)
			}
		}
	}
	if len(nets) > 1 {
		c.res.unmapped(s.Name, "networks", "%d networks: a project's services share one network (orca-<project>), so they are not kept apart", len(nets))
	}
}

func (c *composeMapper) dependsOn(s *Service, deps types.DependsOnConfig) {
	for _, d := range sortedKeys(deps) {
		if _, ok := c.p.Services[d]; !ok {
			c.res.unmapped(s.Name, "depends_on."+d, "not imported (its profile is not active)")
			continue
		}
		if deps[d].Condition == types.ServiceConditionCompletedSuccessfully {
			c.res.unmapped(s.Name, "depends_on."+d, "service_completed_successfully: orca-sync runs services, not one-off jobs")
			continue
		}
		// service_healthy: the dependency's healthcheck is its readiness
		// probe, and depends_on waits for readiness.
		s.DependsOn = append(s.DependsOn, Name(d))
	}
}

func (c *composeMapper) healthcheck(service string, h *types.HealthCheckConfig) *Probe {
	if h == nil || h.Disable || len(h.Test) == 0 || h.Test[0] == "NONE" {
		return nil
	}
	p := &Probe{Type: "exec"}
	switch h.Test[0] {
	case "CMD":
		p.Command = escapeAll(h.Test[1:])
	case "CMD-SHELL":
		p.Command = []string{"/bin/sh", "-c", escape(strings.Join(h.Test[1:], " "))}
	default:
		c.res.unmapped(service, "healthcheck", "test %q is neither CMD nor CMD-SHELL", h.Test)
		return nil
	}
	if h.Interval != nil && *h.Interval > 0 {
		p.IntervalSecs = ceilSecs(time.Duration(*h.Interval))
	}
	if h.Timeout != nil && *h.Timeout > 0 {
		p.TimeoutSecs = ceilSecs(time.Duration(*h.Timeout))
	}
	return p
}

func ceilSecs(d time.Duration) int { return max(1, int(math.Ceil(d.Seconds()))) }
