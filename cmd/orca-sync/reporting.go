package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/orca-sync/orca-sync/api"
	"github.com/orca-sync/orca-sync/api/wire"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/notify"
	"github.com/orca-sync/orca-sync/notify/github"
	"github.com/orca-sync/orca-sync/reconcile"
	"github.com/orca-sync/orca-sync/source"
	"github.com/orca-sync/orca-sync/state"
)

// reporting is the notifier and the GitHub reporter of a serve, wired to the
// loop's current cluster.toml. The loop is set once it exists.
type reporting struct {
	loop     *reconcile.Loop
	notifier *notify.Notifier
	github   *github.Reporter
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

var (
	_ reconcile.Notifier       = (*notify.Notifier)(nil)
	_ reconcile.CommitStatuses = (*github.Reporter)(nil)
	_ github.Planner           = prPlanner{}
)

func newReporting(db *state.DB, branch string, log *slog.Logger) *reporting {
	rp := &reporting{}
	cluster := func() config.Cluster {
		if rp.loop == nil {
			return config.DefaultCluster()
		}
		return rp.loop.Cluster()
	}
	rp.notifier = notify.New(notify.Options{
		Sinks: func() []config.Notify { return cluster().Notify }, Memory: db, Log: log,
	})
	rp.github = github.New(github.Options{
		Cluster: cluster, Node: func() string { return rp.loop.Node() }, Branch: branch,
		Planner: prPlanner{rp}, Log: log,
	})
	return rp
}

// start runs the deliveries in the background; wait sends what is queued
// and waits for it (bounded by their retries and timeouts).
func (rp *reporting) start() {
	ctx, cancel := context.WithCancel(context.Background())
	rp.stop = cancel
	rp.wg.Add(2)
	go func() { defer rp.wg.Done(); rp.notifier.Run(ctx) }()
	go func() { defer rp.wg.Done(); rp.github.Run(ctx) }()
}

func (rp *reporting) wait() {
	rp.stop()
	rp.wg.Wait()
}

// prPlanner plans pull requests for the GitHub reporter; the loop keeps
// each plan for the dashboard.
type prPlanner struct{ rp *reporting }

func (p prPlanner) PlanPR(ctx context.Context, n int) (github.PRPlan, error) {
	rp, err := p.rp.loop.PlanPR(ctx, n)
	if err != nil {
		return github.PRPlan{SHA: rp.Commit}, err
	}
	return github.PRPlan{SHA: rp.Commit, Valid: rp.Valid, Changes: rp.Changes, Text: rp.Text}, nil
}

// prAPI serves pull request plans to the API and the dashboard.
type prAPI struct{ rp *reporting }

var _ api.PullRequests = prAPI{}

func (a prAPI) SignalPR(n int) { a.rp.github.PlanPR(n) }

func (a prAPI) ForgetPR(n int) error { return a.rp.loop.ForgetPR(n) }

func (a prAPI) PRPlans(context.Context) ([]wire.PRPlanRecord, error) { return a.rp.loop.PRPlans() }

func (a prAPI) PRPlan(ctx context.Context, n int) (wire.PRPlan, error) {
	rp, err := a.rp.loop.PlanPR(ctx, n)
	if errors.Is(err, source.ErrNoSuchRef) {
		return wire.PRPlan{}, fmt.Errorf("%w: %v", api.ErrNotFound, err)
	}
	if err != nil {
		return wire.PRPlan{}, err
	}
	return wire.PRPlan{Number: n, RefPlan: rp}, nil
}

func short(sha string) string { return sha[:min(len(sha), 12)] }
