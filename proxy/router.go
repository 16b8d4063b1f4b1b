package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/routing"
)

// RouteIn adds a ready container to its service, creating the service's
// routes if they are new or changed. Services without a domain are ignored.
func (p *Proxy) RouteIn(svc *diff.Service, t routing.Target) {
	if svc == nil || len(svc.Domains) == 0 || t.Addr == "" {
		return
	}
	p.mu.Lock()
	s := p.upsertLocked(svc.Service, "")
	p.mu.Unlock()
	s.lb.add(newTarget(s, t.ContainerID, t.Addr, t.Role))
	p.log.Info("routed in", "service", s.key(), "container", short(t.ContainerID), "addr", t.Addr)
}

// RouteOut takes a container out of its service at once, then waits until
// its in-flight requests finish (up to the service's drain_secs) so that the
// caller can stop it.
func (p *Proxy) RouteOut(ctx context.Context, project, service string, t routing.Target) {
	key := project + "/" + service
	p.mu.Lock()
	s := p.services[key]
	if s == nil {
		s = p.leaving[key]
	}
	p.mu.Unlock()
	if s == nil {
		return
	}
	gone := s.lb.remove(t.ContainerID)
	if gone == nil {
		return
	}
	p.mu.Lock()
	if p.leaving[key] == s && len(s.lb.Targets()) == 0 {
		delete(p.leaving, key)
	}
	p.mu.Unlock()
	left := gone.drain(ctx, s.Drain)
	p.pool.closeIdle(gone.Addr)
	log := p.log.With("service", s.key(), "container", short(t.ContainerID))
	if left > 0 {
		log.Warn("routed out; drain_secs passed with requests still in flight", "in_flight", left, "drain", s.Drain)
		return
	}
	log.Info("routed out and drained")
}

// SetCanaryWeight sets the percent of a service's requests its canary
// targets get (0 when no canary runs). It may come before the service has
// routes: the weight waits for them, so a restarted orca-sync resumes a
// canary's split as soon as its containers are routed again.
func (p *Proxy) SetCanaryWeight(project, service string, percent int) {
	key := project + "/" + service
	p.mu.Lock()
	defer p.mu.Unlock()
	if percent <= 0 {
		delete(p.weights, key)
	} else {
		p.weights[key] = percent
	}
	if s := p.services[key]; s != nil {
		s.lb.setWeight(percent)
	}
}

// Sync rebuilds the whole table from the desired state and the live
// containers (level-triggered: after a restart, running containers are routed
// again; services gone from git lose their routes). Containers already routed
// keep their targets; new ones are inspected for their address. It also
// applies [proxy] and [acme] and starts the servers when the proxy is on. The
// error reports servers that could not start; the table is updated anyway.
func (p *Proxy) Sync(ctx context.Context, d *config.Desired, live []diff.Container, node string) error {
	if d == nil {
		return nil
	}
	st := newSettings(d.Cluster, p.opts.HTTPSAddr)
	p.settings.Store(st)
	byKey := map[string][]diff.Container{}
	for _, c := range live {
		if c.Node == node || c.Node == "" {
			byKey[c.Project+"/"+c.Service] = append(byKey[c.Project+"/"+c.Service], c)
		}
	}
	var certs []certSpec
	var managed []string
	want := map[string]bool{}
	republish := false
	for _, svc := range d.Services() {
		if len(svc.Domains) == 0 || svc.Port == 0 {
			continue
		}
		want[svc.Key()] = true
		p.mu.Lock()
		s, changed := p.upsertQuietLocked(svc, d.Root)
		republish = republish || changed
		p.mu.Unlock()
		s.lb.replace(p.liveTargets(ctx, s, svc, byKey[svc.Key()]))
		if s.CertFile != "" {
			certs = append(certs, certSpec{service: s.key(), cert: s.CertFile, key: s.KeyFile})
		} else {
			managed = append(managed, s.Hosts...)
		}
	}
	if republish { // once: a table per new service would make a restart O(n²)
		p.mu.Lock()
		p.table.Store(buildTable(p.services))
		p.mu.Unlock()
	}
	p.dropUnwanted(want, byKey)
	if !d.Cluster.Proxy.Enabled {
		return nil
	}
	wantTLS := d.Cluster.ACME.TLS != config.TLSOff || len(certs) > 0
	err := p.listen(d.Cluster.Proxy.HTTPPort, d.Cluster.Proxy.HTTPSPort, wantTLS)
	httpAddr, httpsAddr := p.Addrs()
	if _, port, perr := net.SplitHostPort(httpsAddr); perr == nil {
		// Redirects name the port HTTPS really listens on.
		st2 := *st
		st2.httpsPort, _ = strconv.Atoi(port)
		p.settings.Store(&st2)
	}
	p.tls.update(ctx, tlsUpdate{acme: d.Cluster.ACME, httpAddr: httpAddr, managed: managed, own: certs})
	return err
}

// dropUnwanted takes the services gone from the desired state out of the
// table. Their targets stay in a leaving service until apply's RouteOut
// drains them (the prune comes after this Sync), or until none of their
// containers is live any more or the service is back in git.
func (p *Proxy) dropUnwanted(want map[string]bool, live map[string][]diff.Container) {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := false
	for k, s := range p.services {
		if !want[k] {
			delete(p.services, k)
			p.leaving[k] = s
			changed = true
		}
	}
	if changed {
		p.table.Store(buildTable(p.services))
	}
	for k, s := range p.leaving {
		if want[k] || len(live[k]) == 0 {
			for _, t := range s.lb.Targets() {
				p.pool.closeIdle(t.Addr)
			}
			s.lb.replace(nil)
			delete(p.leaving, k)
		}
	}
}

// liveTargets are the serving containers of svc, by diff.Container.Serving:
// the rule the plan, status and apply use, so a rebuild never takes out a
// container that apply routed in and the planner counts as serving.
func (p *Proxy) liveTargets(ctx context.Context, s *Service, svc *config.Service, cs []diff.Container) []*Target {
	var out []*Target
	for _, c := range cs {
		if !c.Serving() {
			continue
		}
		addr, ok := s.lb.has(c.ID)
		switch {
		case c.Addr != "": // the engine says where the task is reached (Swarm)
			addr, ok = c.Addr, true
		case !ok && c.IPs[diff.NetworkName(svc.Project)] != "": // from the list: no inspect
			addr, ok = net.JoinHostPort(c.IPs[diff.NetworkName(svc.Project)], strconv.Itoa(svc.Port)), true
		}
		if !ok {
			ip, err := p.opts.IPs.ContainerIP(ctx, c.ID, diff.NetworkName(svc.Project))
			if err != nil || ip == "" {
				p.log.Warn("cannot route container: no address on the project network", "service", s.key(), "container", c.Name, "error", err)
				continue
			}
			addr = net.JoinHostPort(ip, strconv.Itoa(svc.Port))
		}
		out = append(out, newTarget(s, c.ID, addr, c.Role))
	}
	return out
}

// upsertLocked returns the Service for svc, creating it or updating how it is
// reached; the table is rebuilt when routing changed. p.mu must be held.
func (p *Proxy) upsertLocked(svc *config.Service, root string) *Service {
	s, changed := p.upsertQuietLocked(svc, root)
	if changed {
		p.table.Store(buildTable(p.services))
	}
	return s
}

// upsertQuietLocked is upsertLocked without publishing the table: it reports
// whether the routing changed, and the caller publishes. p.mu must be held.
func (p *Proxy) upsertQuietLocked(svc *config.Service, root string) (*Service, bool) {
	next := &Service{Project: svc.Project, Name: svc.Name, Hosts: svc.Domains, Routes: svc.Routes,
		StripPrefix: svc.StripPrefix, Drain: svc.Deploy.Drain, Sticky: svc.Deploy.Sticky,
		CertFile: resolve(root, svc.TLSCert), KeyFile: resolve(root, svc.TLSKey)}
	cur := p.services[next.key()]
	if cur == nil {
		next.lb = newLoadBalancer()
		next.lb.setWeight(p.weights[next.key()])
		next.metrics = p.metrics.forService(svc.Project, svc.Name)
		p.services[next.key()] = next
		return next, true
	}
	if root == "" { // RouteIn knows no checkout root: keep the files Sync set
		next.CertFile, next.KeyFile = cur.CertFile, cur.KeyFile
	}
	if cur.sameRouting(next) {
		return cur, false
	}
	// A new Service value, so the published table never changes under a
	// request; targets and figures carry over.
	next.lb, next.metrics = cur.lb, cur.metrics
	p.services[next.key()] = next
	return next, true
}

func resolve(root, path string) string {
	if path == "" || filepath.IsAbs(path) || root == "" {
		return path
	}
	return filepath.Join(root, filepath.FromSlash(path))
}

func newSettings(c config.Cluster, httpsAddr string) *settings {
	st := &settings{maxBody: c.Proxy.MaxBodyBytes, httpsPort: c.Proxy.HTTPSPort}
	if httpsAddr != "" {
		if _, port, err := net.SplitHostPort(httpsAddr); err == nil {
			st.httpsPort, _ = strconv.Atoi(port)
		}
	}
	for _, tp := range c.Proxy.TrustedProxies {
		if pfx, err := parsePrefix(tp); err == nil {
			st.trusted = append(st.trusted, pfx)
		}
	}
	return st
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if !a.IsValid() {
		return netip.Prefix{}, errors.New("invalid address")
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func short(id string) string { return id[:min(12, len(id))] }
