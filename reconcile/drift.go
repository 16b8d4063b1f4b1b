package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/notify"
)

// ConfigInspector reads a container's actual config. A runtime that has it
// (the Docker adapter) makes drift checks field-deep; without it only state,
// missing and extra containers are found.
type ConfigInspector interface {
	InspectConfig(ctx context.Context, id string) (diff.Live, error)
}

// DriftReport is what GET /api/v1/drift and `orca-sync drift` show.
type DriftReport struct {
	Commit  string    `json:"commit,omitempty"`
	Checked time.Time `json:"checked,omitzero"`
	// Syncing is set when a sync is under way: the report is then the one
	// its start computed, as a check mid-rollout would take containers
	// being started or retired for drift.
	Syncing  bool           `json:"syncing,omitempty"`
	Error    string         `json:"error,omitempty"`
	Findings []diff.Finding `json:"findings"`
	// Policies maps each drifted service to its drift policy.
	Policies map[string]string `json:"policies,omitempty"`
}

// driftState is what drift checks remember between ticks.
type driftState struct {
	mu sync.Mutex
	// cache holds inspects by container ID: a container's config cannot
	// change without a new ID, except through the few Docker events
	// (update, network connect/disconnect) that evict it.
	cache     map[string]*diff.Live
	firstSeen map[string]time.Time
	// deployed is, per service, the spec and replica count it was last seen
	// fully running with: only those replicas can be removed by hand, and a
	// different count in git is a change git asked for.
	deployed map[string]deployment
	report   DriftReport
	// lastSet is the digest of the last finding set announced.
	lastSet string
	// inspects counts InspectConfig calls, for tests and the bound.
	inspects int
}

type deployment struct {
	hash     string
	replicas int
}

func newDriftState() *driftState {
	return &driftState{cache: map[string]*diff.Live{}, firstSeen: map[string]time.Time{}, deployed: map[string]deployment{}}
}

// ran records that a service runs fully at its desired spec.
func (s *driftState) ran(svc *diff.Service) {
	s.mu.Lock()
	s.deployed[svc.Key()] = deployment{hash: svc.Hash, replicas: svc.Replicas}
	s.mu.Unlock()
}

// deployedOf is what a service was last seen fully running with.
func (s *driftState) deployedOf(key string) (deployment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.deployed[key]
	return d, ok
}

// evict forgets a container's cached inspect.
func (s *driftState) evict(id string) {
	s.mu.Lock()
	delete(s.cache, id)
	s.mu.Unlock()
}

// inspectAll returns the inspect of every live container, from the cache or
// with one InspectConfig each, and drops the cache entries of containers
// that are gone.
func (l *Loop) inspectAll(ctx context.Context, live []diff.Container) map[string]*diff.Live {
	s := l.drift
	out := map[string]*diff.Live{}
	var todo []diff.Container
	s.mu.Lock()
	keep := map[string]*diff.Live{}
	for _, c := range live {
		if li, ok := s.cache[c.ID]; ok {
			keep[c.ID], out[c.ID] = li, li
		} else {
			todo = append(todo, c)
		}
	}
	s.cache = keep
	s.mu.Unlock()
	ins, ok := l.opts.Runtime.(ConfigInspector)
	if !ok {
		return out
	}
	for _, c := range todo {
		ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
		li, err := ins.InspectConfig(ictx, c.ID)
		cancel()
		s.mu.Lock()
		s.inspects++
		s.mu.Unlock()
		if err != nil {
			l.log.Debug("drift: inspect", "container", c.Name, "error", err)
			continue
		}
		s.mu.Lock()
		s.cache[c.ID] = &li
		s.mu.Unlock()
		out[c.ID] = &li
	}
	return out
}

// checkDrift computes the drift report of live against desired, keeps
// first-seen times, and announces a new finding set once.
func (l *Loop) checkDrift(ctx context.Context, d *config.Desired, commit string, desired []diff.Service, live []diff.Container) []diff.Finding {
	s := l.drift
	node := apply.NodeName(l.opts.Node, d)
	for i := range desired {
		if fullyRunning(&desired[i], live, node) {
			s.ran(&desired[i])
		}
	}
	deployed := map[string]int{}
	for _, svc := range desired {
		if dep, ok := s.deployedOf(svc.Key()); ok && dep.hash == svc.Hash {
			deployed[svc.Key()] = dep.replicas
		}
	}
	in := diff.DriftInput{
		Desired: desired, Live: live, Inspected: l.inspectAll(ctx, live), Deployed: deployed,
		Unhealthy: l.heal.failing(), Node: node,
	}
	if d.Secrets != nil {
		// Values stay here: a finding says only that a secret changed.
		in.Expand = func(project, v string) (string, error) {
			return config.Expand(v, func(name string) (string, error) { return d.Secrets.Value(project, name) })
		}
	}
	fs := diff.Drift(in)
	policies := map[string]string{}
	for _, svc := range desired {
		policies[svc.Key()] = svc.Drift
	}
	now := time.Now()
	s.mu.Lock()
	seen := map[string]time.Time{}
	drifted := map[string]string{}
	for i := range fs {
		k := fs[i].Key()
		first, ok := s.firstSeen[k]
		if !ok {
			first = now
		}
		seen[k], fs[i].FirstSeen = first, first
		if p, ok := policies[fs[i].ServiceKey()]; ok {
			drifted[fs[i].ServiceKey()] = p
		} else {
			drifted[fs[i].ServiceKey()] = config.DriftCorrect
		}
	}
	s.firstSeen = seen
	s.report = DriftReport{Commit: commit, Checked: now, Findings: fs, Policies: drifted}
	set := findingSet(fs)
	announce := set != "" && set != s.lastSet
	s.lastSet = set
	s.mu.Unlock()
	l.opts.Metrics.drifted(len(drifted))
	if announce {
		l.log.Warn("drift detected", "findings", len(fs), "services", len(drifted), "summary", summary(fs, 5))
		e := notify.Event{Kind: notify.DriftDetected, Cluster: d.Cluster.Name, Node: node, Commit: commit,
			Services: slices.Sorted(maps.Keys(drifted)), Reason: summary(fs, 3), Time: now,
			// Findings carry no secret value: a secret shows as "changed (secret)".
			Details: map[string]any{"findings": findingLines(fs)}, Key: set}
		l.opts.Notifier.Notify(e)
	}
	return fs
}

// fullyRunning reports whether every replica 1..replicas of svc serves at
// its desired spec, and nothing else of it runs.
func fullyRunning(svc *diff.Service, live []diff.Container, node string) bool {
	n := 0
	for _, c := range live {
		if c.Project != svc.Project || c.Service != svc.Name || !diff.OwnNode(c, node) {
			continue
		}
		if c.Hash != svc.Hash || !c.Serving() || c.Index < 1 || c.Index > svc.Replicas {
			return false
		}
		n++
	}
	return n == svc.Replicas
}

// findingSet is a digest of the findings' keys (no values), "" for none.
func findingSet(fs []diff.Finding) string {
	if len(fs) == 0 {
		return ""
	}
	h := sha256.New()
	for _, f := range fs {
		h.Write([]byte(f.Key() + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func summary(fs []diff.Finding, n int) string {
	var s []string
	for i, f := range fs {
		if i == n {
			s = append(s, fmt.Sprintf("and %d more", len(fs)-n))
			break
		}
		s = append(s, f.Service+": "+f.String())
	}
	return strings.Join(s, "; ")
}

// applyDriftPolicy adjusts the plan to each service's drift policy: warn
// holds every change git did not ask for; correct also replaces the
// containers whose config was changed by hand. It returns what each service
// will repair.
// driftRepair starts the reason of a change that only replaces containers
// changed by hand; such repairs count towards the flap limit (selfHeal).
const driftRepair = "drift: "

func (l *Loop) applyDriftPolicy(plan *diff.Plan, fs []diff.Finding) map[string][]string {
	by := diff.ServicesOf(fs)
	repaired := map[string][]string{}
	for i := range plan.Changes {
		c := &plan.Changes[i]
		found := by[c.Key()]
		if len(found) == 0 || c.Desired == nil {
			if len(found) > 0 && c.Action == diff.ActionRemove {
				repaired[c.Key()] = findingLines(found)
			}
			continue
		}
		if c.Desired.Drift == config.DriftWarn {
			if !l.gitChanged(c) {
				c.Action = diff.ActionNone
				c.Reason = fmt.Sprintf("drift = \"warn\": %d finding(s) reported, not repaired", len(found))
			}
			continue
		}
		modified := map[string]bool{}
		for _, f := range found {
			if f.Kind == diff.KindModified {
				modified[f.ID] = true
			}
		}
		for j := range c.Containers {
			if modified[c.Containers[j].ID] {
				c.Containers[j].Replace = true
			}
		}
		if len(modified) > 0 && (c.Action == diff.ActionNone || c.Action == diff.ActionHeal || c.Action == diff.ActionScale) {
			c.Action, c.Reason = diff.ActionUpdate, fmt.Sprintf("%s%d container(s) changed by hand", driftRepair, len(modified))
		}
		if c.Action != diff.ActionNone {
			repaired[c.Key()] = findingLines(found)
		}
	}
	return repaired
}

// gitChanged reports whether a change comes from git rather than from
// drift: a container orca-sync made from another spec is live (a stray
// without a readable spec label is drift, not a reason to roll), or git
// changed the replica count the service last ran with.
func (l *Loop) gitChanged(c *diff.Change) bool {
	if dep, ok := l.drift.deployedOf(c.Key()); ok && dep.hash == c.Desired.Hash && dep.replicas != c.Desired.Replicas {
		return true
	}
	for _, ctr := range c.Containers {
		if ctr.Hash != "" && ctr.Spec != nil && ctr.Hash != c.Desired.Hash {
			return true
		}
	}
	return false
}

func findingLines(fs []diff.Finding) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.String()
	}
	return out
}

// Drift checks for drift now, against the last valid checkout, and returns
// the report. It costs one list call plus an inspect of each container not
// seen before.
func (l *Loop) Drift(ctx context.Context) (DriftReport, error) {
	l.mu.Lock()
	d, commit, syncing := l.last.desired, l.last.commit.SHA, l.syncing
	l.mu.Unlock()
	if d == nil {
		return DriftReport{}, errors.New("no valid checkout yet")
	}
	if syncing {
		rep := l.lastReport()
		rep.Syncing = true
		return rep, nil
	}
	pl := l.planner
	pl.ListTimeout = 10 * time.Second
	live, err := pl.List(ctx, d)
	if err != nil {
		l.drift.mu.Lock()
		rep := l.drift.report
		l.drift.mu.Unlock()
		rep.Error = dockerReason(err)
		return rep, nil
	}
	l.noteLive(live.All)
	// A canary's containers are not drift: the check sees the stable set.
	l.checkDrift(ctx, d, commit, pl.Desire(ctx, d, false), live.Stable)
	l.drift.mu.Lock()
	defer l.drift.mu.Unlock()
	return l.drift.report, nil
}

// lastReport is the newest drift report.
func (l *Loop) lastReport() DriftReport {
	l.drift.mu.Lock()
	defer l.drift.mu.Unlock()
	return l.drift.report
}

// Inspects is how many container inspects drift checks have made.
func (l *Loop) Inspects() int {
	l.drift.mu.Lock()
	defer l.drift.mu.Unlock()
	return l.drift.inspects
}
