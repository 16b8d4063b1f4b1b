package github

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/notify/github/githubtest"
)

const token = "ghp_testtoken0123456789"

func cluster(api string) func() config.Cluster {
	return func() config.Cluster {
		c := config.DefaultCluster()
		c.Domain = "ops.example.test"
		c.GitHub = config.GitHub{Token: token, Repo: "acme/infra", APIURL: api, PRPlans: true}
		return c
	}
}

// plans is a Planner returning canned plans per PR.
type plans struct {
	mu sync.Mutex
	m  map[int]PRPlan
}

func (p *plans) PlanPR(_ context.Context, n int) (PRPlan, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pl, ok := p.m[n]
	if !ok {
		return PRPlan{}, errors.New("no such pull request")
	}
	return pl, nil
}

func (p *plans) set(n int, pl PRPlan) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[n] = pl
}

func start(t *testing.T, r *Reporter) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return func() { cancel(); <-done }
}

func waitCalls(t *testing.T, s *githubtest.Server, n int) []githubtest.Call {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		calls := s.Calls()
		if len(calls) >= n {
			return calls
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d API calls, want %d: %+v", len(calls), n, calls)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCommitStatusesAreSentInOrderWithAuth(t *testing.T) {
	api := githubtest.New()
	defer api.Close()
	r := New(Options{Cluster: cluster(api.APIURL()), Node: node("edge-1"), Branch: "main"})
	r.CommitStatus("abc123", StatePending, "applying 2 changes")
	r.CommitStatus("abc123", StateFailure, "shop/web: not ready within 20s\nmore detail")
	stop := start(t, r)
	stop()
	calls := api.Calls()
	var statuses []githubtest.Call
	for _, c := range calls {
		if c.Method == "POST" {
			statuses = append(statuses, c)
		}
	}
	if len(statuses) != 2 {
		t.Fatalf("calls = %+v", calls)
	}
	for i, want := range []struct{ state, desc string }{{"pending", "applying 2 changes"}, {"failure", "shop/web: not ready within 20s"}} {
		c := statuses[i]
		if c.Path != "/repos/acme/infra/statuses/abc123" || c.Auth != "Bearer "+token {
			t.Errorf("call %d: %s %s auth %q", i, c.Method, c.Path, c.Auth)
		}
		if c.Body["state"] != want.state || c.Body["context"] != "orca-sync/edge-1" || c.Body["description"] != want.desc ||
			c.Body["target_url"] != "https://ops.example.test/api/v1/status" {
			t.Errorf("call %d body = %v", i, c.Body)
		}
	}
}

func TestLongDescriptionIsCut(t *testing.T) {
	if got := oneLine(strings.Repeat("é", 100), maxDescription); len(got) > maxDescription || !strings.HasSuffix(got, "...") {
		t.Fatalf("oneLine = %q (%d bytes)", got, len(got))
	}
}

func TestNoGitHubConfigSendsNothing(t *testing.T) {
	api := githubtest.New()
	defer api.Close()
	r := New(Options{Cluster: config.DefaultCluster, Node: node("n")})
	r.CommitStatus("abc", StateSuccess, "ok")
	start(t, r)()
	if c := api.Calls(); len(c) != 0 {
		t.Fatalf("calls without [github]: %+v", c)
	}
}

func TestPRPlanKeepsOneCommentAndSetsPlanStatus(t *testing.T) {
	api := githubtest.New()
	defer api.Close()
	pl := &plans{m: map[int]PRPlan{7: {SHA: "head1", Valid: true, Changes: 1, Text: "~ shop/web  update 1 replica(s), rolling\n      image: a:v1 -> a:v2"}}}
	r := New(Options{Cluster: cluster(api.APIURL()), Node: node("edge-1"), Branch: "main", Planner: pl})
	start(t, r)
	r.PlanPR(7)
	calls := waitCalls(t, api, 3) // list comments, create, status
	want := []struct{ method, path string }{
		{"GET", "/repos/acme/infra/issues/7/comments"},
		{"POST", "/repos/acme/infra/issues/7/comments"},
		{"POST", "/repos/acme/infra/statuses/head1"},
	}
	for i, w := range want {
		if calls[i].Method != w.method || calls[i].Path != w.path || calls[i].Auth != "Bearer "+token {
			t.Fatalf("call %d = %s %s (auth %q), want %s %s", i, calls[i].Method, calls[i].Path, calls[i].Auth, w.method, w.path)
		}
	}
	body := fmt.Sprint(calls[1].Body["body"])
	if !strings.HasPrefix(body, "<!-- orca-sync:plan node=edge-1 -->\n### orca-sync plan for `edge-1` at head1") || !strings.Contains(body, "image: a:v1 -> a:v2") {
		t.Errorf("comment body (the marker, then a first line naming the node):\n%s", body)
	}
	if st := calls[2].Body; st["state"] != "success" || st["context"] != "orca-sync/plan" || st["description"] != "1 change" {
		t.Errorf("plan status = %v", st)
	}

	pl.set(7, PRPlan{SHA: "head2", Valid: false, Text: "services/shop/service.toml:3: web: unknown key \"replica\""})
	r.PlanPR(7)
	calls = waitCalls(t, api, 6)[3:]
	if calls[1].Method != "PATCH" || calls[1].Path != fmt.Sprintf("/repos/acme/infra/issues/comments/%d", api.Comments(7)[0].ID) {
		t.Fatalf("second plan: %s %s, want PATCH of the first comment", calls[1].Method, calls[1].Path)
	}
	if cs := api.Comments(7); len(cs) != 1 || !strings.Contains(cs[0].Body, "\n### orca-sync plan for `edge-1`: head2 is invalid") ||
		!strings.Contains(cs[0].Body, `unknown key \"replica\"`) && !strings.Contains(cs[0].Body, `unknown key "replica"`) {
		t.Fatalf("comments = %+v", cs)
	}
	if st := calls[2].Body; calls[2].Path != "/repos/acme/infra/statuses/head2" || st["state"] != "failure" ||
		st["description"] != `invalid: services/shop/service.toml:3: web: unknown key "replica"` {
		t.Errorf("invalid plan status: %s %v", calls[2].Path, st)
	}
}

func TestNewCommitReplansOpenPRsOnly(t *testing.T) {
	api := githubtest.New()
	defer api.Close()
	api.SetPRs(githubtest.PR{Number: 3, Base: "main", HeadSHA: "h3"}, githubtest.PR{Number: 4, Base: "other", HeadSHA: "h4"})
	pl := &plans{m: map[int]PRPlan{3: {SHA: "h3", Valid: true, Text: "No changes: 1 services up to date."}, 4: {SHA: "h4", Valid: true}}}
	r := New(Options{Cluster: cluster(api.APIURL()), Node: node("n1"), Branch: "main", Planner: pl})
	start(t, r)
	r.CommitStatus("c1", StateSuccess, "2 changes applied")
	calls := waitCalls(t, api, 5) // status, list PRs, PR 3: list comments, create, status
	var paths []string
	for _, c := range calls {
		paths = append(paths, c.Method+" "+c.Path)
	}
	got := strings.Join(paths, "\n")
	for _, want := range []string{"GET /repos/acme/infra/pulls", "POST /repos/acme/infra/issues/3/comments", "POST /repos/acme/infra/statuses/h3"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, "/issues/4/") {
		t.Errorf("a pull request into another branch was planned:\n%s", got)
	}
	for _, c := range calls {
		if c.Path == "/repos/acme/infra/pulls" && c.Query != "base=main&per_page=100&state=open" {
			t.Errorf("pulls query = %q", c.Query)
		}
	}
}

func node(name string) func() string { return func() string { return name } }

func TestPRPlansOffOrFailing(t *testing.T) {
	api := githubtest.New()
	defer api.Close()
	off := func() config.Cluster {
		c := cluster(api.APIURL())()
		c.GitHub.PRPlans = false
		return c
	}
	pl := &plans{m: map[int]PRPlan{1: {SHA: "h1", Valid: true}}}
	r := New(Options{Cluster: off, Node: node("n1"), Branch: "main", Planner: pl})
	r.PlanPR(1)
	start(t, r)()
	if c := api.Calls(); len(c) != 0 {
		t.Fatalf("pr_plans = false still called the API: %+v", c)
	}

	failing := &failingPlanner{}
	r = New(Options{Cluster: cluster(api.APIURL()), Node: node("n1"), Branch: "main", Planner: failing})
	start(t, r)
	r.PlanPR(2)
	calls := waitCalls(t, api, 1)
	if c := calls[0]; c.Path != "/repos/acme/infra/statuses/h2" || c.Body["state"] != "error" || c.Body["context"] != PlanContext ||
		c.Body["description"] != "could not plan: Docker is not reachable" {
		t.Fatalf("a plan that could not be computed: %+v", calls)
	}
	if cs := api.Comments(2); len(cs) != 0 {
		t.Fatalf("a failed plan left a comment: %+v", cs)
	}
}

type failingPlanner struct{}

func (failingPlanner) PlanPR(context.Context, int) (PRPlan, error) {
	return PRPlan{SHA: "h2"}, errors.New("Docker is not reachable")
}

// A reviewer who quotes orca-sync's comment copies its hidden marker; that
// comment is theirs and must not be overwritten with the plan.
func TestPRPlanLeavesACommentQuotingTheMarkerAlone(t *testing.T) {
	api := githubtest.New()
	defer api.Close()
	quote := "> <!-- orca-sync:plan node=edge-1 -->\n> ~ shop/web\n\nWhy does web change?"
	theirs := api.AddComment(7, quote)
	pl := &plans{m: map[int]PRPlan{7: {SHA: "head1", Valid: true, Changes: 1, Text: "~ shop/web  update"}}}
	r := New(Options{Cluster: cluster(api.APIURL()), Node: node("edge-1"), Branch: "main", Planner: pl})
	start(t, r)
	r.PlanPR(7)
	calls := waitCalls(t, api, 3)
	if calls[1].Method != "POST" || calls[1].Path != "/repos/acme/infra/issues/7/comments" {
		t.Fatalf("call 1 = %s %s, want a new comment (POST)", calls[1].Method, calls[1].Path)
	}
	cs := api.Comments(7)
	if len(cs) != 2 || cs[0].ID != theirs || cs[0].Body != quote {
		t.Fatalf("comments = %+v, want the reviewer's untouched and orca-sync's own", cs)
	}
}
