package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/internal/gittest"
	"github.com/orca-sync/orca-sync/notify/github/githubtest"
)

const ghToken = "ghp_e2e_token_0123456789abcdef"

// githubCluster is cluster.toml with a webhook secret and [github] pointing
// at the test's fake GitHub API.
func githubCluster(api *githubtest.Server) string {
	return clusterWithWebhook + fmt.Sprintf(`[cluster]
domain = "ops.e2e.test"
[github]
token = %q
repo = "ops/infra"
api_url = %q
`, ghToken, api.APIURL())
}

// githubEvent posts a GitHub webhook of the given event signed with the
// test's webhook secret.
func (d *daemon) githubEvent(event string, body []byte, delivery string) int {
	d.t.Helper()
	return d.postGitHub(event, body, hookToken, delivery)
}

func prEvent(action string, n int, repoURL string) []byte {
	b, _ := json.Marshal(map[string]any{
		"action": action, "number": n,
		"pull_request": map[string]any{"number": n, "base": map[string]any{"ref": "main"}},
		"repository":   map[string]any{"full_name": "ops/infra", "clone_url": repoURL},
	})
	return b
}

// pushPR commits content to file on a branch off main and pushes it to
// refs/pull/n/head, as GitHub keeps a pull request's head; main stays
// checked out afterwards.
func pushPR(repo *gittest.Repo, n int, file, content string) string {
	branch := fmt.Sprintf("pr%d", n)
	if _, err := gittest.Try(repo.Dir(), "rev-parse", "--verify", branch); err == nil {
		repo.Git("checkout", "-q", branch)
	} else {
		repo.Git("checkout", "-q", "-b", branch, "main")
	}
	repo.WriteFile(file, content)
	sha := repo.Commit(fmt.Sprintf("pr %d", n))
	repo.Git("push", "-q", "--force", "origin", fmt.Sprintf("HEAD:refs/pull/%d/head", n))
	repo.Git("checkout", "-q", "main")
	return sha
}

// waitStatuses waits until sha has at least n statuses of context ctx and
// returns them in the order they were set.
func waitStatuses(t *testing.T, api *githubtest.Server, sha, ctx string, n int) []map[string]any {
	t.Helper()
	var got []map[string]any
	waitFor(t, 90*time.Second, func() (bool, string) {
		got = api.Statuses(sha, ctx)
		return len(got) >= n, fmt.Sprintf("statuses %s of %s: %v", ctx, short(sha), got)
	})
	return got
}

func short(sha string) string { return sha[:min(len(sha), 12)] }

// TestServeGitHubStatusesAndPRPlans: commits get pending then success or
// failure; pull requests get one plan comment, edited on every push, and a
// plan status; nothing of a pull request reaches the host.
func TestServeGitHubStatusesAndPRPlans(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("gh")
	api := githubtest.New()
	defer api.Close()
	repo, srv := newServedRepo(t)
	file := "services/" + p + "/service.toml"
	repo.WriteFile("cluster.toml", githubCluster(api))
	repo.WriteFile(file, webApp(imageV1, 1).String())
	c1 := repo.Commit("web v1")
	repo.Push()
	url := srv.URL("infra.git")
	d := startServe(t, env, url)
	statusCtx := "orca-sync/" + env.Prefix

	sts := waitStatuses(t, api, c1, statusCtx, 2)
	if sts[0]["state"] != "pending" || sts[1]["state"] != "success" || !strings.HasPrefix(fmt.Sprint(sts[1]["description"]), "deployed: 1 to create") ||
		sts[1]["target_url"] != "https://ops.e2e.test/api/v1/status" {
		t.Fatalf("statuses of the first commit: %v", sts)
	}
	for _, c := range api.Calls() {
		if c.Auth != "Bearer "+ghToken {
			t.Fatalf("call %s %s with Authorization %q", c.Method, c.Path, c.Auth)
		}
	}
	env.waitVersions(t, p, 30*time.Second, "v1")

	t.Run("failed rollout sets failure with the reason", func(t *testing.T) {
		broken := webApp(imageBroken, 1)
		broken.Deploy.TimeoutSecs = 5
		repo.WriteFile(file, broken.String())
		c2 := repo.Commit("web broken")
		repo.Push()
		d.webhook(pushEvent(url), hookToken, "push-broken")
		sts := waitStatuses(t, api, c2, statusCtx, 2)
		desc := fmt.Sprint(sts[1]["description"])
		if sts[0]["state"] != "pending" || sts[1]["state"] != "failure" || !strings.HasPrefix(desc, p+"/web: ") || len(desc) > 140 {
			t.Fatalf("statuses of the broken commit: %v", sts)
		}
		env.waitVersions(t, p, 30*time.Second, "v1")
		repo.WriteFile(file, webApp(imageV1, 1).String())
		c3 := repo.Commit("web v1 again")
		repo.Push()
		d.webhook(pushEvent(url), hookToken, "push-fix")
		if sts := waitStatuses(t, api, c3, statusCtx, 1); sts[0]["state"] != "success" {
			t.Fatalf("statuses of the fix: %v", sts)
		}
	})

	t.Run("pull request plans", func(t *testing.T) {
		head := pushPR(repo, 7, file, webApp(imageV2, 1).String())
		api.SetPRs(githubtest.PR{Number: 7, Base: "main", HeadSHA: head})
		if code := d.githubEvent("pull_request", prEvent("opened", 7, url), "pr-7-opened"); code != http.StatusAccepted {
			t.Fatalf("pull_request webhook: %d", code)
		}
		sts := waitStatuses(t, api, head, "orca-sync/plan", 1)
		if sts[0]["state"] != "success" || sts[0]["description"] != "1 change" {
			t.Fatalf("plan status: %v", sts)
		}
		cs := api.Comments(7)
		if len(cs) != 1 || !strings.Contains(cs[0].Body, "~ "+p+"/web") || !strings.Contains(cs[0].Body, imageV1+" -> "+imageV2) {
			t.Fatalf("plan comment: %+v", cs)
		}
		first := cs[0].ID

		head2 := pushPR(repo, 7, file, webApp(imageV3, 1).String())
		d.githubEvent("pull_request", prEvent("synchronize", 7, url), "pr-7-sync")
		waitStatuses(t, api, head2, "orca-sync/plan", 1)
		cs = api.Comments(7)
		if len(cs) != 1 || cs[0].ID != first || !strings.Contains(cs[0].Body, imageV1+" -> "+imageV3) {
			t.Fatalf("after a second push: %+v", cs)
		}
		edited := false
		for _, c := range api.Calls() {
			edited = edited || c.Method == http.MethodPatch && c.Path == fmt.Sprintf("/repos/ops/infra/issues/comments/%d", first)
		}
		if !edited {
			t.Fatalf("the comment was not edited in place: %+v", api.Calls())
		}

		bad := pushPR(repo, 8, file, strings.Replace(webApp(imageV2, 1).String(), "replicas = ", "replica = ", 1))
		d.githubEvent("pull_request", prEvent("opened", 8, url), "pr-8-opened")
		sts = waitStatuses(t, api, bad, "orca-sync/plan", 1)
		if sts[0]["state"] != "failure" || !strings.Contains(fmt.Sprint(sts[0]["description"]), "unknown key") {
			t.Fatalf("status of an invalid PR: %v", sts)
		}
		if cs := api.Comments(8); len(cs) != 1 || !strings.Contains(cs[0].Body, file+":") || !strings.Contains(cs[0].Body, `unknown key "replica"`) {
			t.Fatalf("comment of an invalid PR: %+v", cs)
		}

		broken := pushPR(repo, 9, file, strings.Replace(webApp(imageV2, 1).String(), `image = "`, `image = `, 1))
		d.githubEvent("pull_request", prEvent("reopened", 9, url), "pr-9-reopened")
		sts = waitStatuses(t, api, broken, "orca-sync/plan", 1)
		if sts[0]["state"] != "failure" || !strings.HasPrefix(fmt.Sprint(sts[0]["description"]), "invalid: "+file+":3") {
			t.Fatalf("status of a PR with a TOML syntax error: %v", sts)
		}
		if cs := api.Comments(9); len(cs) != 1 || !strings.Contains(cs[0].Body, file+":3") {
			t.Fatalf("comment of a PR with a TOML syntax error: %+v", cs)
		}

		cli := newOrca(t, env, repo.Dir())
		res := cli.run("plan", "--pr", "7", "--server", "http://"+d.api, "--token", d.token())
		if res.Code != 0 || !strings.Contains(res.Stdout, "Pull request #7 at "+short(head2)) || !strings.Contains(res.Stdout, imageV1+" -> "+imageV3) {
			t.Fatalf("plan --pr 7:\n%s", res)
		}
		if res := cli.run("plan", "--pr", "8", "--server", "http://"+d.api, "--token", d.token()); res.Code != 1 || !strings.Contains(res.Stdout, "unknown key") {
			t.Fatalf("plan --pr 8:\n%s", res)
		}
		if res := cli.run("plan", "--pr", "99", "--server", "http://"+d.api, "--token", d.token()); res.Code != 1 || !strings.Contains(res.Stderr, "404") {
			t.Fatalf("plan --pr 99:\n%s", res)
		}

		// Nothing of the pull requests reached the host.
		env.waitVersions(t, p, 10*time.Second, "v1")
		if st := d.status(); st.Commit == head || st.Commit == head2 || st.Commit == bad || st.Commit == broken {
			t.Fatalf("a PR head was deployed: %+v", st)
		}

		// main moves (another PR merged): the open PR is planned again
		// against the new live state; the closed ones are left alone.
		api.SetPRs(githubtest.PR{Number: 7, Base: "main", HeadSHA: head2})
		closed := api.Comments(8)[0].Body
		repo.WriteFile(file, webApp(imageV2, 1).String())
		repo.Commit("web v2 on main")
		repo.Push()
		d.webhook(pushEvent(url), hookToken, "push-v2")
		waitFor(t, 60*time.Second, func() (bool, string) {
			cs := api.Comments(7)
			return len(cs) == 1 && strings.Contains(cs[0].Body, imageV2+" -> "+imageV3), fmt.Sprintf("PR 7 comments: %+v", cs)
		})
		if cs := api.Comments(8); len(cs) != 1 || cs[0].Body != closed {
			t.Fatalf("a closed PR's comment changed: %+v", cs)
		}
		env.waitVersions(t, p, 30*time.Second, "v2")
	})
}

// TestServePRPlanShowsSecretsOnlyAsChanged: a pull request rotating a secret
// is planned with the secret decrypted in memory; the comment, the status
// and `plan --pr` say only that it changed, never a value.
func TestServePRPlanShowsSecretsOnlyAsChanged(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("ghsecret")
	id, keyFile := ageKey(t)
	old, rotated := canary(t, "old"), canary(t, "rotated")
	api := githubtest.New()
	defer api.Close()
	repo, srv := newServedRepo(t)
	url := srv.URL("infra.git")
	file := "services/" + p + "/service.toml"
	repo.WriteFile(".sops.yaml", "creation_rules:\n  - path_regex: secrets\\.sops\\.yaml$\n    age: "+id.Recipient().String()+"\n")
	repo.WriteFile("cluster.toml", githubCluster(api))
	withSecret := webApp(imageV1, 1)
	withSecret.Env = map[string]string{"DB_PASSWORD": "${secrets.DB_PASSWORD}"}
	repo.WriteFile(file, withSecret.String())
	cli := newOrca(t, env, repo.Dir())
	set := func(value string) {
		t.Helper()
		if r := cli.run("secrets", "set", "--dir", repo.Dir(), "--age-key-file", keyFile, "--project", p, "DB_PASSWORD", value); r.Code != 0 {
			t.Fatalf("secrets set:\n%s", r)
		}
	}
	set(old)
	repo.Commit("web with a secret")
	repo.Push()
	d := startServe(t, env, url, "--age-key-file", keyFile)
	env.waitVersions(t, p, 60*time.Second, "v1")

	repo.Git("checkout", "-q", "-b", "rotate", "main")
	set(rotated)
	head := repo.Commit("rotate DB_PASSWORD")
	repo.Git("push", "-q", "--force", "origin", "HEAD:refs/pull/5/head")
	repo.Git("checkout", "-q", "main")
	d.githubEvent("pull_request", prEvent("opened", 5, url), "pr-5-opened")

	sts := waitStatuses(t, api, head, "orca-sync/plan", 1)
	if sts[0]["state"] != "success" || sts[0]["description"] != "1 change" {
		t.Fatalf("plan status: %v", sts)
	}
	cs := api.Comments(5)
	if len(cs) != 1 || !strings.Contains(cs[0].Body, "~ "+p+"/web") || !strings.Contains(cs[0].Body, "secrets.DB_PASSWORD changed (secret)") {
		t.Fatalf("comment: %+v", cs)
	}
	res := cli.run("plan", "--pr", "5", "--server", "http://"+d.api, "--token", d.token(), "--output", "json")
	if res.Code != 0 || !strings.Contains(res.Stdout, `"valid": true`) && !strings.Contains(res.Stdout, `"valid":true`) {
		t.Fatalf("plan --pr 5 --output json:\n%s", res)
	}
	everything := res.Stdout + d.logs.String()
	for _, c := range api.Calls() {
		everything += fmt.Sprint(c.Body)
	}
	for _, v := range []string{old, rotated} {
		if strings.Contains(everything, v) {
			t.Fatalf("a secret value leaked into the PR comment, statuses, API answer or logs")
		}
	}
	if got := env.envOf(t, p, "web", "DB_PASSWORD"); len(got) != 1 || got[0] != old {
		t.Fatalf("the PR's secret reached the host: web's DB_PASSWORD is %q", got)
	}
}
