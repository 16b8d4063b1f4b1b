package apply

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

// secretMemory maps each keyed hash of a secret (as in a spec's Secrets) to
// its value, for every checkout this process has applied. An undone rollout
// restores an old container from the spec in its labels; after a rotation the
// checkout only has the new value, and restoring with it would start the old
// container with a value its hash label does not name — the very value that
// may have broken the rollout. Values stay in memory only, for the life of
// the process: one entry per distinct value seen, a handful per rotation.
type secretMemory struct {
	mu     sync.Mutex
	byHash map[string]string
}

func newSecretMemory() *secretMemory { return &secretMemory{byHash: map[string]string{}} }

// Remember keeps the secret values d's services use, so that a later failed
// rollout can restore containers created from d with them. Apply calls it;
// a sync with nothing to apply should too.
func (a *Applier) Remember(d *config.Desired) {
	if d == nil || d.Secrets == nil {
		return
	}
	a.seen.mu.Lock()
	defer a.seen.mu.Unlock()
	for _, s := range d.Services() {
		for _, name := range s.SecretRefs {
			if v, err := d.Secrets.Value(s.Project, name); err == nil {
				a.seen.byHash[d.Secrets.Hash(s.Project, name)] = v
			}
		}
	}
}

func (m *secretMemory) value(hash string) (string, bool) {
	if m == nil || hash == "" {
		return "", false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.byHash[hash]
	return v, ok
}

// secretLookup resolves the ${secrets.NAME} of one container and keeps what
// it gave, to redact the container's log lines of it.
type secretLookup struct {
	resolve func(name string) (string, error)
	given   map[string]string // name → value
	// unknown are the names a restore had to give the current value, the
	// one its label names being unknown to this process.
	unknown []string
}

// current resolves as the checkout being applied has it.
func (j job) current(project string) *secretLookup {
	return &secretLookup{resolve: func(name string) (string, error) {
		if j.secrets == nil {
			return "", fmt.Errorf("${secrets.%s}: the secrets of this checkout were not resolved", name)
		}
		return j.secrets.Value(project, name)
	}}
}

// asLabelled resolves as spec (an old container's label) names the values:
// the checkout's value when its hash matches, else the remembered one, else
// — the process started after that value was replaced — the checkout's,
// noted in unknown.
func (j job) asLabelled(project string, spec diff.Spec) *secretLookup {
	l := j.current(project)
	now := l.resolve
	l.resolve = func(name string) (string, error) {
		want, ok := spec.Secrets[name]
		if !ok || j.secrets == nil || j.secrets.Hash(project, name) == want {
			return now(name)
		}
		if v, ok := j.seen.value(want); ok {
			return v, nil
		}
		if !slices.Contains(l.unknown, name) {
			l.unknown = append(l.unknown, name)
		}
		return now(name)
	}
	return l
}

func (l *secretLookup) expand(v string) (string, error) {
	return config.Expand(v, func(name string) (string, error) {
		val, err := l.resolve(name)
		if err != nil {
			return "", err
		}
		if l.given == nil {
			l.given = map[string]string{}
		}
		l.given[name] = val
		return val, nil
	})
}

// minRedact is the shortest value redacted from log lines: a shorter one is
// no secret worth hiding, and replacing it would blank common words.
const minRedact = 4

// redact replaces, in the log lines and reason of a NotReadyError, every
// secret value the container was given with ${secrets.NAME}: those lines go
// to the sync history, status, API and notifications, and an app that fails
// on a bad secret often prints it (a DSN with its password).
func (l *secretLookup) redact(err error) error {
	var nre *NotReadyError
	if !errors.As(err, &nre) || len(l.given) == 0 {
		return err
	}
	// Longest first, so a value that contains another is replaced whole.
	names := make([]string, 0, len(l.given))
	for n := range l.given {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return len(l.given[b]) - len(l.given[a]) })
	for _, n := range names {
		if v := l.given[n]; len(v) >= minRedact {
			nre.Logs = strings.ReplaceAll(nre.Logs, v, "${secrets."+n+"}")
			nre.Reason = strings.ReplaceAll(nre.Reason, v, "${secrets."+n+"}")
		}
	}
	return err
}
