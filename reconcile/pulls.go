package reconcile

import (
	"context"

	"github.com/orca-sync/orca-sync/diff"
)

// pullFailure is a refused pull of a service's desired spec. It is not
// pinned (docs/guides/private-registries.md): status shows the service
// Failed with it until a sync pulls the image, and every sync tries again.
type pullFailure struct {
	hash   string
	reason string
}

// notePulls replaces the refused pulls status shows with those of this
// sync: the pull_policy = "always" pulls of the images step and the applies
// that failed to pull. A sync that stopped before its images step leaves
// the last ones standing.
func (s *syncer) notePulls(_ context.Context, r *run) error {
	if r.services == nil {
		return nil
	}
	fails := map[string]pullFailure{}
	for _, svc := range r.services {
		if svc.PullErr != nil {
			fails[svc.Key()] = pullFailure{hash: svc.Hash, reason: svc.PullErr.Error()}
		}
	}
	for _, res := range r.results {
		if !res.PullFailed {
			continue
		}
		if h := hashOf(r.plan, res); h != "" {
			fails[res.Project+"/"+res.Service] = pullFailure{hash: h, reason: res.Error}
		}
	}
	s.last.notePullFailures(fails)
	return nil
}

func (s *lastSync) notePullFailures(f map[string]pullFailure) {
	s.mu.Lock()
	s.pulls = f
	s.mu.Unlock()
}

func (s *lastSync) pullFailure(key string) (pullFailure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.pulls[key]
	return f, ok
}

// withImage adds what status tells of a service's image: the registry
// digest its containers of the desired spec run (else the one its image
// reference resolves to here), and a refused pull of that spec.
func withImage(ss ServiceStatus, c diff.Change, last *lastSync) ServiceStatus {
	ss.Digest = c.Digest
	for _, ctr := range c.Containers {
		if ctr.Hash == c.Desired.Hash && ctr.Digest != "" {
			ss.Digest = ctr.Digest
			break
		}
	}
	if f, ok := last.pullFailure(c.Key()); ok && f.hash == c.Desired.Hash && ss.Sync != SyncFailed {
		ss.Sync, ss.Reason = SyncFailed, f.reason
	}
	return ss
}
