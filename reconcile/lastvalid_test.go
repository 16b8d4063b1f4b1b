package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/source"
)

// exportSource is a dirSource that can also write out the files of a commit
// it has held before, as source.Repo.Export does from the clone.
type exportSource struct {
	*dirSource
	files map[string]map[string]string // sha → path → content
}

func (s *exportSource) snapshot(t *testing.T) {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(s.dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(s.dir, p)
		files[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	s.files[s.commit.SHA] = files
}

func (s *exportSource) Export(_ context.Context, sha, dir string) (source.Commit, error) {
	_ = os.RemoveAll(dir)
	for rel, content := range s.files[sha] {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return source.Commit{}, err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return source.Commit{}, err
		}
	}
	return source.Commit{SHA: sha, Message: "commit " + sha}, nil
}

// A restart that finds the branch head invalid keeps the configuration of
// the last valid commit (webhook secret, tokens, routes), not the defaults:
// otherwise a restart during a bad commit would close the webhooks and empty
// the proxy's route table until git is fixed.
func TestRestartOnInvalidHeadKeepsLastValidConfig(t *testing.T) {
	src := &exportSource{files: map[string]map[string]string{}}
	l, _, rt, db := newTestLoop(t, func(o *Options) {
		src.dirSource = o.Source.(*dirSource)
		o.Source = src
	})
	if err := os.WriteFile(filepath.Join(src.dir, "cluster.toml"), []byte("[webhook]\nsecret = \"hook-secret\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src.write(t, "c1", web("app:v1"))
	src.snapshot(t)
	if rec := l.SyncOnce(context.Background(), "test"); rec.Result != ResultSucceeded {
		t.Fatalf("first sync: %+v", rec)
	}
	before := rt.IDs("web")
	src.write(t, "c2", web("app:v2")+"replica = 2\n")

	restarted := New(Options{Source: src, Runtime: rt, Store: db, Node: "n1", LastValidDir: filepath.Join(t.TempDir(), "last-valid")})
	if rec := restarted.SyncOnce(context.Background(), "start"); rec.Result != ResultInvalid {
		t.Fatalf("sync of the invalid head after a restart: %+v", rec)
	}
	if got := restarted.Cluster().Webhook.Secret; got != "hook-secret" {
		t.Errorf("after the restart the webhook secret is %q, want the last valid commit's", got)
	}
	st, _ := restarted.Status(context.Background())
	if st.Commit != "c1" || len(st.Errors) != 1 || !strings.Contains(st.Errors[0].Message, "unknown key") {
		t.Errorf("status = commit %q, errors %+v; want c1 running and c2's error", st.Commit, st.Errors)
	}
	if p, err := restarted.Plan(context.Background()); err != nil || p.HasChanges() {
		t.Errorf("plan of the last valid commit after the restart: %+v, %v; want no change", p, err)
	}
	if after := rt.IDs("web"); len(after) != 1 || after[firstKey(before)] != "app:v1" {
		t.Errorf("containers changed: %v -> %v", before, after)
	}
}
