package e2e

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestServeHoldsItsDataDirAndLogsNoURLUserInfo runs a real serve whose
// --repo carries a token as the user part of an https-style URL. The token
// appears nowhere in serve's output, and while serve runs, apply on its data
// dir changes nothing and exits 1 naming serve and its pid.
func TestServeHoldsItsDataDirAndLogsNoURLUserInfo(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("datadir")
	repo, srv := newServedRepo(t)
	repo.WriteFile("services/"+p+"/service.toml", webApp(imageV1, 1).String())
	repo.Commit("web v1")
	repo.Push()
	const token = "ghp_userInfoTokenNeverLogged0123456789"
	// The git server authenticates serve by the credentials in its environment
	// (which win over the URL's); the URL's user part is only to be hidden.
	repoURL := (&url.URL{Scheme: "http", User: url.User(token), Host: srv.Addr(), Path: "/infra.git"}).String()

	d := startServe(t, env, repoURL)
	env.waitVersions(t, p, 60*time.Second, "v1")
	wantRepo := "repo=" + srv.URL("infra.git")
	env.waitFor(t, 10*time.Second, func() (bool, string) {
		return strings.Contains(d.logs.String(), wantRepo), "serve has not logged " + wantRepo
	})
	if logs := d.logs.String(); strings.Contains(logs, token) {
		t.Fatalf("serve logged the token of the URL's user part:\n%s", logs)
	}

	before := env.mustContainers(t, p, "web")
	repo.WriteFile("services/"+p+"/service.toml", webApp(imageV2, 1).String())
	orca := newOrca(t, env, repo.Dir())
	r := orca.run("apply", "--data-dir", d.dataDir, repo.Dir())
	want := fmt.Sprintf("data dir %s is in use by orca-sync serve (pid %d)", d.dataDir, d.cmd.Process.Pid)
	if r.Code != 1 || !strings.Contains(r.Stderr, want) {
		t.Fatalf("apply while serve runs: want exit 1 and %q\n%s", want, r)
	}
	after := env.mustContainers(t, p, "web")
	if len(after) != len(before) || after[0].ID != before[0].ID {
		t.Fatalf("a refused apply changed the containers: %v -> %v", before, after)
	}
}
