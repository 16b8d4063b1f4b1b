package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/notify"
)

// Flap suppression (docs/guides/drift-and-healing.md): more than flapLimit
// replacements of a service within flapWindow mark it Degraded instead of
// looping.
const (
	flapLimit  = 5
	flapWindow = 5 * time.Minute
	// livenessTick is how often the prober looks for probes that are due;
	// each service's interval_secs paces its own probes.
	livenessTick = 250 * time.Millisecond
)

// healer runs liveness probes, asks for the replacement of failing
// containers, and remembers replacements per service for flap suppression.
type healer struct {
	applier  *apply.Applier
	signals  *signals
	last     *lastSync
	notifier Notifier
	log      *slog.Logger

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

// degradedNews is a service that just reached the flap limit, for the
// announce step.
type degradedNews struct {
	key, why string
	event    notify.Event
}

func newHealer(applier *apply.Applier, sig *signals, last *lastSync, notifier Notifier, log *slog.Logger) *healer {
	return &healer{applier: applier, signals: sig, last: last, notifier: notifier, log: log,
		probes: map[string]*probeState{}, replaced: map[string][]time.Time{},
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
func (l *Loop) RunLiveness(ctx context.Context) { l.heal.run(ctx) }

func (h *healer) run(ctx context.Context) {
	t := time.NewTicker(livenessTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.probeDue(ctx)
		}
	}
}

func (h *healer) probeDue(ctx context.Context) {
	desired, live := h.last.probeView()
	svcs := map[string]*diff.Service{}
	for _, s := range desired {
		if s.Liveness != nil {
			svcs[s.Key()] = &s
		}
	}
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
		go h.probeOne(ctx, svc, c, p)
	}
	for id, p := range h.probes {
		if !present[id] && !p.inflight {
			delete(h.probes, id)
		}
	}
}

func (h *healer) probeOne(ctx context.Context, svc *diff.Service, c diff.Container, p *probeState) {
	lp := svc.Liveness
	err := h.applier.Probe(ctx, lp, svc, c.ID)
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
	h.log.Info("liveness probe failed", "service", svc.Key(), "container", c.Name, "failures", failures, "threshold", lp.FailureThreshold, "error", err)
	if replace {
		h.signals.askReplace(c.ID, fmt.Sprintf("liveness failed %d times: %v", failures, err))
	}
}

// decide applies liveness replacements and flap suppression to the plan:
// containers asked for are replaced (start-first by the service's rolling
// strategy), and every replacement — liveness or a crashed container healed
// — counts towards the flap limit; a Degraded service is left alone. It
// returns the services that just became Degraded, and makes no call.
func (h *healer) decide(r *run, node string, now time.Time) []degradedNews {
	if r.pending.retry {
		h.reset()
	}
	var news []degradedNews
	for i := range r.plan.Changes {
		c := &r.plan.Changes[i]
		why := replaceWhy(c, r.pending.replace)
		if why == "" {
			continue
		}
		if d, ok := h.degradedAt(c.Key(), c.Desired.Hash); ok {
			c.Action, c.Reason = diff.ActionNone, "Degraded: "+d.reason
			continue
		}
		ok, degradedNow := h.allow(c.Key(), c.Desired.Hash, why, now)
		if !ok {
			c.Action, c.Reason = diff.ActionNone, "Degraded: flap limit reached"
			if degradedNow {
				news = append(news, h.degradedNews(r, c, node, why, now))
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
	return news
}

// replaceWhy marks the containers of c a liveness probe asked to replace
// and says why c replaces containers, "" when it does not.
func replaceWhy(c *diff.Change, replace map[string]string) string {
	if c.Desired == nil {
		return ""
	}
	why := ""
	for j := range c.Containers {
		if reason, ok := replace[c.Containers[j].ID]; ok && c.Containers[j].Hash == c.Desired.Hash {
			c.Containers[j].Replace, why = true, reason
		}
	}
	// Crash heals and repairs of hand-made changes count too: whatever
	// keeps undoing them would otherwise be fought at every tick.
	if why == "" && (c.Action == diff.ActionHeal && c.Broken > 0 || strings.HasPrefix(c.Reason, driftRepair)) {
		why = c.Reason
	}
	return why
}

func (h *healer) degradedNews(r *run, c *diff.Change, node, why string, now time.Time) degradedNews {
	d, _ := h.degradedAt(c.Key(), c.Desired.Hash)
	return degradedNews{key: c.Key(), why: why, event: notify.Event{Kind: notify.Degraded, Cluster: r.desired.Cluster.Name,
		Node: node, Commit: r.commit.SHA, Subject: r.commit.Subject(),
		Services: []string{c.Key()}, Reason: d.reason, Time: now, Key: c.Desired.Hash,
		Details: map[string]any{"limit": flapLimit, "window_secs": int(flapWindow.Seconds()), "last": why}}}
}

// announce logs and notifies, once per transition, that a service hit the
// flap limit.
func (h *healer) announce(n degradedNews) {
	h.log.Error("service degraded: too many replacements; not replacing it any more", "service", n.key,
		"limit", flapLimit, "window", flapWindow, "last", n.why)
	h.notifier.Notify(n.event)
}

// withSelfHealing adds what drift checks and liveness probes know to a
// service's status.
func (h *healer) withSelfHealing(s ServiceStatus, c diff.Change, findings []diff.Finding) ServiceStatus {
	s.Drift, s.DriftPolicy = len(findings), c.Desired.Drift
	s.ProbeError = h.probeErr(c.Key())
	if d, ok := h.degradedAt(c.Key(), c.Desired.Hash); ok {
		s.Health, s.Reason = HealthDegraded, d.reason
		return s
	}
	if len(findings) > 0 && c.Desired.Drift == config.DriftWarn && s.Sync != SyncFailed {
		s.Sync = SyncOutOfSync
		s.Reason = fmt.Sprintf("drift = \"warn\": %s", summary(findings, 3))
	}
	return s
}
