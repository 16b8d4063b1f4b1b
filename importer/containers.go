package importer

import (
	"fmt"
	"slices"
	"strings"
)

// Container is what `docker inspect` says of a running container, with its
// image's defaults beside it so that only what the container adds is kept.
// Package docker fills it.
type Container struct {
	Name                        string   // without Docker's leading "/"
	Image                       string   // the reference it was created from
	Env, ImageEnv               []string // KEY=VALUE
	Cmd, ImageCmd               []string
	Entrypoint, ImageEntrypoint []string
	Labels, ImageLabels         map[string]string
	Mounts                      []ContainerMount
	Networks                    map[string][]string // network name → aliases the user gave
	NetworkMode                 string
	Ports                       []ContainerPort
	ExposedPorts                []int
	RestartPolicy               string
	MemoryBytes                 int64
	NanoCPUs                    int64
}

// ContainerMount is one of a container's mounts.
type ContainerMount struct {
	Type     string // "volume", "bind", "tmpfs", ...
	Name     string // a volume's name
	Source   string // a bind's host path
	Target   string
	ReadOnly bool
}

// ContainerPort is one published port.
type ContainerPort struct {
	HostIP        string
	HostPort      string
	ContainerPort int
	Protocol      string
}

// FromContainers maps running containers to one project's services, as the
// orca seed's migration playbook does by hand with docker inspect.
func FromContainers(project string, cs []Container) *Result {
	res := &Result{Project: Name(project)}
	var ss secretSet
	nets := map[string]bool{}
	for _, c := range cs {
		s := containerService(res, &ss, c)
		if slices.ContainsFunc(res.Services, func(o *Service) bool { return o.Name == s.Name }) {
			res.unmapped(s.Name, "name", "two containers map to service %s: import them into different projects", s.Name)
			continue
		}
		res.Services = append(res.Services, s)
		for n := range c.Networks {
			nets[n] = n != "bridge" // the default bridge has no DNS: nothing reached it by name
		}
	}
	for _, n := range sortedKeys(nets) {
		if !nets[n] {
			continue
		}
		res.unmapped("", "networks."+n, "the services join orca-%s instead: containers left on %s do not reach them", res.Project, n)
	}
	res.Secrets = ss.values
	res.SortFindings()
	return res
}

func containerService(res *Result, ss *secretSet, c Container) *Service {
	name := c.Name
	if svc := c.Labels["com.docker.compose.service"]; svc != "" {
		name = svc
	}
	s := &Service{Name: Name(name), Image: c.Image}
	if s.Name != name {
		res.unmapped(s.Name, "name", "renamed from %q (names are [a-z0-9-])", name)
	}
	s.Env = ss.env(s.Name, subtractEnv(c.Env, c.ImageEnv))
	switch {
	case !slices.Equal(c.Entrypoint, c.ImageEntrypoint):
		res.unmapped(s.Name, "entrypoint", "%q: service.toml has no entrypoint: the image's runs, with command as its arguments", c.Entrypoint)
		s.Command = escapeAll(c.Cmd)
	case !slices.Equal(c.Cmd, c.ImageCmd):
		s.Command = escapeAll(c.Cmd)
	}
	containerMounts(res, s, c.Mounts)
	containerNetworks(res, s, c)
	ports := slices.Clone(c.ExposedPorts)
	for _, p := range c.Ports {
		if !slices.Contains(ports, p.ContainerPort) {
			ports = append(ports, p.ContainerPort)
		}
		if p.HostPort == "" {
			continue
		}
		spec := fmt.Sprintf("%s:%d", p.HostPort, p.ContainerPort)
		if p.HostIP != "" && p.HostIP != "0.0.0.0" && p.HostIP != "::" {
			spec = p.HostIP + ":" + spec
		}
		if p.Protocol == "udp" {
			spec += "/udp"
		}
		if !slices.Contains(s.ExtraPorts, spec) {
			s.ExtraPorts = append(s.ExtraPorts, spec)
		}
	}
	s.RestartPolicy = restartPolicy(res, s.Name, c.RestartPolicy)
	s.Resources = resources(res, s.Name, c.MemoryBytes, float64(c.NanoCPUs)/1e9)
	labels := map[string]string{}
	for k, v := range c.Labels {
		if iv, ok := c.ImageLabels[k]; !ok || iv != v {
			labels[k] = v
		}
	}
	copyLabels(res, s, labels)
	applyRoute(res, s, labels, ports)
	return s
}

// subtractEnv is env without the entries the image sets to the same value.
func subtractEnv(env, image []string) map[string]string {
	out := map[string]string{}
	for _, kv := range env {
		if slices.Contains(image, kv) {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

func containerMounts(res *Result, s *Service, mounts []ContainerMount) {
	for _, m := range mounts {
		switch {
		case m.Type == "volume" && anonymousVolume(m.Name):
			res.unmapped(s.Name, "mounts", "%s: an anonymous volume (the image's VOLUME); name it to keep its data", m.Target)
		case m.Type == "volume":
			s.Volumes = append(s.Volumes, Volume{Source: m.Name, Target: m.Target})
		case m.Type == "bind":
			s.Mounts = append(s.Mounts, Mount{Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
		default:
			res.unmapped(s.Name, "mounts", "%s: a %s mount is not supported by service.toml", m.Target, m.Type)
		}
	}
}

func containerNetworks(res *Result, s *Service, c Container) {
	switch c.NetworkMode {
	case "host", "none":
		res.unmapped(s.Name, "network_mode", "%s: orca-sync runs every service on its project's network", c.NetworkMode)
	}
	for _, n := range sortedKeys(c.Networks) {
		for _, a := range c.Networks[n] {
			if a == s.Name || a == c.Name || slices.Contains(s.Aliases, a) {
				continue
			}
			if !nameRE.MatchString(a) {
				res.unmapped(s.Name, "networks."+n+".aliases", "%q is not a service.toml name ([a-z0-9-])", a)
				continue
			}
			s.Aliases = append(s.Aliases, a)
		}
	}
}

// anonymousVolume: a name Docker generated (64 hex digits).
func anonymousVolume(name string) bool {
	return len(name) == 64 && strings.Trim(name, "0123456789abcdef") == ""
}
