package diff

import (
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/config"
)

func mounting(content string) Service {
	s := svc("shop", "web", func(s *config.Service) {
		s.Mounts = []config.Mount{
			{Source: "./services/shop/config/app.yaml", Target: "/etc/app.yaml", ReadOnly: true, Content: content},
			{Source: "/srv/data", Target: "/data"},
		}
	})
	hashes := map[string]string{}
	for _, m := range s.Mounts {
		if m.Content != "" {
			hashes[m.Target] = m.Content
		}
	}
	// A hash given for a host path's target is not the content of a file
	// of the checkout: it never enters the spec.
	hashes["/data"] = "ignored"
	spec := NewSpec(s, Inputs{MountHashes: hashes})
	return Service{Service: s, Spec: spec, Hash: spec.Hash()}
}

// TestMountContentChanges: a changed file of the checkout is a new spec,
// and the plan names the mount and the file.
func TestMountContentChanges(t *testing.T) {
	a, b := mounting(strings.Repeat("a", 64)), mounting(strings.Repeat("b", 64))
	if a.Hash == b.Hash {
		t.Fatal("a mounted file's content does not change the spec hash")
	}
	fs := FieldChanges(&a.Spec, &b.Spec)
	if len(fs) != 1 || fs[0].String() != "mounts[/etc/app.yaml]: content changed (services/shop/config/app.yaml)" {
		t.Errorf("field changes %v", fs)
	}
	if _, ok := a.Spec.MountHashes["/data"]; ok {
		t.Errorf("a host path has a content hash in the spec: %v", a.Spec.MountHashes)
	}
}

// TestSpecWithoutCheckoutFilesUnchanged: the spec of a service without `./`
// mounts encodes as before files were hashed, so an upgrade rolls none of
// its containers (docs/guides/files.md).
func TestSpecWithoutCheckoutFilesUnchanged(t *testing.T) {
	d := desired(svc("shop", "web", func(s *config.Service) {
		s.Mounts = []config.Mount{{Source: "/srv/data", Target: "/data"}}
	}))
	want := `{"image":"app:v1","env":{"MODE":"prod"},"mounts":[{"source":"/srv/data","target":"/data","read_only":false}],` +
		`"aliases":["web"],"networks":["orca-shop"],"restart_policy":"unless-stopped"}`
	if got := d.Spec.Encode(); got != want {
		t.Errorf("spec\n%s\nwant\n%s", got, want)
	}
}

// TestDriftSnapshotModified: a snapshot changed by hand is drift of the
// containers that mount it.
func TestDriftSnapshotModified(t *testing.T) {
	d := mounting(strings.Repeat("a", 64))
	live := running(d, 2)
	fs := Drift(DriftInput{Desired: []Service{d}, Live: live, Deployed: map[string]int{d.Key(): 2},
		ModifiedMounts: map[string][]string{live[1].ID: {"/etc/app.yaml"}}})
	if len(fs) != 1 || fs[0].Kind != KindModified || fs[0].Container != live[1].Name ||
		fs[0].String() != "modified "+live[1].Name+": mounts[/etc/app.yaml]: content modified" {
		t.Errorf("findings %v", fs)
	}
}
