package source

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/orca-sync/orca-sync/internal/gittest"
)

// TestLocalRemoteNeedsNoGit clones, fetches a new commit and asks for the
// remote head from a local remote, given as a file:// URL and as a plain
// path, with PATH pointing at an empty directory: no git binary (nor
// git-upload-pack) can be found, so all of it must happen in-process.
func TestLocalRemoteNeedsNoGit(t *testing.T) {
	for name, url := range map[string]func(*gittest.Repo) string{
		"file URL":  (*gittest.Repo).FileURL,
		"path":      (*gittest.Repo).BarePath,
		"work tree": (*gittest.Repo).Dir,
	} {
		t.Run(name, func(t *testing.T) {
			rem := gittest.NewRepo(t)
			rem.WriteFile("a.txt", "one\n")
			first := rem.CommitPush("one")
			r := newRepo(t, Options{URL: url(rem)})

			noGit := t.TempDir()
			withGit := os.Getenv("PATH")
			t.Setenv("PATH", noGit)
			if p, err := exec.LookPath("git-upload-pack"); err == nil {
				t.Fatalf("git-upload-pack is still found at %s", p)
			}
			if got, err := r.RemoteHead(t.Context()); err != nil || got != first {
				t.Fatalf("RemoteHead = %q, %v; want %s", got, err, first)
			}
			if c := mustSync(t, r); c.SHA != first {
				t.Fatalf("first Sync (clone) = %s, want %s", c.SHA, first)
			}

			os.Setenv("PATH", withGit) // the test's own pushes use git
			rem.WriteFile("a.txt", "two\n")
			rem.WriteFile("sub/b.txt", "new\n")
			second := rem.CommitPush("two")
			os.Setenv("PATH", noGit)

			if got, err := r.RemoteHead(t.Context()); err != nil || got != second {
				t.Fatalf("RemoteHead after a push = %q, %v; want %s", got, err, second)
			}
			if c := mustSync(t, r); c.SHA != second {
				t.Fatalf("Sync after a push = %s, want %s", c.SHA, second)
			}
			if got := readFile(t, filepath.Join(r.Dir(), "a.txt")); got != "two\n" {
				t.Errorf("a.txt = %q after the fetch, want %q", got, "two\n")
			}
			if got := readFile(t, filepath.Join(r.Dir(), "sub/b.txt")); got != "new\n" {
				t.Errorf("sub/b.txt = %q after the fetch, want %q", got, "new\n")
			}
			if c := mustSync(t, r); c.SHA != second {
				t.Errorf("Sync with nothing new = %s, want %s", c.SHA, second)
			}
			os.Setenv("PATH", withGit)
			if got := gittest.Run(t, r.Dir(), "fsck", "--strict"); got != "" {
				t.Errorf("git fsck of the clone: %s", got)
			}
		})
	}
}
