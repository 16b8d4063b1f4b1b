package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/notify"
	"github.com/orca-sync/orca-sync/proxy"
	"github.com/orca-sync/orca-sync/state"
)

// A canary is driven by the loop, not by a goroutine of its own: the sync
// starts it (containers with role canary, ready and routed at the first
// step's weight) and returns at once; a ticker of the loop then judges the
// proxy's figures, moves through the steps and aborts or promotes. Every
// decision is written to state.db (namespace canary) before it is acted on,
// so a restarted orca-sync resumes the same step with the same containers.
// A promotion is an ordinary rolling update done by the next sync.

// canaryNamespace is the state.db namespace of canary records.
const canaryNamespace = "canary"

// canaryTick is how often the loop judges running canaries.
const canaryTick = 500 * time.Millisecond

// Canary phases.
const (
	phaseAnalysing = "analysing" // in a step; passes it once pause and min_requests are met
	phaseWaiting   = "waiting"   // every step passed, waiting for promote or abort
	phasePromoting = "promoting" // the next sync rolls the stable set to the canary's spec
)

// CanaryProxy is the proxy as canaries use it: the split and the figures.
type CanaryProxy interface {
	SetCanaryWeight(project, service string, percent int)
	Stats(project, service string) map[string]proxy.RoleStats
}

// canaryDriver runs canaries: the sync's canary step starts, holds or ends
// them, and its tick judges them between syncs. It owns the canary records
// in state.db, the figures' baselines and the operators' asks.
type canaryDriver struct {
	canaryDeps
	// wake makes the loop tick at once after an operator's ask.
	wake chan struct{}

	mu        sync.Mutex
	baselines map[string]baseline // service key -> start of the step's window
	asks      map[string]string   // service key -> "promote" | "abort"
}

// canaryDeps are what the canary driver works with.
type canaryDeps struct {
	proxy    CanaryProxy // nil: no canaries, a canary service rolls
	store    Store
	applier  *apply.Applier
	notifier Notifier
	log      *slog.Logger
	last     *lastSync
	node     string
	// promoted asks for the sync that rolls a promotion.
	promoted func()
}

func newCanaryDriver(d canaryDeps) *canaryDriver {
	return &canaryDriver{canaryDeps: d, wake: make(chan struct{}, 1),
		baselines: map[string]baseline{}, asks: map[string]string{}}
}

// canaryRecord is one service's canary in state.db.
type canaryRecord struct {
	Service     string    `json:"service"`
	Hash        string    `json:"spec_hash"`
	Revision    string    `json:"revision"`
	Containers  []string  `json:"containers"` // IDs, in start order
	Names       []string  `json:"names"`
	Step        int       `json:"step"` // index into the steps; len(steps) once all passed
	Weight      int       `json:"weight"`
	Phase       string    `json:"phase"`
	Started     time.Time `json:"started"`
	StepStarted time.Time `json:"step_started"`
	// Counted are this step's figures as of the last save, so a restarted
	// process goes on counting from them.
	Counted stepCounts `json:"counted"`
}

type stepCounts struct {
	CanaryRequests uint64 `json:"canary_requests"`
	CanaryErrors   uint64 `json:"canary_errors"`
	StableRequests uint64 `json:"stable_requests"`
	StableErrors   uint64 `json:"stable_errors"`
}

// canarySteps are a service's steps; without steps, one of canary_weight
// that passes once min_requests reached the canary.
func canarySteps(d config.Deploy) []config.CanaryStep {
	if len(d.Steps) > 0 {
		return d.Steps
	}
	return []config.CanaryStep{{Weight: d.CanaryWeight}}
}

func (cn *canaryDriver) records() map[string]canaryRecord {
	out := map[string]canaryRecord{}
	keys, err := cn.store.Keys(canaryNamespace)
	if err != nil {
		cn.log.Error("read canary state", "error", err)
		return out
	}
	for _, k := range keys {
		var rec canaryRecord
		if ok, err := cn.store.Get(canaryNamespace, k, &rec); err != nil || !ok {
			cn.log.Error("read canary state", "service", k, "error", err)
			continue
		}
		out[k] = rec
	}
	return out
}

func (cn *canaryDriver) save(rec canaryRecord) {
	if err := cn.store.Put(canaryNamespace, rec.Service, rec); err != nil {
		cn.log.Error("save canary state", "service", rec.Service, "error", err)
	}
}

// restoreWeights gives the proxy the split of every canary in state.db, before
// the first sync routes their containers again.
func (cn *canaryDriver) restoreWeights() {
	if cn.proxy == nil {
		return
	}
	for key, rec := range cn.records() {
		p, s := splitKey(key)
		cn.proxy.SetCanaryWeight(p, s, rec.Weight)
		cn.log.Info("resuming canary", "service", key, "step", rec.Step+1, "weight", rec.Weight, "phase", rec.Phase)
	}
}

// canaryStep starts, supersedes, aborts or holds the canaries of the plan's
// services. A change it takes over becomes ActionNone; a promotion stays an
// update, which applyStep rolls.
func (cn *canaryDriver) step(ctx context.Context, r *run) {
	if cn.proxy == nil {
		return
	}
	recs := cn.records()
	for i := range r.plan.Changes {
		c := &r.plan.Changes[i]
		key := c.Key()
		rec, has := recs[key]
		delete(recs, key)
		isCanary := c.Desired != nil && c.Desired.Deploy.Strategy == config.StrategyCanary
		wantsCanary := isCanary && c.Action == diff.ActionUpdate && hasOtherSpec(c)
		switch {
		case has && !isCanary:
			cn.abortCanary(ctx, rec, r.live.Canaries[key], "the service is no longer a canary in git", false)
		case has && rec.Hash != c.Desired.Hash:
			reason := "superseded by commit " + short(r.commit.SHA)
			if !wantsCanary {
				reason = "reverted: git wants the stable spec again"
			}
			cn.abortCanary(ctx, rec, r.live.Canaries[key], reason, false)
			if wantsCanary {
				cn.startCanary(ctx, r, c)
			}
		case has && rec.Phase == phasePromoting && c.Action == diff.ActionNone:
			cn.finishPromotion(ctx, rec) // the stable set already runs the new spec (a crash after the roll)
		case has && rec.Phase == phasePromoting:
			c.Reason = apply.ReasonPromotion // its pre_deploy ran before the canary started
			r.promoting = append(r.promoting, rec)
		case has:
			if gone := missingCanary(rec, r.live.Canaries[key]); gone != "" {
				cn.abortCanary(ctx, rec, r.live.Canaries[key], "canary container "+gone+" is not running", true)
				continue
			}
			c.Action, c.Reason = diff.ActionNone, fmt.Sprintf("canary in progress: %s", canaryWaits(rec, c.Desired.Service, cn.canaryRequests(rec)))
		case wantsCanary && adoptable(r.live.Canaries[key], c.Desired.Hash):
			cn.adoptCanary(c, r.live.Canaries[key])
			c.Action, c.Reason = diff.ActionNone, "canary adopted from its containers' labels"
		case wantsCanary:
			cn.retireStray(ctx, c.Project, c.Service, r.live.Canaries[key])
			cn.startCanary(ctx, r, c)
		case len(r.live.Canaries[key]) > 0:
			cn.retireStray(ctx, c.Project, c.Service, r.live.Canaries[key])
		}
	}
	for _, rec := range recs { // services gone from the plan altogether
		cn.abortCanary(ctx, rec, nil, "the service is gone from git", false)
	}
}

// hasOtherSpec reports whether the update brings a new spec (a redeploy of
// the same spec rolls without a canary).
func hasOtherSpec(c *diff.Change) bool {
	for _, ctr := range c.Containers {
		if ctr.Hash != c.Desired.Hash {
			return true
		}
	}
	return false
}

func missingCanary(rec canaryRecord, live []diff.Container) string {
	for i, id := range rec.Containers {
		found := false
		for _, c := range live {
			if c.ID == id && c.Serving() {
				found = true
			}
		}
		if !found {
			return rec.Names[i]
		}
	}
	return ""
}

func adoptable(live []diff.Container, hash string) bool {
	if len(live) == 0 {
		return false
	}
	for _, c := range live {
		if c.Hash != hash || !c.Serving() {
			return false
		}
	}
	return true
}

// adoptCanary rebuilds a lost record (state.db gone) from the containers'
// labels: the canary restarts its first step with the containers it has.
func (cn *canaryDriver) adoptCanary(c *diff.Change, live []diff.Container) {
	rec := canaryRecord{Service: c.Key(), Hash: c.Desired.Hash, Revision: live[0].Revision, Phase: phaseAnalysing,
		Started: time.Now(), StepStarted: time.Now(), Weight: canarySteps(c.Desired.Deploy)[0].Weight}
	for _, ctr := range live {
		rec.Containers, rec.Names = append(rec.Containers, ctr.ID), append(rec.Names, ctr.Name)
	}
	cn.save(rec)
	cn.proxy.SetCanaryWeight(c.Project, c.Service, rec.Weight)
	cn.log.Warn("canary state was lost; adopted its containers at the first step", "service", c.Key())
}

func (cn *canaryDriver) retireStray(ctx context.Context, project, service string, cs []diff.Container) {
	if len(cs) == 0 {
		return
	}
	if err := cn.applier.Retire(ctx, project, service, cs); err != nil {
		cn.log.Error("remove stray canary containers", "service", project+"/"+service, "error", err)
	}
}

// startCanary starts the canary of c and records it, or pins c's spec when
// its containers do not become ready.
func (cn *canaryDriver) startCanary(ctx context.Context, r *run, c *diff.Change) {
	res, started := cn.applier.StartCanary(ctx, r.desired, *c, r.commit.SHA)
	r.canaryResults = append(r.canaryResults, res)
	c.Action = diff.ActionNone
	if res.Failed() {
		c.Reason = res.Error
		if !res.PullFailed { // a refused pull is retried at the next sync
			cn.pin(c.Key(), c.Desired.Hash, res.Error)
		}
		return
	}
	step := canarySteps(c.Desired.Deploy)[0]
	rec := canaryRecord{Service: c.Key(), Hash: c.Desired.Hash, Revision: r.commit.SHA, Phase: phaseAnalysing,
		Started: time.Now(), StepStarted: time.Now(), Weight: step.Weight}
	for _, ctr := range started {
		rec.Containers, rec.Names = append(rec.Containers, ctr.ID), append(rec.Names, ctr.Name)
	}
	cn.save(rec)
	cn.proxy.SetCanaryWeight(c.Project, c.Service, rec.Weight)
	cn.resetBaseline(c.Key())
	c.Reason = "canary started"
	cn.event(notify.CanaryStarted, rec, fmt.Sprintf("canary at %d%% (%d containers)", rec.Weight, len(started)), nil)
}

// abortCanary routes the canary out (draining it), removes its containers,
// forgets its record and, for a failed canary, pins its spec.
func (cn *canaryDriver) abortCanary(ctx context.Context, rec canaryRecord, live []diff.Container, reason string, pin bool) {
	p, s := splitKey(rec.Service)
	cn.proxy.SetCanaryWeight(p, s, 0)
	cs := live
	if cs == nil {
		for i, id := range rec.Containers {
			cs = append(cs, diff.Container{ID: id, Name: rec.Names[i], Project: p, Service: s})
		}
	}
	if err := cn.applier.Retire(context.WithoutCancel(ctx), p, s, cs); err != nil {
		cn.log.Error("remove canary containers", "service", rec.Service, "error", err)
	}
	if err := cn.store.Delete(canaryNamespace, rec.Service); err != nil {
		cn.log.Error("forget canary state", "service", rec.Service, "error", err)
	}
	if pin {
		cn.pin(rec.Service, rec.Hash, reason)
		cn.recordAbort(rec, reason, cs)
	}
	cn.log.Warn("canary aborted", "service", rec.Service, "reason", reason)
	cn.event(notify.CanaryAborted, rec, reason, nil)
	cn.forgetBaseline(rec.Service)
}

// recordAbort puts a failed canary in the history, as the failed rollout it
// is (it ends between syncs, so no sync record tells of it).
func (cn *canaryDriver) recordAbort(rec canaryRecord, reason string, removed []diff.Container) {
	now := time.Now()
	p, s := splitKey(rec.Service)
	sr := state.ServiceResult{Project: p, Service: s, Action: string(diff.ActionUpdate), Error: reason, Duration: now.Sub(rec.Started)}
	for _, c := range removed {
		sr.Removed = append(sr.Removed, c.Name)
	}
	hr := state.SyncRecord{Commit: rec.Revision, Trigger: "canary", Started: rec.Started, Finished: now,
		Result: ResultFailed, Error: rec.Service + ": " + reason, Plan: "canary of " + rec.Service, Services: []state.ServiceResult{sr}}
	if _, err := cn.store.AddSync(hr); err != nil {
		cn.log.Error("record canary abort in history", "service", rec.Service, "error", err)
	}
}

func (cn *canaryDriver) pin(service, hash, reason string) {
	if err := cn.store.Pin(state.Pin{Service: service, Hash: hash, Reason: firstLine(reason), Since: time.Now()}); err != nil {
		cn.log.Error("pin failed rollout", "service", service, "error", err)
	}
}

// canaryAfter finishes the promotions the sync rolled: the canary containers
// go once the stable set runs the new spec. A failed promotion was undone
// and pinned by applyStep; its canary goes too. A sync that stopped before
// applying leaves the promotion to the next one.
func (cn *canaryDriver) after(ctx context.Context, r *run) {
	for _, rec := range r.promoting {
		for _, res := range r.results {
			if res.Project+"/"+res.Service != rec.Service {
				continue
			}
			if res.Failed() {
				cn.abortCanary(ctx, rec, nil, "promotion failed: "+firstLine(res.Error), false)
			} else {
				cn.finishPromotion(ctx, rec)
			}
		}
	}
}

// finishPromotion removes the canary containers of a promoted canary.
func (cn *canaryDriver) finishPromotion(ctx context.Context, rec canaryRecord) {
	p, s := splitKey(rec.Service)
	cs := make([]diff.Container, len(rec.Containers))
	for i, id := range rec.Containers {
		cs[i] = diff.Container{ID: id, Name: rec.Names[i], Project: p, Service: s}
	}
	cn.proxy.SetCanaryWeight(p, s, 0)
	if err := cn.applier.Retire(context.WithoutCancel(ctx), p, s, cs); err != nil {
		cn.log.Error("remove promoted canary", "service", rec.Service, "error", err)
		return
	}
	if err := cn.store.Delete(canaryNamespace, rec.Service); err != nil {
		cn.log.Error("forget canary state", "service", rec.Service, "error", err)
	}
	cn.log.Info("canary promoted", "service", rec.Service)
	cn.event(notify.CanaryPromoted, rec, "promoted: the stable set runs the new spec", nil)
	cn.forgetBaseline(rec.Service)
}

func (cn *canaryDriver) event(kind notify.Kind, rec canaryRecord, reason string, details map[string]any) {
	if details == nil {
		details = map[string]any{}
	}
	details["step"], details["weight"], details["spec_hash"] = rec.Step+1, rec.Weight, rec.Hash
	cf, sf := cn.figures(rec)
	details["canary"], details["stable"] = cf, sf
	e := notify.Event{Kind: kind, Commit: rec.Revision, Services: []string{rec.Service}, Reason: reason,
		Time: time.Now(), Details: details, Key: rec.Service + "@" + rec.Hash}
	if d := cn.last.desiredOf(); d != nil {
		e.Cluster, e.Node = d.Cluster.Name, apply.NodeName(cn.node, d)
	}
	cn.notifier.Notify(e)
}

func splitKey(key string) (string, string) {
	for i := range key {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return key, ""
}
