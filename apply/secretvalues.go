package apply

import (
	"fmt"
	"slices"
	"sync"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/redact"
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
// it gave, to redact what the container writes of it.
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

// redactor replaces, in what the container writes, the secret values it was
// given.
func (l *secretLookup) redactor() *redact.Redactor { return redact.New(l.given) }

// Redactor returns the redactor of what a container of project created from
// spec (its orca.spec label) writes: for each secret, the value its label's
// hash names when this process saw it, else the checkout d's (a container
// restored after a restart got that one). The logs API wraps each
// container's stream in its Writer (docs/guides/secrets.md).
func (a *Applier) Redactor(d *config.Desired, project string, spec diff.Spec) *redact.Redactor {
	values := make(map[string]string, len(spec.Secrets))
	for name, hash := range spec.Secrets {
		if v, ok := a.seen.value(hash); ok {
			values[name] = v
		} else if d != nil && d.Secrets != nil {
			if v, err := d.Secrets.Value(project, name); err == nil {
				values[name] = v
			}
		}
	}
	return redact.New(values)
}
