package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/internal/gittest"
)

func TestSyncClones(t *testing.T) {
	rem := gittest.NewRepo(t)
	rem.WriteFile("services/web/service.toml", "[[service]]\nname = \"web\"\n")
	rem.WriteFile("cluster.toml", "# cluster\n")
	sha := rem.CommitPush("Add web\n\nThe body.")
	wantTime, err := time.Parse(time.RFC3339, rem.Git("log", "-1", "--format=%cI"))
	if err != nil {
		t.Fatal(err)
	}
	for name, url := range map[string]string{"path": rem.BarePath(), "file URL": rem.FileURL()} {
		t.Run(name, func(t *testing.T) {
			r := newRepo(t, Options{URL: url})
			c := mustSync(t, r)
			if c.SHA != sha || c.Author != "Orca Test <test@orca-sync.test>" ||
				c.Message != "Add web\n\nThe body." || c.Subject() != "Add web" || !c.Time.Equal(wantTime) {
				t.Errorf("commit = %+v, want %s by Orca Test at %s", c, sha, wantTime)
			}
			if got := readFile(t, filepath.Join(r.Dir(), "services/web/service.toml")); !strings.Contains(got, "web") {
				t.Errorf("service.toml = %q", got)
			}
			if h, err := r.Head(); err != nil || h != c {
				t.Errorf("Head() = %+v, %v; want %+v", h, err, c)
			}
			if rev, err := Revision(r.Dir()); err != nil || rev != sha {
				t.Errorf("Revision = %q, %v", rev, err)
			}
			if got := gittest.Run(t, r.Dir(), "rev-parse", "--abbrev-ref", "HEAD"); got != "main" {
				t.Errorf("git CLI sees HEAD on %q, want main", got)
			}
			if st := gittest.Run(t, r.Dir(), "status", "--porcelain"); st != "" {
				t.Errorf("git status in the clone:\n%s", st)
			}
		})
	}
}

func TestSyncFollowsNewCommitsAndForcePush(t *testing.T) {
	rem := gittest.NewRepo(t)
	rem.WriteFile("a.txt", "one\n")
	rem.WriteFile("old/gone.txt", "bye\n")
	rem.CommitPush("one")
	r := newRepo(t, Options{URL: rem.BarePath()})
	mustSync(t, r)

	rem.WriteFile("a.txt", "two\n")
	rem.Git("rm", "-q", "-r", "old")
	sha2 := rem.CommitPush("two")
	if c := mustSync(t, r); c.SHA != sha2 {
		t.Fatalf("after a new commit Sync = %s, want %s", c.SHA, sha2)
	}
	if got := readFile(t, filepath.Join(r.Dir(), "a.txt")); got != "two\n" {
		t.Errorf("a.txt = %q", got)
	}
	if exists(filepath.Join(r.Dir(), "old")) {
		t.Error("a directory deleted upstream is still in the work tree")
	}

	// Rewrite history: sha2 is no longer on the branch.
	rem.WriteFile("a.txt", "amended\n")
	rem.Git("add", "-A")
	rem.Git("commit", "-q", "--amend", "-m", "two, amended")
	rem.Git("push", "-q", "-f", "origin", "main")
	sha3 := rem.Git("rev-parse", "HEAD")
	c := mustSync(t, r)
	if c.SHA != sha3 || c.Subject() != "two, amended" {
		t.Fatalf("after a force-push Sync = %s %q, want %s", c.SHA, c.Subject(), sha3)
	}
	if got := readFile(t, filepath.Join(r.Dir(), "a.txt")); got != "amended\n" {
		t.Errorf("a.txt = %q after the force-push", got)
	}
	if c2 := mustSync(t, r); c2 != c {
		t.Errorf("a no-change Sync returned %+v, want %+v", c2, c)
	}
}

func TestSyncMakesTheWorkTreeEqualTheCommit(t *testing.T) {
	rem := gittest.NewRepo(t)
	rem.WriteFile(".gitignore", "*.log\n")
	rem.WriteFile("keep.txt", "keep\n")
	rem.WriteFile("dir/tracked.txt", "tracked\n")
	for link, to := range map[string]string{"link": "keep.txt", "dir/up": "../keep.txt", "outside": "/etc/hostname"} {
		if err := os.Symlink(to, filepath.Join(rem.Dir(), link)); err != nil {
			t.Fatal(err)
		}
	}
	rem.CommitPush("one")
	r := newRepo(t, Options{URL: rem.BarePath()})
	mustSync(t, r)
	want := treeFiles(t, r.Dir())
	if !slices.Equal(want, []string{".gitignore", "dir/tracked.txt", "dir/up", "keep.txt", "link", "outside"}) {
		t.Fatalf("checkout = %v", want)
	}
	checkLinks := func() {
		t.Helper()
		for link, to := range map[string]string{"link": "keep.txt", "dir/up": "../keep.txt", "outside": "/etc/hostname"} {
			if got, err := os.Readlink(filepath.Join(r.Dir(), link)); err != nil || got != to {
				t.Errorf("symlink %s -> %q, %v; want %q", link, got, err, to)
			}
		}
	}
	checkLinks()
	if err := os.Remove(filepath.Join(r.Dir(), "link")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(r.Dir(), "link"), "a file where a symlink was")

	writeFile(t, filepath.Join(r.Dir(), "untracked.txt"), "x")
	writeFile(t, filepath.Join(r.Dir(), "new/deep/file.txt"), "x")
	writeFile(t, filepath.Join(r.Dir(), "dir/extra.txt"), "x")
	writeFile(t, filepath.Join(r.Dir(), "ignored.log"), "x")
	writeFile(t, filepath.Join(r.Dir(), "keep.txt"), "edited locally\n")
	if err := os.Remove(filepath.Join(r.Dir(), "dir/tracked.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(r.Dir(), "empty/dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustSync(t, r)
	if got := treeFiles(t, r.Dir()); !slices.Equal(got, want) {
		t.Errorf("work tree after Sync = %v, want %v", got, want)
	}
	checkLinks()
	for _, p := range []string{"new", "empty"} {
		if exists(filepath.Join(r.Dir(), p)) {
			t.Errorf("untracked directory %s survived Sync", p)
		}
	}
	if got := readFile(t, filepath.Join(r.Dir(), "keep.txt")); got != "keep\n" {
		t.Errorf("a locally edited file = %q after Sync", got)
	}
	if got := readFile(t, filepath.Join(r.Dir(), "dir/tracked.txt")); got != "tracked\n" {
		t.Errorf("a locally deleted file = %q after Sync", got)
	}
}

func TestSyncKeepsLastGoodCheckoutWhenRemoteIsGone(t *testing.T) {
	rem := gittest.NewRepo(t)
	rem.WriteFile("a.txt", "good\n")
	good := rem.CommitPush("good")
	r := newRepo(t, Options{URL: rem.FileURL()})
	mustSync(t, r)

	moved := rem.BarePath() + ".moved"
	if err := os.Rename(rem.BarePath(), moved); err != nil {
		t.Fatal(err)
	}
	err := syncErr(t, r)
	t.Logf("remote gone: %v", err)
	if !strings.Contains(err.Error(), "fetch "+rem.FileURL()+" main: ") {
		t.Errorf("error %q does not say which fetch failed", err)
	}
	if got := readFile(t, filepath.Join(r.Dir(), "a.txt")); got != "good\n" {
		t.Errorf("a.txt = %q after a failed fetch", got)
	}
	if h, err := r.Head(); err != nil || h.SHA != good {
		t.Errorf("Head() = %s, %v after a failed fetch; want %s", h.SHA, err, good)
	}

	if err := os.Rename(moved, rem.BarePath()); err != nil {
		t.Fatal(err)
	}
	rem.WriteFile("a.txt", "next\n")
	next := rem.CommitPush("next")
	if c := mustSync(t, r); c.SHA != next {
		t.Errorf("after the remote is back Sync = %s, want %s", c.SHA, next)
	}
}

func TestSyncReplacesCloneOfAnotherURL(t *testing.T) {
	remA, remB := gittest.NewRepo(t), gittest.NewRepo(t)
	remA.WriteFile("a.txt", "a\n")
	remA.CommitPush("a")
	remB.WriteFile("b.txt", "b\n")
	shaB := remB.CommitPush("b")
	dir := filepath.Join(t.TempDir(), "repo")
	mustSync(t, newRepo(t, Options{URL: remA.BarePath(), Dir: dir}))

	r := newRepo(t, Options{URL: remB.BarePath(), Dir: dir})
	if c := mustSync(t, r); c.SHA != shaB {
		t.Fatalf("Sync = %s, want %s", c.SHA, shaB)
	}
	if got := treeFiles(t, dir); !slices.Equal(got, []string{"b.txt"}) {
		t.Errorf("work tree = %v, want [b.txt]", got)
	}
	if got := gittest.Run(t, dir, "remote", "get-url", "origin"); got != remB.BarePath() {
		t.Errorf("origin = %s, want %s", got, remB.BarePath())
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".repo.*")); len(leftovers) > 0 {
		t.Errorf("temporary directories left: %v", leftovers)
	}
}

func TestSyncReplacesBrokenClone(t *testing.T) {
	breakers := map[string]func(gitDir string) error{
		"garbage HEAD": func(g string) error { return os.WriteFile(filepath.Join(g, "HEAD"), []byte("garbage"), 0o644) },
		"no objects":   func(g string) error { return os.RemoveAll(filepath.Join(g, "objects")) },
		"bad config":   func(g string) error { return os.WriteFile(filepath.Join(g, "config"), []byte("[[[["), 0o644) },
		"bad index":    func(g string) error { return os.WriteFile(filepath.Join(g, "index"), []byte("DIRC junk"), 0o644) },
		"no .git":      func(g string) error { return os.RemoveAll(g) },
	}
	rem := gittest.NewRepo(t)
	rem.WriteFile("a.txt", "a\n")
	sha := rem.CommitPush("a")
	for name, breakIt := range breakers {
		t.Run(name, func(t *testing.T) {
			r := newRepo(t, Options{URL: rem.BarePath()})
			mustSync(t, r)
			if err := breakIt(filepath.Join(r.Dir(), ".git")); err != nil {
				t.Fatal(err)
			}
			if name == "no .git" {
				// A work tree without .git is not ours to remove.
				err := syncErr(t, r)
				if !strings.Contains(err.Error(), "not a git clone") {
					t.Errorf("error = %v", err)
				}
				return
			}
			if c := mustSync(t, r); c.SHA != sha {
				t.Errorf("Sync = %s, want %s", c.SHA, sha)
			}
			if got := readFile(t, filepath.Join(r.Dir(), "a.txt")); got != "a\n" {
				t.Errorf("a.txt = %q", got)
			}
		})
	}
}

func TestSyncMissingBranch(t *testing.T) {
	rem := gittest.NewRepo(t)
	rem.WriteFile("a.txt", "a\n")
	rem.CommitPush("a")

	r := newRepo(t, Options{URL: rem.BarePath(), Branch: "nope"})
	err := syncErr(t, r)
	t.Logf("missing branch: %v", err)
	if !strings.Contains(err.Error(), "fetch "+rem.BarePath()+" nope: refs/heads/nope does not exist on the remote") {
		t.Errorf("error = %v", err)
	}
	if exists(r.Dir()) {
		t.Error("a failed first clone left the clone directory behind")
	}
	if entries, _ := os.ReadDir(filepath.Dir(r.Dir())); len(entries) != 0 {
		t.Errorf("a failed first clone left %v", entries)
	}

	// A tracked branch deleted upstream: the last good checkout stays.
	rem.Git("push", "-q", "origin", "main:gone")
	r = newRepo(t, Options{URL: rem.BarePath(), Branch: "gone"})
	good := mustSync(t, r)
	rem.Git("push", "-q", "origin", ":gone")
	if err := syncErr(t, r); !strings.Contains(err.Error(), "does not exist on the remote") {
		t.Errorf("error = %v", err)
	}
	if h, err := r.Head(); err != nil || h != good {
		t.Errorf("Head() = %+v, %v; want %+v", h, err, good)
	}
}

func TestFetchRef(t *testing.T) {
	rem := gittest.NewRepo(t)
	rem.WriteFile("a.txt", "main\n")
	mainSHA := rem.CommitPush("main")
	rem.Git("checkout", "-q", "-b", "feature")
	rem.WriteFile("a.txt", "pull request\n")
	rem.Git("commit", "-q", "-am", "change a")
	prSHA := rem.Git("rev-parse", "HEAD")
	rem.Git("push", "-q", "origin", "HEAD:refs/pull/7/head")

	r := newRepo(t, Options{URL: rem.BarePath()})
	mustSync(t, r)
	dir := filepath.Join(t.TempDir(), "pr-7")
	ctx := context.Background()
	c, err := r.FetchRef(ctx, "refs/pull/7/head", dir)
	if err != nil || c.SHA != prSHA {
		t.Fatalf("FetchRef = %s, %v; want %s", c.SHA, err, prSHA)
	}
	if got := readFile(t, filepath.Join(dir, "a.txt")); got != "pull request\n" {
		t.Errorf("a.txt in the PR checkout = %q", got)
	}
	if h, err := r.Head(); err != nil || h.SHA != mainSHA {
		t.Errorf("the main clone moved to %s, %v", h.SHA, err)
	}
	// Again, into the same dir, after the PR changed (force-pushed).
	rem.Git("commit", "-q", "--amend", "-m", "change a, amended")
	rem.Git("push", "-q", "-f", "origin", "HEAD:refs/pull/7/head")
	if c, err := r.FetchRef(ctx, "refs/pull/7/head", dir); err != nil || c.SHA != rem.Git("rev-parse", "HEAD") {
		t.Errorf("second FetchRef = %s, %v", c.SHA, err)
	}
	if _, err := r.FetchRef(ctx, "main", dir); err != nil {
		t.Errorf("FetchRef of a branch name: %v", err)
	}
	if _, err := r.FetchRef(ctx, "refs/pull/8/head", dir); err == nil || !strings.Contains(err.Error(), "does not exist") || !errors.Is(err, ErrNoSuchRef) {
		t.Errorf("FetchRef of a missing ref: %v", err)
	}
	for _, bad := range []string{r.Dir(), filepath.Join(r.Dir(), "sub"), filepath.Dir(r.Dir())} {
		if _, err := r.FetchRef(ctx, "main", bad); err == nil || !strings.Contains(err.Error(), "overlaps") {
			t.Errorf("FetchRef into %s: %v, want an overlap error", bad, err)
		}
	}
}

func TestSyncAndHeadConcurrently(t *testing.T) {
	rem := gittest.NewRepo(t)
	rem.WriteFile("a.txt", "a\n")
	rem.CommitPush("a")
	r := newRepo(t, Options{URL: rem.BarePath()})
	mustSync(t, r)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 3 {
				if _, err := r.Sync(context.Background()); err != nil {
					t.Error(err)
				}
				if _, err := r.Head(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

func TestSyncCanceled(t *testing.T) {
	rem := gittest.NewRepo(t)
	rem.WriteFile("a.txt", "a\n")
	rem.CommitPush("a")
	r := newRepo(t, Options{URL: rem.BarePath()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Sync(ctx); err == nil {
		t.Fatal("Sync with a canceled context succeeded")
	}
	if exists(r.Dir()) {
		t.Error("a canceled first clone left the clone directory behind")
	}
}

// hundredProjects is a remote with 100 services/<p>/service.toml.
func hundredProjects(b *testing.B) *gittest.Repo {
	rem := gittest.NewRepo(b)
	for i := range 100 {
		rem.WriteFile(fmt.Sprintf("services/p%03d/service.toml", i), "[[service]]\nname = \"s\"\nimage = \"nginx:1\"\n")
	}
	rem.CommitPush("a hundred projects")
	return rem
}

// BenchmarkSyncNoChange is a Sync (fetch, reset, clean) with nothing new,
// from a local path remote (go-git runs git-upload-pack).
func BenchmarkSyncNoChange(b *testing.B) {
	rem := hundredProjects(b)
	r := newRepo(b, Options{URL: rem.BarePath(), Log: slog.New(slog.DiscardHandler)})
	mustSync(b, r)
	for b.Loop() {
		if _, err := r.Sync(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSyncNewCommit is a Sync that fetches one new commit (one changed
// file of a hundred projects) from a local path remote and checks it out.
func BenchmarkSyncNewCommit(b *testing.B) {
	rem := hundredProjects(b)
	r := newRepo(b, Options{URL: rem.BarePath(), Log: slog.New(slog.DiscardHandler)})
	mustSync(b, r)
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		rem.WriteFile("services/p000/service.toml", fmt.Sprintf("[[service]]\nname = \"s%d\"\nimage = \"nginx:1\"\n", i))
		want := rem.CommitPush("change")
		b.StartTimer()
		c, err := r.Sync(b.Context())
		if err != nil || c.SHA != want {
			b.Fatalf("Sync = %s, %v; want %s", c.SHA, err, want)
		}
	}
}
