package build

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/internal/gittest"
)

// fakeEngine is a hermetic Engine: it reads the context, says what it got,
// and keeps the images it "built" by tag.
type fakeEngine struct {
	mu      sync.Mutex
	builds  []Request
	files   []map[string]string // per build: the context's files
	images  map[string]fakeImage
	removed []string
	// refuse makes the next builds fail with the builder's error, after
	// emitting lines.
	refuse string
	lines  []string
}

type fakeImage struct {
	id      string
	labels  map[string]string
	created time.Time
}

var _ Engine = (*fakeEngine)(nil)

func (f *fakeEngine) BuildImage(_ context.Context, req Request, line func(string)) error {
	files := map[string]string{}
	tr := tar.NewReader(req.Context)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.builds = append(f.builds, req)
	f.files = append(f.files, files)
	for _, l := range f.lines {
		line(l)
	}
	if f.refuse != "" {
		return &Refused{Message: f.refuse}
	}
	if f.images == nil {
		f.images = map[string]fakeImage{}
	}
	f.images[req.Tag] = fakeImage{id: fmt.Sprintf("sha256:%d", len(f.builds)), labels: req.Labels,
		created: time.Unix(int64(len(f.builds)), 0)}
	return nil
}

func (f *fakeEngine) ImageLabels(_ context.Context, ref string) (map[string]string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.images[ref]
	return img.labels, ok, nil
}

func (f *fakeEngine) BuiltImages(_ context.Context, service string) ([]Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Image
	for _, img := range f.images {
		if img.labels[LabelService] == service {
			out = append(out, Image{ID: img.id, Created: img.created})
		}
	}
	return out, nil
}

func (f *fakeEngine) RemoveImage(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for tag, img := range f.images {
		if img.id == id {
			delete(f.images, tag)
		}
	}
	f.removed = append(f.removed, id)
	return nil
}

// appRepo is an app repository with a Dockerfile in srv/ and a file beside it.
func appRepo(t *testing.T) *gittest.Repo {
	r := gittest.NewRepo(t)
	r.WriteFile("srv/Dockerfile", "FROM scratch\nCOPY hello /hello\n")
	r.WriteFile("srv/hello", "v1\n")
	r.WriteFile("README", "not in the context\n")
	r.WriteFile("srv/.dockerignore", "*.log\nDockerfile\n")
	r.WriteFile("srv/debug.log", "ignored\n")
	r.CommitPush("v1")
	return r
}

func newBuilder(t *testing.T, eng Engine) *Builder {
	return New(Options{Engine: eng, Dir: filepath.Join(t.TempDir(), "builds"),
		Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))})
}

func builtService(repoURL string) *config.Service {
	return &config.Service{Project: "shop", Name: "web", Build: &config.Build{Repo: repoURL, Branch: "main", Context: "srv", Dockerfile: "Dockerfile"}}
}

func desiredOf(s *config.Service) *config.Desired {
	return &config.Desired{Projects: []*config.Project{{Name: s.Project, Services: []*config.Service{s}}}}
}

// TestBuilderBuildsEachCommitOnce checks the lookup, the build of the
// commit's context, that the same commit and settings never build again,
// and that new args do.
func TestBuilderBuildsEachCommitOnce(t *testing.T) {
	rem := appRepo(t)
	eng := &fakeEngine{}
	b := newBuilder(t, eng)
	s := builtService(rem.FileURL())
	d := desiredOf(s)
	if errs := b.Resolve(t.Context(), d); len(errs) != 0 {
		t.Fatal(errs)
	}
	commit := b.Commit(s)
	if commit != rem.Head() {
		t.Fatalf("Commit = %q, want the branch head %s", commit, rem.Head())
	}
	built, err := b.Ensure(t.Context(), d, s, commit)
	if err != nil || !built {
		t.Fatalf("Ensure = %v, %v", built, err)
	}
	req := eng.builds[0]
	if req.Tag != "orca-build/shop-web:"+commit[:12] || req.Dockerfile != "Dockerfile" || req.Labels[LabelCommit] != commit {
		t.Errorf("request = %+v", req)
	}
	if files := eng.files[0]; files["hello"] != "v1\n" || files["Dockerfile"] == "" || files[".dockerignore"] == "" || len(files) != 3 {
		t.Errorf("context = %v, want srv/'s Dockerfile, .dockerignore and hello only (debug.log is ignored)", files)
	}
	if built, err := b.Ensure(t.Context(), d, s, commit); err != nil || built {
		t.Fatalf("second Ensure of the same commit = %v, %v; want no build", built, err)
	}
	s.Build.Args = map[string]string{"MODE": "debug"}
	if built, err := b.Ensure(t.Context(), d, s, commit); err != nil || !built || eng.builds[1].Args["MODE"] != "debug" {
		t.Fatalf("Ensure with new args = %v, %v; want a build with them", built, err)
	}
}

// TestBuilderKeepsThreeImages builds five commits and checks the two oldest
// images are removed.
func TestBuilderKeepsThreeImages(t *testing.T) {
	rem := appRepo(t)
	eng := &fakeEngine{}
	b := newBuilder(t, eng)
	s := builtService(rem.FileURL())
	d := desiredOf(s)
	for i := range 5 {
		rem.WriteFile("srv/hello", fmt.Sprintf("v%d\n", i+2))
		rem.CommitPush("next")
		if errs := b.Resolve(t.Context(), d); len(errs) != 0 {
			t.Fatal(errs)
		}
		if _, err := b.Ensure(t.Context(), d, s, b.Commit(s)); err != nil {
			t.Fatal(err)
		}
	}
	if len(eng.images) != DefaultKeep || strings.Join(eng.removed, ",") != "sha256:1,sha256:2" {
		t.Fatalf("images %v, removed %v; want the newest 3 kept", eng.images, eng.removed)
	}
}

// TestBuilderRefusedBuild checks a failed build's error: refused, the
// builder's message, the last 20 lines only, secret values redacted.
func TestBuilderRefusedBuild(t *testing.T) {
	rem := appRepo(t)
	eng := &fakeEngine{refuse: "COPY failed: stat nothing: file does not exist"}
	for i := range 30 {
		eng.lines = append(eng.lines, fmt.Sprintf("line %d", i))
	}
	eng.lines = append(eng.lines, "token=hunter2-secret-value")
	b := newBuilder(t, eng)
	s := builtService(rem.FileURL())
	s.SecretRefs = []string{"TOKEN"}
	d := desiredOf(s)
	d.Secrets = fixedSecrets{"TOKEN": "hunter2-secret-value"}
	b.Resolve(t.Context(), d)
	_, err := b.Ensure(t.Context(), d, s, b.Commit(s))
	var be *Error
	if !errors.As(err, &be) || !be.Refused {
		t.Fatalf("error = %v, want a refused *Error", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "COPY failed") || !strings.HasPrefix(msg, "build "+rem.FileURL()+"@") {
		t.Errorf("error %q: want the repository and the builder's message first", msg)
	}
	if len(be.Tail) != tailLines || strings.Contains(msg, "line 10\n") || !strings.Contains(msg, "line 29") {
		t.Errorf("tail = %q, want the last %d lines", be.Tail, tailLines)
	}
	if strings.Contains(msg, "hunter2") || !strings.Contains(msg, "${secrets.TOKEN}") {
		t.Errorf("error %q shows the secret value", msg)
	}
}

// TestBuilderNoCommitAndMissingDockerfile: without a commit nothing is
// asked of the engine; a context without the Dockerfile is refused before
// the engine is.
func TestBuilderNoCommitAndMissingDockerfile(t *testing.T) {
	rem := appRepo(t)
	eng := &fakeEngine{}
	b := newBuilder(t, eng)
	s := builtService(rem.FileURL())
	d := desiredOf(s)
	if _, err := b.Ensure(t.Context(), d, s, ""); err == nil {
		t.Fatal("Ensure without a commit succeeded")
	}
	s.Build.Dockerfile = "Dockerfile.prod"
	b.Resolve(t.Context(), d)
	_, err := b.Ensure(t.Context(), d, s, b.Commit(s))
	var be *Error
	if !errors.As(err, &be) || !be.Refused || !strings.Contains(err.Error(), "no Dockerfile Dockerfile.prod") {
		t.Fatalf("error = %v", err)
	}
	if len(eng.builds) != 0 {
		t.Errorf("%d builds reached the engine", len(eng.builds))
	}
}

type fixedSecrets map[string]string

func (f fixedSecrets) Value(_, name string) (string, error) { return f[name], nil }
func (f fixedSecrets) Hash(_, name string) string           { return "h-" + name }

func TestCredentialsOnlyForTheInfraOrigin(t *testing.T) {
	cases := []struct {
		infra, app string
		same       bool
	}{
		{"https://git.example.com/ops/infra.git", "https://git.example.com/acme/api.git", true},
		{"https://git.example.com/ops/infra.git", "https://GIT.example.com/acme/api.git", true},
		{"https://git.example.com/ops/infra.git", "http://git.example.com/acme/api.git", false},
		{"https://git.example.com/ops/infra.git", "https://attacker.example/x.git", false},
		{"git@github.com:ops/infra.git", "git@github.com:acme/api.git", true},
		{"git@github.com:ops/infra.git", "https://github.com/acme/api.git", false},
		{"/srv/infra", "/srv/api", false},
	}
	for _, c := range cases {
		if got := sameOrigin(c.infra, c.app); got != c.same {
			t.Errorf("sameOrigin(%q, %q) = %v, want %v", c.infra, c.app, got, c.same)
		}
	}
}
