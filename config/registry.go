package config

import (
	"strings"
)

// dockerHubHost is how [[registry]] and the credentials lookup name Docker
// Hub, whatever an image reference or a Docker config calls it.
const dockerHubHost = "docker.io"

// RegistryHost normalises a registry host as image references and Docker
// configs write it: Docker Hub's names ("docker.io", "index.docker.io",
// "registry-1.docker.io", "https://index.docker.io/v1/") become "docker.io";
// any other host is lower-cased, without a scheme or a trailing path.
func RegistryHost(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://")
	if i := strings.IndexByte(h, '/'); i >= 0 {
		h = h[:i]
	}
	switch h {
	case "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return dockerHubHost
	}
	return h
}

// validateRegistries checks [[registry]]: a host as image references write
// it, each once, with a username and a password.
func validateRegistries(c *Cluster, sink errorSink) {
	seen := map[string]bool{}
	for i := range c.Registries {
		r := &c.Registries[i]
		raw := r.Host
		switch {
		case raw == "":
			sink.at("registry", i, "host", "registry host is required, as image references name it (e.g. registry.example.com:5000, or docker.io for Docker Hub)")
		case strings.Contains(raw, "${"):
			sink.at("registry", i, "host", "registry host cannot come from a secret: it decides which pulls get the credentials")
		case strings.Contains(strings.TrimPrefix(strings.TrimPrefix(raw, "https://"), "http://"), "/") && RegistryHost(raw) != dockerHubHost,
			strings.ContainsAny(raw, " @"):
			sink.at("registry", i, "host", "registry host %q: give the host (and port) only, as image references name it, e.g. registry.example.com:5000", raw)
		default:
			r.Host = RegistryHost(raw)
			if seen[r.Host] {
				sink.at("registry", i, "host", "registry host %q is given twice", r.Host)
			}
			seen[r.Host] = true
		}
		if r.Username == "" {
			sink.at("registry", i, "username", "registry %q: username is required", raw)
		}
		if r.Password == "" {
			sink.at("registry", i, "password", "registry %q: password is required (normally ${secrets.NAME})", raw)
		}
	}
}
