package reconcile

import (
	"sync"
	"time"
)

// pending is the work signals asked for since the last sync started.
type pending struct {
	trigger string
	since   time.Time // when the first signal arrived, for commit-to-ready
	retry   bool
	// explicit is set when a person or git asked (the API, a webhook, a
	// redeploy, the start): such a sync re-evaluates a stalled commit.
	explicit bool
	redeploy map[string]bool   // service keys to force-pull and replace
	refresh  map[string]bool   // service keys to re-pull, replaced if the image moved
	replace  map[string]string // container IDs to replace (liveness) → why
	died     map[string]bool   // container IDs Docker reported dead
}

// automaticTriggers are the syncs nobody asked for: they leave a stalled
// commit alone while the branch head stays on it.
var automaticTriggers = map[string]bool{
	"interval": true, "event": true, "events-reconnect": true, "liveness": true, "canary": true,
}

// signals collects what the next sync should do and wakes the loop. Its
// channel's buffer of one coalesces a burst of signals into one more sync.
type signals struct {
	mu sync.Mutex
	p  pending
	ch chan struct{}
}

func newSignals() *signals { return &signals{ch: make(chan struct{}, 1)} }

// C is readable when a signal is pending.
func (s *signals) C() <-chan struct{} { return s.ch }

func (s *signals) wake() {
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

// trigger asks for a sync now; retry also clears pins and flap marks.
func (s *signals) trigger(trigger string, retry bool) {
	s.mu.Lock()
	s.begin(trigger)
	s.p.retry = s.p.retry || retry
	s.mu.Unlock()
	s.wake()
}

// begin names the pending sync after its first signal; it needs s.mu.
func (s *signals) begin(trigger string) {
	if s.p.trigger == "" {
		s.p.trigger, s.p.since = trigger, time.Now()
	}
	s.p.explicit = s.p.explicit || !automaticTriggers[trigger]
}

// markService asks the next sync to redeploy or refresh a service.
func (s *signals) markService(key string, redeploy bool) {
	s.mu.Lock()
	m := &s.p.refresh
	trigger := "webhook"
	if redeploy {
		m, trigger = &s.p.redeploy, "api"
	}
	if *m == nil {
		*m = map[string]bool{}
	}
	(*m)[key] = true
	s.begin(trigger)
	s.mu.Unlock()
	s.wake()
}

// askReplace asks the next sync to replace a container, and signals it.
func (s *signals) askReplace(id, why string) {
	s.mu.Lock()
	if s.p.replace == nil {
		s.p.replace = map[string]string{}
	}
	s.p.replace[id] = why
	s.begin("liveness")
	s.mu.Unlock()
	s.wake()
}

// noteDied remembers a container Docker reported dead, for the next sync.
func (s *signals) noteDied(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p.died == nil {
		s.p.died = map[string]bool{}
	}
	s.p.died[id] = true
}

// take returns and clears what signals asked for. A non-empty trigger names
// the sync (the loop's own: start, interval).
func (s *signals) take(trigger string) pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.p
	s.p = pending{}
	if trigger != "" || p.trigger == "" {
		if p.trigger == "" {
			p.since = time.Now()
		}
		if trigger != "" {
			p.trigger = trigger
		}
	}
	p.explicit = p.explicit || !automaticTriggers[p.trigger]
	return p
}
