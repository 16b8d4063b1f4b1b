package config

import (
	"fmt"
	"path"
)

// The engines of [cluster] engine.
const (
	EngineDocker = "docker"
	EngineSwarm  = "swarm"
)

// checkSwarm refuses, on the Swarm engine, every key that Swarm services
// cannot carry out, so that none validates and does nothing
// (docs/guides/swarm.md#what-swarm-refuses).
func checkSwarm(d *Desired) Errors {
	if d.Cluster.Engine != EngineSwarm {
		return nil
	}
	var errs Errors
	add := func(s *Service, key, format string, args ...any) {
		errs = append(errs, Error{File: s.File, Line: s.Line, Service: s.Name, Key: key,
			Message: fmt.Sprintf(format, args...) + " (engine = \"swarm\"; docs/guides/swarm.md)"})
	}
	if d.Cluster.Backup.Enabled {
		errs = append(errs, Error{File: "cluster.toml", Key: "backup.enabled",
			Message: "backup.enabled: backups exec into a local container and read its volumes, which a Swarm task on another node is not; not supported with engine = \"swarm\""})
	}
	if len(d.Cluster.Nodes) > 0 {
		errs = append(errs, Error{File: "cluster.toml", Key: "node",
			Message: "[[node]]: on Swarm the nodes are Swarm's own; placement.node names a node's hostname and placement.labels its Swarm node labels, so [[node]] entries are not used (engine = \"swarm\")"})
	}
	for _, s := range d.Services() {
		for _, e := range swarmRefusals(s) {
			add(s, e[0], "%s", e[1])
		}
	}
	return errs
}

// swarmRefusals lists, as (key, message) pairs, what of s Swarm cannot do.
func swarmRefusals(s *Service) [][2]string {
	var out [][2]string
	refuse := func(key, msg string) { out = append(out, [2]string{key, msg}) }
	if s.Deploy.drainSet {
		refuse("deploy.drain_secs", "deploy.drain_secs: Swarm stops an old task itself, right after it marks it for shutdown, so the proxy cannot hold it to drain; in-flight requests finish within stop_grace_secs, and a request refused by a stopping task is retried once on another (docs/guides/proxy-and-tls.md#retries)")
	}
	switch s.Deploy.Strategy {
	case StrategyCanary:
		refuse("deploy.strategy", `deploy.strategy = "canary" is not supported on Swarm yet: one Swarm service has one spec, so a canary would need a second service (a later issue)`)
	case StrategyBlueGreen:
		refuse("deploy.strategy", `deploy.strategy = "blue-green" is not supported on Swarm yet: one Swarm service has one spec, so blue and green would need two services (a later issue)`)
	}
	if s.Health != "" {
		refuse("health", "health: an http probe needs a command on Swarm (orca-sync cannot reach tasks on overlay networks); write [service.readiness] with a command instead")
	} else if p := s.Readiness; p != nil && p.Type != ProbeExec && len(p.Command) == 0 {
		refuse("readiness.command", fmt.Sprintf("readiness: a %s probe needs a command on Swarm, what the task runs to check itself (orca-sync cannot reach tasks on overlay networks)", p.Type))
	}
	if s.Liveness != nil && s.Health == "" {
		refuse("liveness", "liveness: Swarm replaces a task whose healthcheck (the readiness probe) fails; a separate liveness probe is not supported")
	}
	if s.Schedule != "" {
		refuse("schedule", "schedule: jobs run as local one-off containers; not supported on Swarm")
	}
	if s.Hooks != nil {
		refuse("hooks", "hooks: pre_deploy and post_deploy run as local one-off containers; not supported on Swarm")
	}
	if s.Build != nil {
		refuse("build", "build: an image built on the manager is not on the workers; push it to a registry and set image")
	}
	if s.Backup != nil && len(s.Backup.PreHook) > 0 {
		refuse("backup.pre_hook", "backup.pre_hook: backups are not supported on Swarm")
	}
	if len(s.ExtraPorts) > 0 {
		refuse("extra_ports", "extra_ports: not supported on Swarm yet")
	}
	if s.Runtime != "" && s.Runtime != "docker" {
		refuse("runtime", "runtime: Swarm services run containers only")
	}
	for _, m := range s.Mounts {
		if !path.IsAbs(m.Source) {
			refuse("mounts", fmt.Sprintf("mounts: %s is a file of the checkout; its snapshot is on the manager only, not on the workers that run the tasks, so `./` mounts are refused on Swarm (bake the file into the image, or mount an absolute path present on every node)", m.Source))
		}
	}
	return out
}
