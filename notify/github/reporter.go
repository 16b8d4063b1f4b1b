package github

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/orca-sync/orca-sync/config"
)

// Commit status states, as GitHub and Gitea name them.
const (
	StatePending = "pending"
	StateSuccess = "success"
	StateFailure = "failure"
	StateError   = "error"
)

// PlanContext is the status context of pull request plans.
const PlanContext = "orca-sync/plan"

// callTimeout bounds one GitHub API call; flushTimeout the sending of the
// statuses still queued at shutdown.
const (
	callTimeout  = 15 * time.Second
	flushTimeout = 10 * time.Second
)

// Planner computes the plan of a pull request's head against the live host,
// applying nothing.
type Planner interface {
	PlanPR(ctx context.Context, number int) (PRPlan, error)
}

// PRPlan is a pull request's plan: Text as `orca-sync plan` prints it, or,
// when the head is invalid, its validation errors.
type PRPlan struct {
	SHA     string
	Valid   bool
	Changes int
	Text    string
}

// Options configure a Reporter.
type Options struct {
	// Cluster returns the current cluster.toml ([github], [cluster] domain);
	// asked at every report, so a commit reconfigures without restart.
	Cluster func() config.Cluster
	// Node names this host (status context orca-sync/<node>); asked at every
	// report, as cluster.toml may name it.
	Node func() string
	// Branch is the tracked branch; pull requests into it are planned.
	Branch  string
	Planner Planner // nil: no pull request plans
	Client  *http.Client
	Log     *slog.Logger
}

// Reporter posts commit statuses and pull request plans in the background:
// its methods only queue, Run does the API calls.
type Reporter struct {
	opts Options
	log  *slog.Logger

	statuses chan status

	mu        sync.Mutex
	prs       map[int]bool // pull requests to plan
	replanAll bool
	lastSHA   string // newest commit reported for the tracked branch
	wake      chan struct{}
}

// New returns a Reporter; nothing is sent until Run.
func New(opts Options) *Reporter {
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 2 * callTimeout}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Cluster == nil {
		opts.Cluster = config.DefaultCluster
	}
	if opts.Node == nil {
		opts.Node = func() string { return "" }
	}
	return &Reporter{opts: opts, log: opts.Log, statuses: make(chan status, 256), prs: map[int]bool{}, wake: make(chan struct{}, 1)}
}

// enabled returns the API client when [github] token and repo are set.
func (r *Reporter) enabled() (*client, config.Cluster, bool) {
	cl := r.opts.Cluster()
	if cl.GitHub.Token == "" || cl.GitHub.Repo == "" {
		return nil, cl, false
	}
	c, err := newClient(cl.GitHub, r.opts.Client)
	if err != nil {
		r.log.Warn("github", "error", err)
		return nil, cl, false
	}
	return c, cl, true
}

// CommitStatus queues the status orca-sync/<node> of a commit of the tracked
// branch. A final state for a commit not seen before also re-plans the open
// pull requests: the host they are planned against has moved.
func (r *Reporter) CommitStatus(sha, state, description string) {
	if _, _, ok := r.enabled(); !ok || sha == "" {
		return
	}
	select {
	case r.statuses <- status{SHA: sha, State: state, Context: "orca-sync/" + r.opts.Node(), Description: description}:
	default:
		r.log.Warn("github status dropped: the queue is full", "commit", short(sha))
	}
	if state == StatePending {
		return
	}
	r.mu.Lock()
	moved := r.lastSHA != sha // the first one too: plans made before a restart may be stale
	r.lastSHA = sha
	r.mu.Unlock()
	if moved {
		r.schedule(func() { r.replanAll = true })
	}
}

// PlanPR queues a plan of pull request number (a pull_request webhook).
func (r *Reporter) PlanPR(number int) {
	r.schedule(func() { r.prs[number] = true })
}

func (r *Reporter) schedule(f func()) {
	r.mu.Lock()
	f()
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run sends statuses (in order) and plans pull requests until ctx ends; then
// it sends the statuses still queued, for at most flushTimeout.
func (r *Reporter) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() { defer close(done); r.runPlans(ctx) }()
	for {
		select {
		case s := <-r.statuses:
			r.send(s)
		case <-ctx.Done():
			// Statuses still queued are sent for a bounded time: GitHub
			// being down must not hold up a shutdown.
			deadline := time.Now().Add(flushTimeout)
			for time.Now().Before(deadline) {
				select {
				case s := <-r.statuses:
					r.send(s)
					continue
				default:
				}
				break
			}
			<-done
			return
		}
	}
}

func (r *Reporter) send(s status) {
	c, cl, ok := r.enabled()
	if !ok {
		return
	}
	if cl.Domain != "" {
		s.TargetURL = "https://" + cl.Domain + "/api/v1/status"
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := c.setStatus(ctx, s); err != nil {
		r.log.Warn("github commit status not set", "error", err)
	}
}

func (r *Reporter) runPlans(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		r.mu.Lock()
		prs, all := r.prs, r.replanAll
		r.prs, r.replanAll = map[int]bool{}, false
		r.mu.Unlock()
		c, cl, ok := r.enabled()
		if !ok || !cl.GitHub.PRPlans || r.opts.Planner == nil {
			continue
		}
		if all {
			lctx, cancel := context.WithTimeout(ctx, callTimeout)
			open, err := c.openPRs(lctx, r.opts.Branch)
			cancel()
			if err != nil {
				r.log.Warn("github: re-plan open pull requests", "error", err)
			}
			for _, n := range open {
				prs[n] = true
			}
		}
		for n := range prs {
			if ctx.Err() != nil {
				return
			}
			r.planOne(ctx, c, n)
		}
	}
}

// planOne computes the plan of PR n and publishes it: the comment, then the
// status on the head commit.
func (r *Reporter) planOne(ctx context.Context, c *client, n int) {
	pctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	p, err := r.opts.Planner.PlanPR(pctx, n)
	if err != nil {
		r.log.Warn("pull request plan", "pr", n, "error", err)
		if p.SHA != "" {
			r.publishStatus(ctx, c, p.SHA, StateError, "could not plan: "+err.Error())
		}
		return
	}
	cctx, ccancel := context.WithTimeout(ctx, callTimeout)
	id, err := c.upsertComment(cctx, n, r.marker(), r.commentBody(p))
	ccancel()
	if err != nil {
		r.log.Warn("pull request plan comment", "pr", n, "error", err)
	}
	state, desc := StateSuccess, changes(p.Changes)
	if !p.Valid {
		state, desc = StateFailure, "invalid: "+p.Text
	}
	r.publishStatus(ctx, c, p.SHA, state, desc)
	r.log.Info("pull request planned", "pr", n, "commit", short(p.SHA), "valid", p.Valid, "changes", p.Changes, "comment", id)
}

func (r *Reporter) publishStatus(ctx context.Context, c *client, sha, state, desc string) {
	sctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := c.setStatus(sctx, status{SHA: sha, State: state, Context: PlanContext, Description: desc}); err != nil {
		r.log.Warn("pull request plan status", "error", err)
	}
}

// marker is the hidden line that finds this host's comment again.
func (r *Reporter) marker() string {
	return fmt.Sprintf("<!-- orca-sync:plan node=%s -->", r.opts.Node())
}

func (r *Reporter) commentBody(p PRPlan) string {
	head := fmt.Sprintf("### orca-sync plan for `%s` at %s: %s", r.opts.Node(), short(p.SHA), changes(p.Changes))
	foot := "Computed against the live containers of this host; nothing is applied before the merge."
	if !p.Valid {
		head = fmt.Sprintf("### orca-sync plan for `%s`: %s is invalid, it would not be applied", r.opts.Node(), short(p.SHA))
		foot = "Fix these errors; a commit with any of them changes nothing on the host."
	}
	return fmt.Sprintf("%s\n%s\n\n```\n%s\n```\n\n%s\n", r.marker(), head, p.Text, foot)
}

func changes(n int) string {
	if n == 1 {
		return "1 change"
	}
	return fmt.Sprintf("%d changes", n)
}
