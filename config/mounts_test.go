package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMountSymlinkOutOfCheckout: a source that resolves outside the
// checkout through a symlink is an error naming the file and line; one that
// stays inside is fine.
func TestMountSymlinkOutOfCheckout(t *testing.T) {
	root := writeTree(t, map[string]string{
		"services/a/service.toml": "[[service]]\nname = \"web\"\nimage = \"app:v1\"\n" +
			"[[service.mounts]]\nsource = \"./services/a/config/hostname\"\ntarget = \"/etc/x\"\n" +
			"[[service.mounts]]\nsource = \"./services/a/inside\"\ntarget = \"/etc/y\"\n",
		"services/a/real/f": "ok\n",
	})
	if err := os.Symlink("/etc", filepath.Join(root, "services/a/config")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(root, "services/a/inside")); err != nil {
		t.Fatal(err)
	}
	_, err := Load(root)
	want := "services/a/service.toml:5: web: mounts: mount source ./services/a/config/hostname resolves outside the checkout"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Load: %v\nwant %q", err, want)
	}
	if strings.Contains(err.Error(), "inside") {
		t.Errorf("a symlink that stays in the checkout is refused: %v", err)
	}
}

// TestMountReadOnlyDefault: a file of the checkout is read-only unless
// read_only = false; a host path stays writable unless read_only = true.
func TestMountReadOnlyDefault(t *testing.T) {
	root := writeTree(t, map[string]string{
		"services/a/service.toml": "[[service]]\nname = \"web\"\nimage = \"app:v1\"\nmounts = [\n" +
			"  {source = \"./services/a/c1\", target = \"/c1\"},\n" +
			"  {source = \"./services/a/c2\", target = \"/c2\", read_only = false},\n" +
			"  {source = \"/srv/h1\", target = \"/h1\"},\n" +
			"  {source = \"/srv/h2\", target = \"/h2\", read_only = true},\n]\n",
		"services/a/c1": "", "services/a/c2": "",
	})
	d, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, m := range d.Services()[0].Mounts {
		got[m.Target] = m.ReadOnly
	}
	want := map[string]bool{"/c1": true, "/c2": false, "/h1": false, "/h2": true}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: read_only %v, want %v", k, got[k], v)
		}
	}
	if l := d.Services()[0].Mounts[2].Line; l != 7 {
		t.Errorf("the third mount's line is %d, want 7", l)
	}
}
