package source

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/internal/gittest"
)

func TestExportWritesAnEarlierCommitBesideTheCheckout(t *testing.T) {
	rem := gittest.NewRepo(t)
	rem.WriteFile("services/web/service.toml", "v1\n")
	rem.WriteFile("bin/run.sh", "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(rem.Dir(), "bin/run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	first := rem.CommitPush("one")
	rem.WriteFile("services/web/service.toml", "v2\n")
	rem.WriteFile("services/new/service.toml", "new\n")
	rem.CommitPush("two")
	r := newRepo(t, Options{URL: rem.BarePath()})
	mustSync(t, r)

	dir := filepath.Join(t.TempDir(), "last-valid")
	if err := os.MkdirAll(filepath.Join(dir, "stale"), 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := r.Export(context.Background(), first, dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.SHA != first || c.Subject() != "one" {
		t.Errorf("commit = %+v, want %s (one)", c, first)
	}
	if got := readFile(t, filepath.Join(dir, "services/web/service.toml")); got != "v1\n" {
		t.Errorf("exported service.toml = %q, want the first commit's", got)
	}
	for _, gone := range []string{"services/new", "stale", ".git"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); !os.IsNotExist(err) {
			t.Errorf("%s exists in the export (%v)", gone, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "bin/run.sh")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("bin/run.sh lost its executable bit: %v %v", fi, err)
	}
	if got := readFile(t, filepath.Join(r.Dir(), "services/web/service.toml")); got != "v2\n" {
		t.Errorf("the tracked checkout moved: service.toml = %q", got)
	}

	if _, err := r.Export(context.Background(), strings.Repeat("0", 40), dir); err == nil {
		t.Error("export of an unknown commit succeeded")
	}
	if _, err := r.Export(context.Background(), first, filepath.Join(r.Dir(), "x")); err == nil ||
		!strings.Contains(err.Error(), "overlaps") {
		t.Errorf("export into the clone: %v, want an overlap error", err)
	}
}
