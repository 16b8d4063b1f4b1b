package apply_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/apply/applytest"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/files"
)

// applyFiles writes content to the checkout's mounted file, plans a
// service of image mounting it and applies the plan with store.
func applyFiles(t *testing.T, f *applytest.Runtime, store *files.Store, root, image, content string) []apply.Result {
	t.Helper()
	ctx := context.Background()
	src := filepath.Join(root, "services/p/config/app.yaml")
	if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	s := testService("db", image, 1, config.StrategyRecreate)
	s.Mounts = []config.Mount{{Source: "./services/p/config/app.yaml", Target: "/etc/app.yaml", ReadOnly: true, HostPath: src}}
	d := &config.Desired{Root: root, Projects: []*config.Project{{Name: "p", Services: []*config.Service{s}}}}
	if err := store.Hasher().Resolve(ctx, d); err != nil {
		t.Fatal(err)
	}
	live, _ := f.List(ctx)
	plan := diff.Compute(apply.Desire(ctx, f, d, nil), live, diff.Options{Prune: true})
	return apply.New(f, apply.Options{Node: "n1", Files: store}).Apply(ctx, d, plan, "rev")
}

// TestFailedRolloutKeepsOldSnapshot: a recreate whose new container fails
// puts the old one back on the old snapshot (still there: prunes run after
// the apply), and the prune then removes the new, unused one.
func TestFailedRolloutKeepsOldSnapshot(t *testing.T) {
	f := applytest.NewRuntime()
	store, err := files.NewStore(t.TempDir(), files.NewHasher(), nil)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if r := onlyResult(t, applyFiles(t, f, store, root, "app:v1", "v: 1\n")); r.Failed() {
		t.Fatal(r.Error)
	}
	first, _ := f.List(context.Background())
	if len(first) != 1 || len(first[0].Binds) != 1 || filepath.Dir(first[0].Binds[0].Source) != store.Root() {
		t.Fatalf("containers %+v, want one mounting a snapshot of %s", first, store.Root())
	}
	old := first[0].Binds[0].Source
	if r := onlyResult(t, applyFiles(t, f, store, root, "app:broken", "v: 2\n")); !r.Failed() {
		t.Fatalf("result %+v, want the broken rollout undone", r)
	}
	after, _ := f.List(context.Background())
	if len(after) != 1 || after[0].Binds[0].Source != old {
		t.Fatalf("after the undo: %+v, want the old container back on %s", after, old)
	}
	if b, _ := os.ReadFile(old); string(b) != "v: 1\n" {
		t.Errorf("the old snapshot reads %q", b)
	}
	des, _ := os.ReadDir(store.Root())
	var held []string
	for _, de := range des {
		held = append(held, filepath.Join(store.Root(), de.Name()))
	}
	if !slices.Equal(held, []string{old}) {
		t.Errorf("store holds %v, want only the snapshot in use %s", held, old)
	}
}
