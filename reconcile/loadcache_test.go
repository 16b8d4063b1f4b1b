package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/secrets"
)

// A load of an unchanged checkout is the cached one; a changed service.toml
// or a changed mount source is loaded again.
func TestLoadCacheReusesAnUnchangedCheckout(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	svc := func(image string) string {
		return "[[service]]\nname = \"web\"\nimage = \"" + image + "\"\n[[service.mounts]]\nsource = \"./services/shop/conf.txt\"\ntarget = \"/conf.txt\"\n"
	}
	write("services/shop/service.toml", svc("nginx:1.25"))
	write("services/shop/conf.txt", "a")
	ld := loader{path: ".", secrets: secrets.NewKeyring(nil), own: func(d *config.Desired) *config.Desired { return d }, cache: &loadCache{}}
	ctx := context.Background()
	first, err := ld.load(ctx, dir, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := ld.load(ctx, dir, "c1"); err != nil || again != first {
		t.Fatalf("unchanged checkout loaded again (%v)", err)
	}
	write("services/shop/service.toml", svc("nginx:1.26.1")) // another size, as for conf.txt below
	second, err := ld.load(ctx, dir, "c1")
	if err != nil || second == first || second.Services()[0].Image != "nginx:1.26.1" {
		t.Fatalf("changed service.toml: got image %q (%v), same load %v", second.Services()[0].Image, err, second == first)
	}
	write("services/shop/conf.txt", "bb") // another size: a rewrite within one clock tick keeps the times
	third, err := ld.load(ctx, dir, "c1")
	if err != nil || third == second || third.Services()[0].Mounts[0].Content == second.Services()[0].Mounts[0].Content {
		t.Fatalf("changed mount source: content hash %q, was %q (%v)", third.Services()[0].Mounts[0].Content, second.Services()[0].Mounts[0].Content, err)
	}
	// Another commit whose files stamp the same (rewritten within one
	// timestamp tick, same sizes, reused inodes) is loaded again.
	if fourth, err := ld.load(ctx, dir, "c2"); err != nil || fourth == third {
		t.Fatalf("another commit of the same stamps reused the load (%v)", err)
	}
}
