package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/notify"
	"github.com/orca-sync/orca-sync/proxy"
)

// ErrNoCanary is returned by Promote and Abort for a service without a
// running canary.
var ErrNoCanary = errors.New("no canary is running for this service")

// baseline is where the current step's window starts in this process: the
// proxy's cumulative figures then, and what earlier processes had counted.
type baseline struct {
	canary, stable proxy.RoleStats
	counted        stepCounts
}

// resetBaseline starts a new step's window now, at zero.
func (cn *canaryDriver) resetBaseline(key string) {
	p, s := splitKey(key)
	st := cn.proxy.Stats(p, s)
	cn.mu.Lock()
	cn.baselines[key] = baseline{canary: st["canary"], stable: st["stable"]}
	cn.mu.Unlock()
}

func (cn *canaryDriver) forgetBaseline(key string) {
	cn.mu.Lock()
	delete(cn.baselines, key)
	cn.mu.Unlock()
}

// figures are the canary's and the stable set's figures of rec's step so far.
// p95 covers the requests this process saw (a restart starts its window).
func (cn *canaryDriver) figures(rec canaryRecord) (canary, stable RoleFigures) {
	if cn.proxy == nil {
		return
	}
	p, s := splitKey(rec.Service)
	st := cn.proxy.Stats(p, s)
	cur := baseline{canary: st["canary"], stable: st["stable"]}
	cn.mu.Lock()
	b, ok := cn.baselines[rec.Service]
	if !ok || cur.canary.Requests < b.canary.Requests || cur.stable.Requests < b.stable.Requests {
		b = baseline{canary: cur.canary, stable: cur.stable, counted: rec.Counted}
		cn.baselines[rec.Service] = b
	}
	cn.mu.Unlock()
	cw, sw := cur.canary.Since(b.canary), cur.stable.Since(b.stable)
	canary = roleFigures(b.counted.CanaryRequests+cw.Requests, b.counted.CanaryErrors+cw.Errors, cw.P95())
	stable = roleFigures(b.counted.StableRequests+sw.Requests, b.counted.StableErrors+sw.Errors, sw.P95())
	return canary, stable
}

func roleFigures(req, errs uint64, p95 time.Duration) RoleFigures {
	f := RoleFigures{Requests: req, Errors: errs, P95Ms: float64(p95.Microseconds()) / 1000}
	if req > 0 {
		f.ErrorRate = float64(errs) / float64(req)
	}
	return f
}

// judge returns why the canary's figures breach the analysis, or "".
// Nothing is judged before min_requests reached the canary.
func judge(a config.Analysis, c RoleFigures) string {
	if c.Requests < uint64(a.MinRequests) {
		return ""
	}
	if c.ErrorRate > a.MaxErrorRate {
		return fmt.Sprintf("error rate %.1f%% (%d of %d requests) is above max_error_rate %.1f%%",
			100*c.ErrorRate, c.Errors, c.Requests, 100*a.MaxErrorRate)
	}
	if a.MaxP95 > 0 && c.P95Ms > float64(a.MaxP95.Milliseconds()) {
		return fmt.Sprintf("p95 %.1f ms over %d requests is above max_p95_ms %d", c.P95Ms, c.Requests, a.MaxP95.Milliseconds())
	}
	return ""
}

// canaryWaits says what the canary waits for: the requests still missing
// (of min_requests, counted in this step) and the pause left.
func canaryWaits(rec canaryRecord, svc *config.Service, requests uint64) string {
	steps := canarySteps(svc.Deploy)
	switch rec.Phase {
	case phaseWaiting:
		return fmt.Sprintf("at %d%%: waiting for `orca-sync promote %s` or `abort %s`", rec.Weight, rec.Service, rec.Service)
	case phasePromoting:
		return "promoting: rolling the stable set to the new spec"
	}
	if rec.Step >= len(steps) {
		return "done"
	}
	st := steps[rec.Step]
	left := time.Until(rec.StepStarted.Add(st.Pause)).Round(time.Second)
	var waits []string
	if need := uint64(svc.Deploy.Analysis.MinRequests); requests < need {
		waits = append(waits, fmt.Sprintf("%d more request(s) to the canary (%d of %d)", need-requests, requests, need))
	}
	if left > 0 {
		waits = append(waits, fmt.Sprintf("%v of pause", left))
	}
	if len(waits) == 0 {
		return fmt.Sprintf("step %d of %d at %d%%: met, moving on at the next tick", rec.Step+1, len(steps), rec.Weight)
	}
	return fmt.Sprintf("step %d of %d at %d%%: waiting for %s", rec.Step+1, len(steps), rec.Weight, strings.Join(waits, " and "))
}

// tickCanaries judges every running canary once: abort on a breach, next
// step once the pause and min_requests are met, promote after the last.
func (cn *canaryDriver) tick(ctx context.Context) {
	d := cn.last.desiredOf()
	if d == nil || cn.proxy == nil {
		return
	}
	for key, rec := range cn.records() {
		p, s := splitKey(key)
		svc := d.Project(p).Service(s)
		if svc == nil || rec.Phase == phasePromoting || svc.Deploy.Strategy != config.StrategyCanary {
			continue // the next sync deals with it
		}
		cn.tickOne(ctx, rec, svc)
	}
}

func (cn *canaryDriver) tickOne(ctx context.Context, rec canaryRecord, svc *config.Service) {
	cf, sf := cn.figures(rec)
	ask := cn.takeAsk(rec.Service)
	if ask == "abort" {
		cn.abortCanary(ctx, rec, nil, fmt.Sprintf("aborted by an operator at step %d (%d%%): canary %s", rec.Step+1, rec.Weight, cf), true)
		return
	}
	if breach := judge(svc.Deploy.Analysis, cf); breach != "" {
		cn.abortCanary(ctx, rec, nil, fmt.Sprintf("canary aborted at step %d (%d%%): %s", rec.Step+1, rec.Weight, breach), true)
		return
	}
	if ask == "promote" {
		cn.promote(rec, "promote asked by an operator")
		return
	}
	steps := canarySteps(svc.Deploy)
	counted := stepCounts{cf.Requests, cf.Errors, sf.Requests, sf.Errors}
	passed := rec.Phase == phaseAnalysing && rec.Step < len(steps) &&
		time.Since(rec.StepStarted) >= steps[rec.Step].Pause && cf.Requests >= uint64(svc.Deploy.Analysis.MinRequests)
	if !passed {
		if counted != rec.Counted {
			rec.Counted = counted
			cn.save(rec)
		}
		return
	}
	cn.event(notify.CanaryStep, rec, fmt.Sprintf("step %d of %d (%d%%) passed: canary %s, stable %s",
		rec.Step+1, len(steps), rec.Weight, cf, sf), map[string]any{"passed": true})
	rec.Step++
	rec.Counted, rec.StepStarted = stepCounts{}, time.Now()
	switch {
	case rec.Step < len(steps):
		rec.Weight = steps[rec.Step].Weight
		cn.save(rec)
		cn.resetBaseline(rec.Service)
		cn.proxy.SetCanaryWeight(svc.Project, svc.Name, rec.Weight)
		cn.log.Info("canary step", "service", rec.Service, "step", rec.Step+1, "weight", rec.Weight)
	case svc.Deploy.AutoPromote:
		cn.promote(rec, "every step passed")
	default:
		rec.Phase = phaseWaiting
		cn.save(rec)
		cn.resetBaseline(rec.Service)
		cn.log.Info("canary waits for promote or abort", "service", rec.Service, "weight", rec.Weight)
	}
}

// promote records the decision and asks for a sync, which rolls the stable
// set to the canary's spec.
func (cn *canaryDriver) promote(rec canaryRecord, why string) {
	rec.Phase = phasePromoting
	cn.save(rec)
	cn.log.Info("promoting canary", "service", rec.Service, "why", why)
	cn.promoted()
}

// Promote asks the running canary of project/name to be promoted now.
func (l *Loop) Promote(project, name string) error { return l.canaries.ask(project, name, "promote") }

// Abort asks the running canary of project/name to be aborted now; its spec is
// pinned as failed.
func (l *Loop) Abort(project, name string) error { return l.canaries.ask(project, name, "abort") }

func (cn *canaryDriver) ask(project, name, what string) error {
	key := project + "/" + name
	if d := cn.last.desiredOf(); d == nil || d.Project(project) == nil || d.Project(project).Service(name) == nil {
		return fmt.Errorf("%s: %w", key, ErrUnknownService)
	}
	var rec canaryRecord
	ok, err := cn.store.Get(canaryNamespace, key, &rec)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, key, err)
	}
	if !ok || rec.Phase == phasePromoting {
		return fmt.Errorf("%s %s: %w", what, key, ErrNoCanary)
	}
	cn.mu.Lock()
	cn.asks[key] = what
	cn.mu.Unlock()
	select {
	case cn.wake <- struct{}{}:
	default:
	}
	return nil
}

func (cn *canaryDriver) takeAsk(key string) string {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	a := cn.asks[key]
	delete(cn.asks, key)
	return a
}

// canaryRequests is the canary's request count that min_requests is judged on.
func (cn *canaryDriver) canaryRequests(rec canaryRecord) uint64 {
	cf, _ := cn.figures(rec)
	return cf.Requests
}

func (cn *canaryDriver) status(rec canaryRecord, svc *config.Service) *CanaryStatus {
	cf, sf := cn.figures(rec)
	steps := len(canarySteps(svc.Deploy))
	return &CanaryStatus{Phase: rec.Phase, Step: min(rec.Step+1, steps), Steps: steps, Weight: rec.Weight,
		Hash: rec.Hash, Containers: rec.Containers, Names: rec.Names, StepStarted: rec.StepStarted,
		Canary: cf, Stable: sf, Waiting: strings.TrimSpace(canaryWaits(rec, svc, cf.Requests))}
}
