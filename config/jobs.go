package config

import (
	"time"

	"github.com/robfig/cron/v3"
)

// Defaults of docs/reference/service-toml.md#hooks and #stop_grace_secs.
const (
	DefaultHookTimeout = 300 * time.Second
	DefaultStopGrace   = 10 * time.Second
)

// scheduleParser reads the orca seed's cron format: six fields, seconds
// first (docs/reference/service-toml.md#schedule).
var scheduleParser = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// ParseSchedule parses a job's schedule.
func ParseSchedule(expr string) (cron.Schedule, error) {
	return scheduleParser.Parse(expr)
}

// convertJobKeys sets hooks, schedule and stop_grace_secs, and refuses on a
// job the keys that shape long-running replicas, which a job does not have:
// each would validate and do nothing.
func convertJobKeys(r rawService, s *Service, sink errorSink) {
	s.StopGrace = secs(deref(r.StopGraceSecs, int(DefaultStopGrace/time.Second)))
	if r.StopGraceSecs != nil && (*r.StopGraceSecs < 0 || *r.StopGraceSecs > 3600) {
		sink.service(s, "stop_grace_secs", "stop_grace_secs = %d: must be 0..3600", *r.StopGraceSecs)
	}
	s.Hooks = convertHooks(r.Hooks, s, sink)
	if r.Schedule == nil {
		return
	}
	s.Schedule = *r.Schedule
	if _, err := ParseSchedule(s.Schedule); err != nil {
		sink.service(s, "schedule", "schedule %q: %v (six fields, seconds first: \"0 */5 * * * *\")", s.Schedule, err)
	}
	if s.Schedule == "" {
		sink.service(s, "schedule", "schedule is empty")
	}
	for _, k := range jobRefusals(r) {
		sink.service(s, k, "%s: a service with schedule is a job, which runs one container per tick and has no %s", k, k)
	}
	// What the refusals named is dropped, so that each is one error, not
	// also the checks of what it would need (a port for a domain).
	s.Replicas, s.Port, s.Domains, s.Health, s.Readiness, s.Liveness = 0, 0, nil, "", nil, nil
}

// jobRefusals are the keys written on a job that only long-running
// replicas use.
func jobRefusals(r rawService) []string {
	d := r.Deploy
	set := []struct {
		key string
		on  bool
	}{
		{"replicas", r.Replicas != nil}, {"port", r.Port != nil},
		{"domain", r.Domain != nil}, {"domains", r.Domains != nil}, {"routes", r.Routes != nil},
		{"strip_prefix", r.StripPrefix}, {"tls_cert", r.TLSCert != ""}, {"health", r.Health != ""},
		{"readiness", r.Readiness != nil}, {"liveness", r.Liveness != nil},
		{"deploy", d.Strategy != nil || d.MaxSurge != nil || d.TimeoutSecs != nil || d.DrainSecs != nil ||
			d.MinReadySecs != nil || d.CanaryWeight != nil || d.CanaryReplicas != nil || d.Steps != nil ||
			d.Analysis != nil || d.AutoPromote != nil || d.Sticky != nil},
		{"extra_ports", r.ExtraPorts != nil}, {"aliases", r.Aliases != nil},
		{"restart_policy", r.RestartPolicy != nil}, {"hooks", r.Hooks != nil}, {"watch", r.Watch != nil},
		{"drift", r.Drift != nil},
	}
	var keys []string
	for _, k := range set {
		if k.on {
			keys = append(keys, k.key)
		}
	}
	return keys
}

func convertHooks(r *rawHooks, s *Service, sink errorSink) *Hooks {
	if r == nil {
		return nil
	}
	h := &Hooks{
		PreDeploy:  convertHook(r.PreDeploy, "hooks."+HookPreDeploy, s, sink),
		PostDeploy: convertHook(r.PostDeploy, "hooks."+HookPostDeploy, s, sink),
	}
	if h.PreDeploy == nil && h.PostDeploy == nil {
		sink.service(s, "hooks", "[service.hooks] names no hook: set pre_deploy or post_deploy")
	}
	return h
}

func convertHook(r *rawHook, key string, s *Service, sink errorSink) *Hook {
	if r == nil {
		return nil
	}
	h := &Hook{Command: r.Command, Timeout: secs(deref(r.TimeoutSecs, int(DefaultHookTimeout/time.Second)))}
	if len(h.Command) == 0 {
		sink.service(s, key+".command", "%s.command is required (the arguments of the image's entrypoint, as command)", key)
	}
	if r.TimeoutSecs != nil && *r.TimeoutSecs < 1 {
		sink.service(s, key+".timeout_secs", "%s.timeout_secs = %d: must be at least 1", key, *r.TimeoutSecs)
	}
	return h
}

// namedHook is a hook with its name.
type namedHook struct {
	name string
	hook *Hook
}

// hookList is the service's hooks, pre_deploy first.
func (s *Service) hookList() []namedHook {
	if s.Hooks == nil {
		return nil
	}
	var out []namedHook
	if s.Hooks.PreDeploy != nil {
		out = append(out, namedHook{HookPreDeploy, s.Hooks.PreDeploy})
	}
	if s.Hooks.PostDeploy != nil {
		out = append(out, namedHook{HookPostDeploy, s.Hooks.PostDeploy})
	}
	return out
}
