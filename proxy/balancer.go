package proxy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orca-sync/orca-sync/routing"
)

// Target is one ready container behind a service.
type Target struct {
	ID   string // container ID
	Addr string // ip:port on the project network
	Role string // orca.role: routing.RoleStable or routing.RoleCanary

	metrics *roleMetrics

	inflight atomic.Int64
	// removed is set before the target leaves its balancer, so a request
	// that picked it in the meantime notices and picks again (see pick).
	removed atomic.Bool
}

func newTarget(svc *Service, id, addr, role string) *Target {
	if role == "" {
		role = "stable"
	}
	return &Target{ID: id, Addr: addr, Role: role, metrics: svc.metrics.role(role)}
}

// drain waits until the target's in-flight requests have finished, or d has
// passed, or ctx ends. It reports how many were still running.
func (t *Target) drain(ctx context.Context, d time.Duration) int64 {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		n := t.inflight.Load()
		if n == 0 || !time.Now().Before(deadline) {
			return n
		}
		select {
		case <-ctx.Done():
			return t.inflight.Load()
		case <-tick.C:
		}
	}
}

// LoadBalancer spreads a service's requests over its targets, round-robin.
// Readers take the target list with one atomic load; writers copy it. A
// weighted split between roles (canary) fits in pick: choose the role
// first, then round-robin inside it.
type LoadBalancer struct {
	mu      sync.Mutex // serialises writers
	targets atomic.Pointer[[]*Target]
	next    atomic.Uint64
	// weight is the percent of requests the canary role gets while both
	// roles have targets; canary targets get nothing at 0 unless they are
	// all there is. split counts requests for the weighted choice.
	weight atomic.Int32
	split  atomic.Uint64
	cnext  atomic.Uint64 // round-robin among canaries while split
}

func newLoadBalancer() *LoadBalancer {
	lb := &LoadBalancer{}
	lb.targets.Store(&[]*Target{})
	return lb
}

// pick returns a target with its in-flight count already raised, or nil when
// none is ready. The caller must call release.
func (lb *LoadBalancer) pick() *Target {
	t, _ := lb.pickFor("")
	return t
}

// pickFor is pick for a client that prefers a role ("" none): it gets that
// role while the role has targets. split reports whether the choice was
// between both roles (a canary runs beside the stable set).
func (lb *LoadBalancer) pickFor(prefer string) (t *Target, split bool) {
	for range 4 {
		ts := *lb.targets.Load()
		if len(ts) == 0 {
			return nil, false
		}
		t, split = lb.choose(ts, prefer)
		t.inflight.Add(1)
		// RouteOut sets removed, then reads inflight; we raised inflight,
		// then read removed: one of us sees the other.
		if !t.removed.Load() {
			return t, split
		}
		t.inflight.Add(-1)
	}
	return nil, false
}

func release(t *Target) { t.inflight.Add(-1) }

// pickOther is pickFor for a retry: a target other than not (nil: any).
// When the preferred role offers only not, another role's target will do:
// a request that reaches the other side beats one that fails.
func (lb *LoadBalancer) pickOther(prefer string, not *Target) (*Target, bool) {
	for i := range 4 {
		if i == 2 {
			prefer = ""
		}
		t, split := lb.pickFor(prefer)
		if t == nil || t != not {
			return t, split
		}
		release(t)
	}
	return nil, false
}

// choose picks the role first — canary for exactly weight of every 100
// requests, spread evenly (the share never drifts, whatever the traffic) —
// then round-robin among that role's targets.
func (lb *LoadBalancer) choose(ts []*Target, prefer string) (*Target, bool) {
	canaries := 0
	for _, t := range ts {
		if t.Role == routing.RoleCanary {
			canaries++
		}
	}
	if canaries == 0 || canaries == len(ts) {
		return ts[lb.next.Add(1)%uint64(len(ts))], false
	}
	var toCanary bool
	switch prefer {
	case routing.RoleCanary:
		toCanary = true
	case routing.RoleStable:
	default:
		w := uint64(max(0, min(100, lb.weight.Load())))
		m := lb.split.Add(1)
		toCanary = m*w/100 != (m-1)*w/100
	}
	count, rr := len(ts)-canaries, &lb.next
	if toCanary {
		count, rr = canaries, &lb.cnext
	}
	k := int(rr.Add(1) % uint64(count))
	for _, t := range ts {
		if (t.Role == routing.RoleCanary) == toCanary {
			if k == 0 {
				return t, true
			}
			k--
		}
	}
	return ts[0], true
}

// setWeight sets the canary's percent of requests.
func (lb *LoadBalancer) setWeight(percent int) { lb.weight.Store(int32(percent)) }

// Targets returns the current targets.
func (lb *LoadBalancer) Targets() []*Target { return *lb.targets.Load() }

// add puts t in (or keeps the target of the same container).
func (lb *LoadBalancer) add(t *Target) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	old := *lb.targets.Load()
	out := make([]*Target, 0, len(old)+1)
	for _, o := range old {
		if o.ID == t.ID {
			if o.Addr == t.Addr {
				return
			}
			o.removed.Store(true)
			continue
		}
		out = append(out, o)
	}
	out = append(out, t)
	lb.targets.Store(&out)
}

// remove takes the target of container id out and returns it, or nil.
func (lb *LoadBalancer) remove(id string) *Target {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	old := *lb.targets.Load()
	var gone *Target
	out := make([]*Target, 0, len(old))
	for _, o := range old {
		if o.ID == id {
			gone = o
			continue
		}
		out = append(out, o)
	}
	if gone != nil {
		gone.removed.Store(true)
		lb.targets.Store(&out)
	}
	return gone
}

// replace sets the whole target list. Targets of containers already present
// are kept (with their in-flight counts); the others are marked removed.
func (lb *LoadBalancer) replace(want []*Target) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	old := map[string]*Target{}
	for _, o := range *lb.targets.Load() {
		old[o.ID] = o
	}
	out := make([]*Target, 0, len(want))
	for _, w := range want {
		if o := old[w.ID]; o != nil && o.Addr == w.Addr {
			out = append(out, o)
			delete(old, w.ID)
			continue
		}
		out = append(out, w)
	}
	for _, o := range old {
		o.removed.Store(true)
	}
	lb.targets.Store(&out)
}

// has reports whether container id is a target, and its address.
func (lb *LoadBalancer) has(id string) (string, bool) {
	for _, t := range *lb.targets.Load() {
		if t.ID == id {
			return t.Addr, true
		}
	}
	return "", false
}
