package gittest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/internal/gittest"
)

// TestFixture covers Repo and the smart-HTTP server: clone with
// credentials works, without them it fails, and Stop/Start take the remote
// down and up on the same address.
func TestFixture(t *testing.T) {
	t.Parallel()

	repo := gittest.NewRepo(t)
	repo.WriteFile("services/web/service.toml", "[[service]]\nname = \"web\"\n")
	first := repo.Commit("add web")
	repo.WriteFile("services/web/service.toml", "[[service]]\nname = \"web\"\nreplicas = 2\n")
	second := repo.Commit("scale web")
	reverted := repo.Revert(second)
	repo.Push()
	if got := readFile(t, filepath.Join(repo.Dir(), "services", "web", "service.toml")); got != "[[service]]\nname = \"web\"\n" {
		t.Fatalf("after revert: %q", got)
	}
	if reverted == second || reverted == first {
		t.Fatalf("revert did not make a new commit")
	}
	if out := gittest.Run(t, "", "--git-dir", repo.BarePath(), "rev-parse", "main"); out != reverted {
		t.Fatalf("bare main = %s, want %s", out, reverted)
	}
	fileClone := filepath.Join(t.TempDir(), "c")
	gittest.Run(t, "", "clone", "-q", repo.FileURL(), fileClone)

	srv := gittest.NewServer(t, "alice", "s3cret")
	srv.AddRepo("infra.git", repo)
	tmp := t.TempDir()

	clone := filepath.Join(tmp, "ok")
	gittest.Run(t, "", "clone", "-q", srv.AuthURL("infra.git"), clone)
	if head := gittest.Run(t, clone, "rev-parse", "HEAD"); head != reverted {
		t.Fatalf("cloned HEAD %s, want %s", head, reverted)
	}

	out, err := gittest.Try("", "clone", srv.URL("infra.git"), filepath.Join(tmp, "anon"))
	if err == nil || srv.Unauthorized() == 0 {
		t.Fatalf("clone without credentials: err=%v 401s=%d\n%s", err, srv.Unauthorized(), out)
	}
	bad := strings.Replace(srv.AuthURL("infra.git"), "s3cret", "wrong", 1)
	if out, err := gittest.Try("", "clone", bad, filepath.Join(tmp, "bad")); err == nil || !strings.Contains(out, "Authentication failed") {
		t.Fatalf("clone with a wrong password: %v\n%s", err, out)
	}

	addr := srv.Addr()
	srv.Stop()
	out, err = gittest.Try(clone, "fetch", "-q", "origin")
	if err == nil || !strings.Contains(strings.ToLower(out), "connect") {
		t.Fatalf("fetch from a stopped server: %v\n%s", err, out)
	}
	repo.WriteFile("services/api/service.toml", "[[service]]\nname = \"api\"\n")
	third := repo.Commit("add api")
	repo.Push()
	srv.Start()
	if srv.Addr() != addr {
		t.Fatalf("restarted on %s, want %s", srv.Addr(), addr)
	}
	gittest.Run(t, clone, "pull", "-q", "--ff-only", "origin", "main")
	if head := gittest.Run(t, clone, "rev-parse", "HEAD"); head != third {
		t.Fatalf("after restart HEAD %s, want %s", head, third)
	}
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
