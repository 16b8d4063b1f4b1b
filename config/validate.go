package config

import (
	"fmt"
	"path"
	"strings"
)

// validateService checks one service on its own.
func validateService(s *Service, sink errorSink) {
	if s.Name != "" {
		if err := validName(s.Name); err != nil {
			sink.service(s, "name", "name %v", err)
		}
	}
	if s.Image != "" {
		if err := ValidImage(s.Image); err != nil {
			sink.service(s, "image", "image %v", err)
		}
	}
	oneOf(s, sink, "runtime", s.Runtime, "docker", "container")
	oneOf(s, sink, "pull_policy", s.PullPolicy, PullAlways, PullIfNotPresent, PullNever)
	oneOf(s, sink, "drift", s.Drift, DriftCorrect, DriftWarn)
	validateRestartPolicy(s, sink)
	if s.Replicas < 0 {
		sink.service(s, "replicas", "replicas = %d: must be 0 or more", s.Replicas)
	}
	if s.Port != 0 {
		if _, err := parsePortNumber(fmt.Sprint(s.Port)); err != nil {
			sink.service(s, "port", "port %v", err)
		}
	}
	validateRouting(s, sink)
	validateStorage(s, sink)
	validatePorts(s, sink)
	for _, a := range s.Aliases {
		if err := validName(a); err != nil {
			sink.service(s, "aliases", "alias %v", err)
		}
	}
	for _, k := range sortedKeys(s.Env) {
		if !envNameRE.MatchString(k) {
			sink.service(s, "env."+k, "env name %q must be letters, digits and _ (not starting with a digit)", k)
		}
	}
	for _, k := range sortedKeys(s.Labels) {
		if strings.HasPrefix(k, "orca.") {
			sink.service(s, "labels", "label %q: the orca. prefix is reserved for orca-sync", k)
		}
	}
	validateProbe(s, "readiness", s.Readiness, sink)
	validateProbe(s, "liveness", s.Liveness, sink)
	validateDeploy(s, sink)
	if s.Watch != nil && s.Watch.Repo == "" {
		sink.service(s, "watch.repo", "watch.repo is required")
	}
	validatePlacement(s, sink)
	validateBuild(s, sink)
	if s.Backup != nil && len(s.Volumes) == 0 {
		sink.service(s, "backup", "backup is set but the service has no volumes: only named volumes are backed up")
	}
}

func oneOf(s *Service, sink errorSink, key, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	sink.service(s, key, "%s = %q: must be one of %s", key, v, quoteList(allowed))
}

func quoteList(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

func validateRestartPolicy(s *Service, sink errorSink) {
	p := s.RestartPolicy
	switch {
	case p == "no" || p == "always" || p == "unless-stopped" || p == "on-failure":
		return
	case strings.HasPrefix(p, "on-failure:"):
		var n int
		if _, err := fmt.Sscanf(p, "on-failure:%d", &n); err == nil && n > 0 && fmt.Sprintf("on-failure:%d", n) == p {
			return
		}
	}
	sink.service(s, "restart_policy", "restart_policy = %q: must be \"no\", \"always\", \"unless-stopped\" or \"on-failure[:N]\"", p)
}

func validateRouting(s *Service, sink errorSink) {
	for _, d := range s.Domains {
		if err := validHostname(d); err != nil {
			sink.service(s, "domain", "domain %v", err)
		}
	}
	if len(s.Domains) > 0 && s.Port == 0 {
		sink.service(s, "port", "a service with a domain needs port (the container port the proxy forwards to)")
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		sink.service(s, "tls_cert", "set both tls_cert and tls_key, or neither")
	}
	if s.TLSCert != "" && len(s.Domains) == 0 {
		sink.service(s, "tls_cert", "tls_cert needs a domain to serve it for")
	}
	for _, r := range s.Routes {
		if !strings.HasPrefix(r, "/") {
			sink.service(s, "routes", "route %q must start with /", r)
		}
	}
	if s.Health != "" && !strings.HasPrefix(s.Health, "/") {
		sink.service(s, "health", "health %q must be an HTTP path starting with /", s.Health)
	}
}

func validateStorage(s *Service, sink errorSink) {
	targets := map[string]bool{}
	target := func(key, t string) {
		if !path.IsAbs(t) {
			sink.service(s, key, "%s target %q must be an absolute path in the container", key, t)
		}
		if targets[path.Clean(t)] {
			sink.service(s, key, "%s target %q is mounted twice", key, t)
		}
		targets[path.Clean(t)] = true
	}
	for _, v := range s.Volumes {
		if !volumeNameRE.MatchString(v.Source) {
			sink.service(s, "volumes", "volume source %q is not a Docker volume name (a host path belongs in mounts)", v.Source)
		}
		target("volumes", v.Target)
	}
	for _, m := range s.Mounts {
		switch {
		case m.Source == "":
			sink.service(s, "mounts", "mounts source is required")
		case !path.IsAbs(m.Source) && !strings.HasPrefix(m.Source, "./"):
			sink.mount(s, m, "mount source %q must be absolute or start with ./ (relative to the repository)", m.Source)
		case !path.IsAbs(m.Source) && (path.Clean(m.Source) == ".." || strings.HasPrefix(path.Clean(m.Source), "../")):
			sink.mount(s, m, "mount source %s resolves outside the checkout", m.Source)
		}
		target("mounts", m.Target)
	}
}

func validatePorts(s *Service, sink errorSink) {
	if len(s.ExtraPorts) == 0 {
		return
	}
	if s.Replicas > 1 {
		sink.service(s, "extra_ports", "extra_ports publish fixed host ports, which %d replicas cannot share: use replicas = 1", s.Replicas)
	}
	if s.Deploy.Strategy != StrategyRecreate {
		sink.service(s, "deploy.strategy", "strategy %q starts a new container while the old one holds its published host port: use \"recreate\" with extra_ports", s.Deploy.Strategy)
	}
	seen := map[string]bool{}
	for _, p := range s.ExtraPorts {
		k := fmt.Sprintf("%d/%s", p.HostPort, p.Protocol)
		if seen[k] {
			sink.service(s, "extra_ports", "host port %s is published twice", k)
		}
		seen[k] = true
	}
}

func validateProbe(s *Service, key string, p *Probe, sink errorSink) {
	if p == nil {
		return
	}
	switch p.Type {
	case ProbeHTTP:
		if !strings.HasPrefix(p.Path, "/") {
			sink.service(s, key+".path", "%s: an http probe needs a path starting with /", key)
		}
	case ProbeTCP:
	case ProbeExec:
		if len(p.Command) == 0 {
			sink.service(s, key+".command", "%s: an exec probe needs a command", key)
		}
	default:
		sink.service(s, key+".type", "%s.type = %q: must be \"http\", \"tcp\" or \"exec\"", key, p.Type)
		return
	}
	if p.Type != ProbeExec && p.Port == 0 && s.Port == 0 {
		sink.service(s, key+".port", "%s: a %s probe needs a port (set port on the probe or the service)", key, p.Type)
	}
	if p.Port != 0 {
		if _, err := parsePortNumber(fmt.Sprint(p.Port)); err != nil {
			sink.service(s, key+".port", "%s.port %v", key, err)
		}
	}
	if p.ExpectMin < 100 || p.ExpectMax > 599 || p.ExpectMin > p.ExpectMax {
		sink.service(s, key+".expect_status", "%s.expect_status %d-%d: must be a range within 100-599", key, p.ExpectMin, p.ExpectMax)
	}
}

func validateDeploy(s *Service, sink errorSink) {
	d := s.Deploy
	oneOf(s, sink, "deploy.strategy", d.Strategy, StrategyRolling, StrategyRecreate, StrategyBlueGreen, StrategyCanary)
	positive := []struct {
		key string
		v   int
		min int
	}{
		{"max_surge", d.MaxSurge, 1}, {"timeout_secs", int(d.Timeout.Seconds()), 1},
		{"drain_secs", int(d.Drain.Seconds()), 0}, {"min_ready_secs", int(d.MinReady.Seconds()), 0},
		{"canary_replicas", d.CanaryReplicas, 1}, {"analysis.min_requests", d.Analysis.MinRequests, 1},
		{"analysis.max_p95_ms", int(d.Analysis.MaxP95.Milliseconds()), 0},
	}
	for _, f := range positive {
		if f.v < f.min {
			sink.service(s, "deploy."+f.key, "deploy.%s = %d: must be at least %d", f.key, f.v, f.min)
		}
	}
	if d.CanaryWeight < 1 || d.CanaryWeight > 100 {
		sink.service(s, "deploy.canary_weight", "deploy.canary_weight = %d: must be a percentage in 1..100", d.CanaryWeight)
	}
	for i, st := range d.Steps {
		if st.Weight < 1 || st.Weight > 100 {
			sink.service(s, "deploy.steps", "deploy.steps[%d].weight = %d: must be a percentage in 1..100", i, st.Weight)
		}
		if st.Pause < 0 {
			sink.service(s, "deploy.steps", "deploy.steps[%d].pause_secs must be 0 or more", i)
		}
	}
	if r := d.Analysis.MaxErrorRate; !(r >= 0 && r <= 1) { // NaN compares false
		sink.service(s, "deploy.analysis.max_error_rate", "deploy.analysis.max_error_rate = %v: must be a fraction in 0..1 (0.05 is 5%%)", r)
	}
}

// validateProject checks what spans the services of one file: unique names
// and depends_on.
func validateProject(services []*Service, sink errorSink) {
	byName := map[string]*Service{}
	for _, s := range services {
		if s.Name == "" {
			continue
		}
		if first, dup := byName[s.Name]; dup {
			sink.service(s, "name", "duplicate service name %q (first defined at line %d)", s.Name, first.Line)
			continue
		}
		byName[s.Name] = s
	}
	for _, s := range services {
		for _, dep := range s.DependsOn {
			if dep == s.Name {
				sink.service(s, "depends_on", "depends_on names the service itself")
			} else if byName[dep] == nil {
				sink.service(s, "depends_on", "depends_on %q: no such service in this project", dep)
			}
		}
	}
	if cycle := findCycle(services, byName); cycle != nil {
		sink.service(byName[cycle[0]], "depends_on", "depends_on cycle: %s", strings.Join(cycle, " -> "))
	}
}
