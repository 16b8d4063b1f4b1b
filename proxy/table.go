package proxy

import (
	"net"
	"slices"
	"strings"
	"time"
)

// Service is one routed service: where it is reached and its targets.
type Service struct {
	Project, Name string
	Hosts         []string
	Routes        []string
	StripPrefix   bool
	Drain         time.Duration
	// Sticky: while a canary runs, a cookie keeps each client on one side.
	Sticky bool
	// CertFile and KeyFile, when set, are the service's own certificate.
	CertFile, KeyFile string

	lb      *LoadBalancer
	metrics *serviceMetrics
}

func (s *Service) key() string { return s.Project + "/" + s.Name }

// cookieName is the sticky cookie of the service.
func (s *Service) cookieName() string { return "orca-" + s.Project + "-" + s.Name }

// sameRouting reports whether s and o are reached the same way.
func (s *Service) sameRouting(o *Service) bool {
	return slices.Equal(s.Hosts, o.Hosts) && slices.Equal(s.Routes, o.Routes) &&
		s.StripPrefix == o.StripPrefix && s.Drain == o.Drain && s.Sticky == o.Sticky &&
		s.CertFile == o.CertFile && s.KeyFile == o.KeyFile
}

type route struct {
	prefix string
	svc    *Service
}

// table maps a host to its routes, longest prefix first. It is never changed
// once published: a change builds a new table and swaps it in.
type table struct {
	exact    map[string][]route
	wildcard map[string][]route // "example.com" for "*.example.com"
}

func buildTable(services map[string]*Service) *table {
	t := &table{exact: map[string][]route{}, wildcard: map[string][]route{}}
	for _, s := range services {
		for _, h := range s.Hosts {
			m, key := t.exact, h
			if rest, ok := strings.CutPrefix(h, "*."); ok {
				m, key = t.wildcard, rest
			}
			for _, p := range s.Routes {
				m[key] = append(m[key], route{prefix: cleanPrefix(p), svc: s})
			}
		}
	}
	for _, m := range []map[string][]route{t.exact, t.wildcard} {
		for _, rs := range m {
			slices.SortFunc(rs, func(a, b route) int { return len(b.prefix) - len(a.prefix) })
		}
	}
	return t
}

// lookup finds the routes of a host: an exact name first, then the wildcard
// of its parent domain.
func (t *table) lookup(host string) []route {
	if rs, ok := t.exact[host]; ok {
		return rs
	}
	if _, parent, ok := strings.Cut(host, "."); ok {
		return t.wildcard[parent]
	}
	return nil
}

// match returns the route whose prefix is the longest that matches path on a
// segment boundary ("/api" matches "/api" and "/api/x", not "/apix").
func match(rs []route, path string) (route, bool) {
	for _, r := range rs {
		if prefixMatches(r.prefix, path) {
			return r, true
		}
	}
	return route{}, false
}

func prefixMatches(prefix, path string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
}

// hostOnly lower-cases a Host header and drops its port.
func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}
