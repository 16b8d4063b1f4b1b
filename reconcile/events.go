package reconcile

import (
	"context"
	"sync"
	"time"

	"github.com/orca-sync/orca-sync/apply"
)

// eventSettle is how long after a die/oom/unhealthy event the sync starts.
const eventSettle = 300 * time.Millisecond

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
	if apply.IsOneOff(e.Role) {
		return // hooks and jobs end by design; their runner watches them
	}
	switch e.Action {
	case "update", "connect", "disconnect":
		l.drift.evict(e.ContainerID)
		if e.Action == "update" && e.Managed && (e.Node == "" || e.Node == l.Node()) {
			l.Trigger("event", false)
		}
	// Docker 20.10 sends die before a stopped container lists as exited
	// (docker stop: kill, die, then stop), so stop and destroy signal too.
	case "die", "oom", "stop", "destroy", "pause", "health_status: unhealthy":
		node := l.Node()
		if e.Managed && (e.Node == "" || e.Node == node) && !l.own.mine(e.ContainerID) {
			l.log.Info("container event", "action", e.Action, "container", e.ContainerID[:min(12, len(e.ContainerID))])
			if e.Action == "die" || e.Action == "oom" || e.Action == "stop" {
				l.signals.noteDied(e.ContainerID)
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
