// Package gittest is the one git fixture of orca-sync's tests: a working
// repository with a bare remote it pushes to, and a smart-HTTP server (the
// machine's git http-backend) in front of bare remotes. It drives the git
// CLI, which the tests need: a missing git fails them, it never skips.
//
// It is test support: only _test.go files import it.
package gittest

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The identity of every commit a Repo makes.
const (
	AuthorName  = "Orca Test"
	AuthorEmail = "test@orca-sync.test"
)

// Env is the environment for git commands run by tests: the caller's
// environment without any GIT_* variable (tests may run inside a git hook),
// no system or global config (no credential helpers, signing, ...), never a
// terminal prompt, C locale.
func Env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") && !strings.HasPrefix(kv, "SSH_ASKPASS=") && !strings.HasPrefix(kv, "LC_ALL=") {
			env = append(env, kv)
		}
	}
	return append(env, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
}

// Try runs git in dir (with Env) and returns its trimmed combined output.
func Try(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = Env()
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Run is Try that fails the test on error.
func Run(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := Try(dir, args...)
	if err != nil {
		t.Fatalf("git %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return out
}

// Repo is a working repository on branch main with a bare remote
// ("origin") it pushes to. Its methods fail the test on error; call them from
// the test goroutine.
type Repo struct {
	t    testing.TB
	dir  string
	bare string
}

// NewRepo makes a repository and its remote in a temp dir of t, both empty.
func NewRepo(t testing.TB) *Repo {
	t.Helper()
	root := t.TempDir()
	r := &Repo{t: t, dir: filepath.Join(root, "work"), bare: filepath.Join(root, "remote.git")}
	Run(t, root, "init", "-q", "-b", "main", r.dir)
	Run(t, root, "init", "-q", "--bare", "-b", "main", r.bare)
	r.Git("config", "user.name", AuthorName)
	r.Git("config", "user.email", AuthorEmail)
	r.Git("config", "commit.gpgsign", "false")
	r.Git("remote", "add", "origin", r.bare)
	return r
}

// Git runs git in the checkout and returns its trimmed output.
func (r *Repo) Git(args ...string) string {
	r.t.Helper()
	return Run(r.t, r.dir, args...)
}

// Dir is the working checkout.
func (r *Repo) Dir() string { return r.dir }

// BarePath is the bare remote the repository pushes to.
func (r *Repo) BarePath() string { return r.bare }

// FileURL is the file:// URL of the bare remote.
func (r *Repo) FileURL() string { return (&url.URL{Scheme: "file", Path: r.bare}).String() }

// WriteFile writes content to rel (slash-separated, relative to the
// checkout), creating directories.
func (r *Repo) WriteFile(rel, content string) {
	r.t.Helper()
	p := filepath.Join(r.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// WriteExecutable writes data to rel with mode 0755, so git records it as
// executable (a static binary an app repository commits).
func (r *Repo) WriteExecutable(rel string, data []byte) {
	r.t.Helper()
	p := filepath.Join(r.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o755); err != nil {
		r.t.Fatal(err)
	}
}

// Remove deletes rel (a file or a whole directory) from the checkout.
func (r *Repo) Remove(rel string) {
	r.t.Helper()
	if err := os.RemoveAll(filepath.Join(r.dir, filepath.FromSlash(rel))); err != nil {
		r.t.Fatal(err)
	}
}

// Commit stages everything and commits (also when nothing changed); it
// returns the new HEAD.
func (r *Repo) Commit(msg string) string {
	r.t.Helper()
	r.Git("add", "-A")
	r.Git("commit", "-q", "--allow-empty", "-m", msg)
	return r.Head()
}

// CommitPush is Commit then Push; it returns the new HEAD.
func (r *Repo) CommitPush(msg string) string {
	r.t.Helper()
	sha := r.Commit(msg)
	r.Push()
	return sha
}

// Revert commits the revert of sha and returns the new HEAD.
func (r *Repo) Revert(sha string) string {
	r.t.Helper()
	r.Git("revert", "--no-edit", sha)
	return r.Head()
}

// Head is the full sha of HEAD.
func (r *Repo) Head() string {
	r.t.Helper()
	return r.Git("rev-parse", "HEAD")
}

// Push pushes main to the bare remote (forced, so tests may rewrite history).
func (r *Repo) Push() {
	r.t.Helper()
	r.Git("push", "-q", "--force", "origin", "main")
}
