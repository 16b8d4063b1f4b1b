package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/notify"
)

// Flap suppression (SPEC section 6): more than flapLimit replacements of a
// service within flapWindow mark it Degraded instead of looping.
const (
	flapLimit  = 5
	flapWindow = 5 * time.Minute
	// livenessTick is how often the prober looks for probes that are due;
	// each service's interval_secs paces its own probes.
	livenessTick = 250 * time.Millisecond
	// eventSettle is how long after a die/oom/unhealthy event the sync starts.
	eventSettle = 300 * time.Millisecond
)

// healer runs liveness probes and remembers replacements per service.
type healer struct {
	mu     sync.Mutex
	probes map[string]*probeState // by container ID
	// replaced holds the times of recent replacements per service key.
	replaced map[string][]time.Time
	degraded map[string]degradation
	// lastErr is the last probe error per service key, for status.
	lastErr map[string]string
}

type probeState struct {
	key      string
	hash     string
	next     time.Time
	failures int
	lastErr  string
	inflight bool
	// askedAt is when a replacement was asked for; the probe rests until
	// then plus askPatience (the sync that would replace it may have failed).
	askedAt time.Time
}

// askPatience is how long a container whose replacement was asked for goes
// unprobed before it may be asked for again.
const askPatience = 30 * time.Second

type degradation struct {
	hash   string
	since  time.Time
	reason string
}

func newHealer() *healer {
	return &healer{probes: map[string]*probeState{}, replaced: map[string][]time.Time{},
		degraded: map[string]degradation{}, lastErr: map[string]string{}}
}

// failing returns the containers whose liveness probe is failing now.
func (h *healer) failing() map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]string{}
	for id, p := range h.probes {
		if p.failures > 0 {
			out[id] = p.lastErr
		}
	}
	return out
}

// allow records a replacement of a service at hash, unless it would be more
// than flapLimit within flapWindow; then the service becomes Degraded, and
// allow reports true for the transition so it is announced once.
func (h *healer) allow(key, hash, why string, now time.Time) (ok, degradedNow bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d, isDeg := h.degraded[key]; isDeg {
		if d.hash == hash {
			return false, false
		}
		delete(h.degraded, key) // git changed the service: start afresh
		delete(h.replaced, key)
	}
	var recent []time.Time
	for _, t := range h.replaced[key] {
		if now.Sub(t) < flapWindow {
			recent = append(recent, t)
		}
	}
	if len(recent) >= flapLimit {
		h.degraded[key] = degradation{hash: hash, since: now,
			reason: fmt.Sprintf("%d replacements within %s (last: %s); not replacing until git changes it or `orca-sync sync --retry`", len(recent), flapWindow, why)}
		h.replaced[key] = recent
		return false, true
	}
	h.replaced[key] = append(recent, now)
	return true, false
}

// degradedAt returns the degradation of a service at hash, if any.
func (h *healer) degradedAt(key, hash string) (degradation, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.degraded[key]
	return d, ok && d.hash == hash
}

// reset clears every Degraded mark and probe count (sync --retry), so
// failing containers are probed and replaced afresh.
func (h *healer) reset() {
	h.mu.Lock()
	h.degraded = map[string]degradation{}
	h.replaced = map[string][]time.Time{}
	for _, p := range h.probes {
		p.askedAt, p.failures = time.Time{}, 0
	}
	h.mu.Unlock()
}

// probeErr is the last liveness error of a service, "" when passing.
func (h *healer) probeErr(key string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastErr[key]
}

// RunLiveness probes the liveness of every running container of the last
// valid checkout at its service's interval, and asks for a replacement after
// failure_threshold failures in a row. It runs until ctx ends.
func (l *Loop) RunLiveness(ctx context.Context) {
	t := time.NewTicker(livenessTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.probeDue(ctx)
		}
	}
}

func (l *Loop) probeDue(ctx context.Context) {
	l.mu.Lock()
	desired, live := l.last.services, l.last.live
	l.mu.Unlock()
	svcs := map[string]*diff.Service{}
	for _, s := range desired {
		if s.Liveness != nil {
			svcs[s.Key()] = &s
		}
	}
	h := l.heal
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	present := map[string]bool{}
	for _, c := range live {
		svc := svcs[c.Project+"/"+c.Service]
		if svc == nil || c.State != "running" || c.Hash != svc.Hash {
			continue
		}
		present[c.ID] = true
		p := h.probes[c.ID]
		if p == nil {
			// The first probe waits initial_delay_secs from when the prober
			// first sees the container, which is within a tick of its start.
			p = &probeState{key: svc.Key(), hash: svc.Hash, next: now.Add(svc.Liveness.InitialDelay)}
			h.probes[c.ID] = p
		}
		if p.inflight || now.Before(p.askedAt.Add(askPatience)) || now.Before(p.next) {
			continue
		}
		p.inflight = true
		go l.probeOne(ctx, svc, c, p)
	}
	for id, p := range h.probes {
		if !present[id] && !p.inflight {
			delete(h.probes, id)
		}
	}
}

func (l *Loop) probeOne(ctx context.Context, svc *diff.Service, c diff.Container, p *probeState) {
	lp := svc.Liveness
	err := l.applier.Probe(ctx, lp, svc, c.ID)
	h := l.heal
	h.mu.Lock()
	p.inflight = false
	p.next = time.Now().Add(lp.Interval)
	if errors.Is(err, apply.ErrNotProbed) {
		h.mu.Unlock()
		return // Docker did not answer: no verdict on the container
	}
	if err == nil {
		p.failures, p.lastErr = 0, ""
		h.lastErr[p.key] = ""
		h.mu.Unlock()
		return
	}
	p.failures++
	p.lastErr = "liveness probe: " + err.Error()
	h.lastErr[p.key] = p.lastErr
	dg, degraded := h.degraded[p.key]
	replace := p.failures >= lp.FailureThreshold && !(degraded && dg.hash == p.hash)
	if replace {
		p.askedAt = time.Now()
	}
	failures := p.failures
	h.mu.Unlock()
	l.log.Info("liveness probe failed", "service", svc.Key(), "container", c.Name, "failures", failures, "threshold", lp.FailureThreshold, "error", err)
	if replace {
		l.askReplace(c.ID, fmt.Sprintf("liveness failed %d times: %v", failures, err))
	}
}

// askReplace asks the next sync to replace a container, and signals it.
func (l *Loop) askReplace(id, why string) {
	l.mu.Lock()
	if l.pending.replace == nil {
		l.pending.replace = map[string]string{}
	}
	l.pending.replace[id] = why
	if l.pending.trigger == "" {
		l.pending.trigger, l.pending.since = "liveness", time.Now()
	}
	l.mu.Unlock()
	l.wake()
}

// selfHeal applies liveness replacements and flap suppression to the plan:
// containers asked for are replaced (start-first by the service's rolling
// strategy), and every replacement — liveness or a crashed container healed
// — counts towards the flap limit; a Degraded service is left alone.
func (l *Loop) selfHeal(r *run) {
	if r.pending.retry {
		l.heal.reset()
	}
	now := time.Now()
	for i := range r.plan.Changes {
		c := &r.plan.Changes[i]
		if c.Desired == nil {
			continue
		}
		key := c.Key()
		why := ""
		for j := range c.Containers {
			if reason, ok := r.pending.replace[c.Containers[j].ID]; ok && c.Containers[j].Hash == c.Desired.Hash {
				c.Containers[j].Replace, why = true, reason
			}
		}
		// Crash heals and repairs of hand-made changes count too: whatever
		// keeps undoing them would otherwise be fought at every tick.
		if why == "" && (c.Action == diff.ActionHeal && c.Broken > 0 || strings.HasPrefix(c.Reason, driftRepair)) {
			why = c.Reason
		}
		if why == "" {
			continue
		}
		if d, ok := l.heal.degradedAt(key, c.Desired.Hash); ok {
			c.Action, c.Reason = diff.ActionNone, "Degraded: "+d.reason
			continue
		}
		ok, degradedNow := l.heal.allow(key, c.Desired.Hash, why, now)
		if !ok {
			c.Action, c.Reason = diff.ActionNone, "Degraded: flap limit reached"
			if degradedNow {
				l.announceDegraded(r, c, why)
			}
			continue
		}
		if c.Action == diff.ActionNone || c.Action == diff.ActionScale {
			c.Action = diff.ActionUpdate
		}
		if c.Reason == "" {
			c.Reason = why
		}
	}
}

// degradedReason says why a service at hash is Degraded, if it is.
func (l *Loop) degradedReason(key, hash string) (string, bool) {
	d, ok := l.heal.degradedAt(key, hash)
	return d.reason, ok
}

// noteLive keeps the newest container list for the liveness prober.
func (l *Loop) noteLive(live []diff.Container) {
	l.mu.Lock()
	l.last.live = live
	l.mu.Unlock()
}

// EventSource is the runtime's event stream.
type EventSource interface {
	Events(ctx context.Context, fn func(apply.Event)) error
}

// RunEvents follows the runtime's events until ctx ends: a managed
// container that dies, runs out of memory or turns unhealthy signals a sync
// at once, and config changes without a new ID evict the drift cache. A
// broken stream (the daemon restarting) is reopened with backoff, and a sync
// then catches up on what was missed.
func (l *Loop) RunEvents(ctx context.Context, src EventSource) {
	backoff := time.Second
	for ctx.Err() == nil {
		start := time.Now()
		err := src.Events(ctx, l.onEvent)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		l.log.Warn("Docker event stream broken; reconnecting", "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
		l.Trigger("events-reconnect", false)
	}
}

func (l *Loop) onEvent(e apply.Event) {
	switch e.Action {
	case "update", "connect", "disconnect":
		l.drift.evict(e.ContainerID)
		if e.Action == "update" && e.Managed {
			l.Trigger("event", false)
		}
	// Docker 20.10 sends die before a stopped container lists as exited
	// (docker stop: kill, die, then stop), so stop and destroy signal too.
	case "die", "oom", "stop", "destroy", "pause", "health_status: unhealthy":
		node := apply.NodeName(l.opts.Node, l.lastDesired())
		if e.Managed && (e.Node == "" || e.Node == node) && !l.own.mine(e.ContainerID) {
			l.log.Info("container event", "action", e.Action, "container", e.ContainerID[:min(12, len(e.ContainerID))])
			if e.Action == "die" || e.Action == "oom" || e.Action == "stop" {
				l.noteDied(e.ContainerID)
			}
			// A short wait lets what comes with the event land first (a
			// `docker rm -f` dies, then is destroyed), so the drift check
			// sees the end state; bursts coalesce into one sync.
			time.AfterFunc(eventSettle, func() { l.Trigger("event", false) })
		}
	}
}

// ownStops remembers the containers the loop's own rollouts stopped or
// removed, so their die/stop/destroy events do not signal a sync (a sync
// after every rollout's retirements would also fetch git unasked).
type ownStops struct {
	apply.Runtime
	mu  sync.Mutex
	ids map[string]time.Time
}

// ownStopMemory is how long an own stop is remembered: its events come
// within seconds.
const ownStopMemory = time.Minute

func (o *ownStops) note(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	for k, t := range o.ids {
		if now.Sub(t) > ownStopMemory {
			delete(o.ids, k)
		}
	}
	o.ids[id] = now
}

// mine reports whether the loop itself stopped or removed container id.
func (o *ownStops) mine(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.ids[id]
	return ok
}

func (o *ownStops) Stop(ctx context.Context, id string, grace time.Duration) error {
	o.note(id)
	return o.Runtime.Stop(ctx, id, grace)
}

func (o *ownStops) Remove(ctx context.Context, id string) error {
	o.note(id)
	return o.Runtime.Remove(ctx, id)
}

// announceDegraded logs and notifies, once per transition, that a service
// hit the flap limit.
func (l *Loop) announceDegraded(r *run, c *diff.Change, why string) {
	key := c.Key()
	d, _ := l.heal.degradedAt(key, c.Desired.Hash)
	l.log.Error("service degraded: too many replacements; not replacing it any more", "service", key,
		"limit", flapLimit, "window", flapWindow, "last", why)
	l.opts.Notifier.Notify(notify.Event{Kind: notify.Degraded, Cluster: r.desired.Cluster.Name,
		Node: apply.NodeName(l.opts.Node, r.desired), Commit: r.commit.SHA, Subject: r.commit.Subject(),
		Services: []string{key}, Reason: d.reason, Time: time.Now(), Key: c.Desired.Hash,
		Details: map[string]any{"limit": flapLimit, "window_secs": int(flapWindow.Seconds()), "last": why}})
}

// noteDied remembers a container Docker reported dead, for the next sync.
func (l *Loop) noteDied(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending.died == nil {
		l.pending.died = map[string]bool{}
	}
	l.pending.died[id] = true
}

// confirmDied corrects the list for containers Docker reported dead but
// still lists as running: Docker 20.10 sends die before its container list
// (a view updated apart) says exited, while an inspect reads the container
// itself. One inspect per such event.
func (l *Loop) confirmDied(ctx context.Context, p pending, live []diff.Container) []diff.Container {
	for i := range live {
		c := &live[i]
		if !p.died[c.ID] || c.State != "running" {
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := l.opts.Runtime.Inspect(ictx, c.ID)
		cancel()
		if err == nil && !st.Running {
			c.State = st.Status
		}
	}
	return live
}
