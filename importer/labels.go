package importer

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// route is what a reverse proxy's labels say about a service: its hosts,
// path prefixes and upstream port. Keys are the labels it read.
type route struct {
	domains []string
	routes  []string
	port    int
	keys    map[string]bool
	// problem says why the labels name no single route ("" when they do,
	// or name none).
	problem string
}

var (
	traefikRule    = regexp.MustCompile(`^traefik\.http\.routers\.([^.]+)\.rule$`)
	traefikPort    = regexp.MustCompile(`^traefik\.http\.services\.[^.]+\.loadbalancer\.server\.port$`)
	ruleTerm       = regexp.MustCompile(`^(Host|PathPrefix)\((.*)\)$`)
	ruleArg        = regexp.MustCompile("^\\s*[`\"]([^`\"]+)[`\"]\\s*$")
	caddyUpstreams = regexp.MustCompile(`^\{\{\s*upstreams\s+(?:https?\s+)?(\d+)\s*\}\}$`)
)

// proxyRoute reads Traefik's router rules and service port, or
// caddy-docker-proxy's caddy and caddy.reverse_proxy labels. Only plain
// Host(...) && PathPrefix(...) rules map: anything else is left to the
// unmapped list.
func proxyRoute(labels map[string]string) route {
	r := route{keys: map[string]bool{}}
	if strings.EqualFold(labels["traefik.enable"], "false") {
		return r
	}
	var rules []string
	for _, k := range sortedKeys(labels) {
		v := labels[k]
		switch {
		case traefikRule.MatchString(k):
			rules = append(rules, v)
			r.keys[k] = true
		case traefikPort.MatchString(k):
			p, err := strconv.Atoi(v)
			if err != nil || r.port != 0 && r.port != p {
				r.problem = "the Traefik services name more than one port"
			}
			r.port = p
			r.keys[k] = true
		case k == "traefik.enable":
			r.keys[k] = true
		}
	}
	for _, rule := range rules {
		hosts, paths, err := parseRule(rule)
		if err != nil {
			r.problem = fmt.Sprintf("router rule %q: %v", rule, err)
			continue
		}
		for _, h := range hosts {
			if !slices.Contains(r.domains, h) {
				r.domains = append(r.domains, h)
			}
		}
		if r.routes != nil && !slices.Equal(r.routes, paths) {
			r.problem = "the Traefik routers route different paths"
		}
		r.routes = paths
	}
	if len(rules) == 0 {
		caddyRoute(labels, &r)
	}
	return r
}

func caddyRoute(labels map[string]string, r *route) {
	site, ok := labels["caddy"]
	if !ok {
		return
	}
	r.keys["caddy"] = true
	for _, h := range strings.FieldsFunc(site, func(c rune) bool { return c == ',' || c == ' ' }) {
		h = strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://")
		if strings.ContainsAny(h, ":/{") {
			r.problem = fmt.Sprintf("caddy site %q is not a plain host name", site)
			return
		}
		r.domains = append(r.domains, strings.ToLower(h))
	}
	if up, ok := labels["caddy.reverse_proxy"]; ok {
		r.keys["caddy.reverse_proxy"] = true
		m := caddyUpstreams.FindStringSubmatch(strings.TrimSpace(up))
		if m == nil {
			r.problem = fmt.Sprintf("caddy.reverse_proxy %q is not {{upstreams PORT}}", up)
			return
		}
		r.port, _ = strconv.Atoi(m[1])
	}
}

// parseRule reads `Host(a[, b]) [&& PathPrefix(p[, q])]`.
func parseRule(rule string) (hosts, paths []string, err error) {
	if strings.Contains(rule, "||") || strings.Contains(rule, "!") {
		return nil, nil, fmt.Errorf("only Host and PathPrefix joined by && map")
	}
	for _, term := range strings.Split(rule, "&&") {
		m := ruleTerm.FindStringSubmatch(strings.TrimSpace(term))
		if m == nil {
			return nil, nil, fmt.Errorf("%q: only Host and PathPrefix map", strings.TrimSpace(term))
		}
		for _, a := range strings.Split(m[2], ",") {
			am := ruleArg.FindStringSubmatch(a)
			if am == nil {
				return nil, nil, fmt.Errorf("%q: not a quoted value", a)
			}
			if m[1] == "Host" {
				hosts = append(hosts, strings.ToLower(am[1]))
			} else {
				paths = append(paths, am[1])
			}
		}
	}
	if len(hosts) == 0 {
		return nil, nil, fmt.Errorf("no Host")
	}
	return hosts, paths, nil
}

// isProxyLabel is a label of Traefik or Caddy, which orca-sync's proxy
// replaces: never copied to the containers.
func isProxyLabel(k string) bool {
	return strings.HasPrefix(k, "traefik.") || k == "caddy" || strings.HasPrefix(k, "caddy.") || strings.HasPrefix(k, "caddy_")
}

// applyRoute sets the service's domain, routes and port from the proxy
// labels, or says why not. ports are the container ports the service
// publishes or exposes, a fallback for the upstream port.
func applyRoute(res *Result, s *Service, labels map[string]string, ports []int) {
	r := proxyRoute(labels)
	for _, k := range sortedKeys(labels) {
		if isProxyLabel(k) && !r.keys[k] {
			res.unmapped(s.Name, "labels."+k, "a reverse proxy's label; orca-sync's proxy routes by domain, routes and port only")
		}
	}
	if len(r.domains) == 0 {
		if r.problem != "" {
			res.unmapped(s.Name, "labels", "%s", r.problem)
		}
		return
	}
	if r.problem != "" {
		res.unmapped(s.Name, "labels", "no domain set: %s", r.problem)
		return
	}
	port := r.port
	if port == 0 && len(ports) == 1 {
		port = ports[0]
	}
	if port == 0 {
		res.unmapped(s.Name, "labels", "domain %s: the labels name no upstream port and the service exposes %d ports; set port and domain by hand", strings.Join(r.domains, ", "), len(ports))
		return
	}
	s.Port = port
	if len(r.domains) == 1 {
		s.Domain = r.domains[0]
	} else {
		s.Domains = r.domains
	}
	s.Routes = r.routes
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
