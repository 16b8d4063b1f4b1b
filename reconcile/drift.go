package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/files"
	"github.com/orca-sync/orca-sync/notify"
)

// driftChecker finds changes made to containers by hand and remembers, between
// ticks, what it found and what it inspected
// (docs/guides/drift-and-healing.md).
type driftChecker struct {
	inspector apply.ConfigInspector // nil: no field-deep checks
	files     *files.Store          // nil: snapshots are not checked
	notifier  Notifier
	metrics   *Metrics
	log       *slog.Logger

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

func newDriftChecker(inspector apply.ConfigInspector, store *files.Store, notifier Notifier, metrics *Metrics, log *slog.Logger) *driftChecker {
	return &driftChecker{inspector: inspector, files: store, notifier: notifier, metrics: metrics, log: log,
		cache: map[string]*diff.Live{}, firstSeen: map[string]time.Time{}, deployed: map[string]deployment{}}
}

// ran records that a service runs fully at its desired spec.
func (s *driftChecker) ran(svc *diff.Service) {
	s.mu.Lock()
	s.deployed[svc.Key()] = deployment{hash: svc.Hash, replicas: svc.Replicas}
	s.mu.Unlock()
}

// deployedOf is what a service was last seen fully running with.
func (s *driftChecker) deployedOf(key string) (deployment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.deployed[key]
	return d, ok
}

// evict forgets a container's cached inspect.
func (s *driftChecker) evict(id string) {
	s.mu.Lock()
	delete(s.cache, id)
	s.mu.Unlock()
}

// inspectAll returns the inspect of every live container, from the cache or
// with one InspectConfig each, and drops the cache entries of containers
// that are gone.
func (s *driftChecker) inspectAll(ctx context.Context, live []diff.Container) map[string]*diff.Live {
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
	if s.inspector == nil {
		return out
	}
	// After a restart every container is new to the cache: the inspects
	// run a few at a time, as the engine answers them in parallel.
	var wg sync.WaitGroup
	work := make(chan diff.Container)
	for range min(inspectWorkers, len(todo)) {
		wg.Go(func() {
			for c := range work {
				s.inspectOne(ctx, c, out)
			}
		})
	}
	for _, c := range todo {
		work <- c
	}
	close(work)
	wg.Wait()
	return out
}

// inspectWorkers bounds the inspects in flight of one drift check.
const inspectWorkers = 8

// inspectOne inspects c into the cache and out.
func (s *driftChecker) inspectOne(ctx context.Context, c diff.Container, out map[string]*diff.Live) {
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	li, err := s.inspector.InspectConfig(ictx, c.ID)
	cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inspects++
	if err != nil {
		s.log.Debug("drift: inspect", "container", c.Name, "error", err)
		return
	}
	s.cache[c.ID] = &li
	out[c.ID] = &li
}

// modifiedMounts finds the snapshots of live containers changed on the host
// by hand. Unlike an inspect it is never cached (a file changes without a
// Docker event), but the hasher's cache makes it a stat of each file.
func (s *driftChecker) modifiedMounts(ctx context.Context, live []diff.Container) map[string][]string {
	if s.files == nil {
		return nil
	}
	out := map[string][]string{}
	for _, c := range live {
		for _, b := range c.Binds {
			if s.files.Modified(ctx, b.Source) {
				out[c.ID] = append(out[c.ID], b.Target)
			}
		}
	}
	return out
}

// driftInput is what a drift check compares; it is read, never called.
type driftInput struct {
	desired   *config.Desired
	commit    string
	services  []diff.Service
	live      []diff.Container
	inspected map[string]*diff.Live
	modified  map[string][]string
	unhealthy map[string]string
	node      string
}

// driftCheck is a check's outcome: the findings, how many services drifted,
// and the event to send when the finding set is new.
type driftCheck struct {
	findings []diff.Finding
	drifted  int
	news     *notify.Event
}

// check computes the drift report of the input, keeps first-seen times, and
// decides whether the finding set is news. It makes no call.
func (s *driftChecker) check(in driftInput) driftCheck {
	// By service, so the check stays linear in the containers.
	byKey := map[string][]diff.Container{}
	for _, c := range in.live {
		byKey[c.Project+"/"+c.Service] = append(byKey[c.Project+"/"+c.Service], c)
	}
	for i := range in.services {
		if fullyRunning(&in.services[i], byKey[in.services[i].Key()], in.node) {
			s.ran(&in.services[i])
		}
	}
	fs := diff.Drift(s.driftOf(in))
	policies := map[string]string{}
	for _, svc := range in.services {
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
		drifted[fs[i].ServiceKey()] = config.DriftCorrect
		if p, ok := policies[fs[i].ServiceKey()]; ok {
			drifted[fs[i].ServiceKey()] = p
		}
	}
	s.firstSeen = seen
	s.report = DriftReport{Commit: in.commit, Checked: now, Findings: fs, Policies: drifted}
	set := findingSet(fs)
	isNew := set != "" && set != s.lastSet
	s.lastSet = set
	s.mu.Unlock()
	out := driftCheck{findings: fs, drifted: len(drifted)}
	if isNew {
		out.news = &notify.Event{Kind: notify.DriftDetected, Cluster: in.desired.Cluster.Name, Node: in.node, Commit: in.commit,
			Services: slices.Sorted(maps.Keys(drifted)), Reason: summary(fs, 3), Time: now,
			// Findings carry no secret value: a secret shows as "changed (secret)".
			Details: map[string]any{"findings": findingLines(fs)}, Key: set}
	}
	return out
}

// driftOf is diff's input for a check.
func (s *driftChecker) driftOf(in driftInput) diff.DriftInput {
	deployed := map[string]int{}
	for _, svc := range in.services {
		if dep, ok := s.deployedOf(svc.Key()); ok && dep.hash == svc.Hash {
			deployed[svc.Key()] = dep.replicas
		}
	}
	out := diff.DriftInput{Desired: in.services, Live: in.live, Inspected: in.inspected, Deployed: deployed,
		Unhealthy: in.unhealthy, ModifiedMounts: in.modified, Node: in.node, NameNode: diff.NameNode(in.desired, in.node)}
	if d := in.desired; d.Secrets != nil {
		// Values stay here: a finding says only that a secret changed.
		out.Expand = func(project, v string) (string, error) {
			return config.Expand(v, func(name string) (string, error) { return d.Secrets.Value(project, name) })
		}
	}
	return out
}

// announce sets the drifted-services gauge and sends a new finding set once.
func (s *driftChecker) announce(c driftCheck) {
	s.metrics.drifted(c.drifted)
	if c.news == nil {
		return
	}
	s.log.Warn("drift detected", "findings", len(c.findings), "services", c.drifted, "summary", summary(c.findings, 5))
	s.notifier.Notify(*c.news)
}

// fullyRunning reports, from live (all containers, or those of svc), whether
// every replica 1..replicas of svc serves at
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

// driftRepair starts the reason of a change that only replaces containers
// changed by hand; such repairs count towards the flap limit (healer.decide).
const driftRepair = "drift: "

// applyPolicy adjusts the plan to each service's drift policy: warn holds
// every change git did not ask for; correct also replaces the containers
// whose config was changed by hand. It returns what each service will
// repair.
func (s *driftChecker) applyPolicy(plan *diff.Plan, fs []diff.Finding) map[string][]string {
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
			if !s.gitChanged(c) {
				c.Action = diff.ActionNone
				c.Reason = fmt.Sprintf("drift = \"warn\": %d finding(s) reported, not repaired", len(found))
			}
			continue
		}
		n := replaceModified(c, found)
		if n > 0 && (c.Action == diff.ActionNone || c.Action == diff.ActionHeal || c.Action == diff.ActionScale) {
			c.Action, c.Reason = diff.ActionUpdate, fmt.Sprintf("%s%d container(s) changed by hand", driftRepair, n)
		}
		if c.Action != diff.ActionNone {
			repaired[c.Key()] = findingLines(found)
		}
	}
	return repaired
}

// replaceModified marks the containers of c changed by hand for
// replacement and returns how many there are.
func replaceModified(c *diff.Change, found []diff.Finding) int {
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
	return len(modified)
}

// gitChanged reports whether a change comes from git rather than from
// drift: a container orca-sync made from another spec is live (a stray
// without a readable spec label is drift, not a reason to roll), or git
// changed the replica count the service last ran with.
func (s *driftChecker) gitChanged(c *diff.Change) bool {
	if dep, ok := s.deployedOf(c.Key()); ok && dep.hash == c.Desired.Hash && dep.replicas != c.Desired.Replicas {
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

// lastReport is the newest drift report.
func (s *driftChecker) lastReport() DriftReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.report
}

func (s *driftChecker) inspectCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inspects
}

// Drift checks for drift now, against the last valid checkout, and returns
// the report. It costs one list call plus an inspect of each container not
// seen before.
func (l *Loop) Drift(ctx context.Context) (DriftReport, error) {
	v := l.last.view()
	if v.desired == nil {
		return DriftReport{}, errors.New("no valid checkout yet")
	}
	if v.syncing {
		rep := l.drift.lastReport()
		rep.Syncing = true
		return rep, nil
	}
	pl := l.planner
	pl.ListTimeout = 10 * time.Second
	live, err := pl.List(ctx, v.desired)
	if err != nil {
		rep := l.drift.lastReport()
		rep.Error = dockerReason(err)
		return rep, nil
	}
	l.last.noteLive(live.All)
	// A canary's containers are not drift: the check sees the stable set.
	in := driftInput{desired: v.desired, commit: v.commit.SHA, services: pl.Desire(ctx, v.desired, nil),
		live: live.Stable, inspected: l.drift.inspectAll(ctx, live.Stable), modified: l.drift.modifiedMounts(ctx, live.Stable), unhealthy: l.heal.failing(), node: pl.NodeOf(v.desired)}
	l.drift.announce(l.drift.check(in))
	return l.drift.lastReport(), nil
}

// Inspects is how many container inspects drift checks have made.
func (l *Loop) Inspects() int { return l.drift.inspectCount() }
