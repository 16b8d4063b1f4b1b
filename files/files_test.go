package files

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func write(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mustHash(t testing.TB, h *Hasher, p string) string {
	t.Helper()
	sum, err := h.Hash(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// TestHashCoversContent changes one thing at a time of a directory and
// checks that each changes its hash, and that what git does not record (the
// host's umask, times) does not.
func TestHashCoversContent(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"a.txt": "a", "css/site.css": "body{}", "js/app.js": "x"})
	h := NewHasher()
	base := mustHash(t, h, dir)
	changes := []struct {
		name   string
		change func()
		undo   func()
	}{
		{"nested bytes", func() { write(t, dir, map[string]string{"css/site.css": "body{color:red}"}) },
			func() { write(t, dir, map[string]string{"css/site.css": "body{}"}) }},
		{"exec bit", func() { os.Chmod(filepath.Join(dir, "js/app.js"), 0o755) },
			func() { os.Chmod(filepath.Join(dir, "js/app.js"), 0o644) }},
		{"renamed", func() { os.Rename(filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")) },
			func() { os.Rename(filepath.Join(dir, "b.txt"), filepath.Join(dir, "a.txt")) }},
		{"new empty dir", func() { os.Mkdir(filepath.Join(dir, "empty"), 0o755) },
			func() { os.Remove(filepath.Join(dir, "empty")) }},
		{"symlink", func() { os.Symlink("a.txt", filepath.Join(dir, "link")) },
			func() { os.Remove(filepath.Join(dir, "link")) }},
	}
	for _, c := range changes {
		c.change()
		if got := mustHash(t, h, dir); got == base {
			t.Errorf("%s: hash unchanged", c.name)
		}
		c.undo()
		if got := mustHash(t, h, dir); got != base {
			t.Errorf("%s undone: hash %s, want the first %s", c.name, got[:12], base[:12])
		}
	}
	os.Chmod(filepath.Join(dir, "a.txt"), 0o600) // a umask, not a mode git records
	if got := mustHash(t, h, dir); got != base {
		t.Errorf("read bits changed the hash")
	}
	os.Symlink("/etc", filepath.Join(dir, "out"))
	withLink := mustHash(t, h, dir)
	os.Remove(filepath.Join(dir, "out"))
	os.Symlink("/usr", filepath.Join(dir, "out"))
	if mustHash(t, h, dir) == withLink {
		t.Errorf("a symlink's target is not hashed")
	}
	if f := filepath.Join(dir, "a.txt"); mustHash(t, h, f) == mustHash(t, h, filepath.Join(dir, "js/app.js")) {
		t.Errorf("two files of other bytes hash alike")
	}
}

// TestHashCachesUnchangedFiles: a second hash of an unchanged directory
// reads no file; a changed file is read again, alone.
func TestHashCachesUnchangedFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"a": "1", "b/c": "2", "b/d": "3"})
	h := NewHasher()
	first := mustHash(t, h, dir)
	if h.Reads() != 3 {
		t.Fatalf("cold hash read %d files, want 3", h.Reads())
	}
	if mustHash(t, h, dir) != first || h.Reads() != 3 {
		t.Fatalf("cached hash read %d files in all, want still 3", h.Reads())
	}
	write(t, dir, map[string]string{"b/c": "22"})
	if mustHash(t, h, dir) == first || h.Reads() != 4 {
		t.Errorf("after one change: %d reads in all, want 4 and a new hash", h.Reads())
	}
}

func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := NewStore(t.TempDir(), NewHasher(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func entries(t testing.TB, s *Store) []string {
	t.Helper()
	des, err := os.ReadDir(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

// TestSnapshotIsImmutableCopy: a snapshot is a read-only copy named by its
// hash, which a change of the source does not reach, reused when asked for
// again, and refused when the source no longer has the planned content.
func TestSnapshotIsImmutableCopy(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	write(t, src, map[string]string{"app.yaml": "v: 1\n", "theme/a.css": "a"})
	os.Chmod(filepath.Join(src, "app.yaml"), 0o755)
	s := newStore(t)
	want := mustHash(t, s.Hasher(), src)
	snap, release, err := s.Snapshot(ctx, src, want)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if snap != filepath.Join(s.Root(), want) {
		t.Errorf("snapshot at %s, want %s", snap, filepath.Join(s.Root(), want))
	}
	if got := mustHash(t, s.Hasher(), snap); got != want {
		t.Errorf("the snapshot hashes %s, its source %s", got, want)
	}
	for p, mode := range map[string]os.FileMode{"": 0o555, "theme": 0o555, "app.yaml": 0o555, "theme/a.css": 0o444} {
		info, err := os.Stat(filepath.Join(snap, p))
		if err != nil || info.Mode().Perm() != mode {
			t.Errorf("%q: mode %v (%v), want %v", p, info.Mode().Perm(), err, mode)
		}
	}
	write(t, src, map[string]string{"app.yaml": "v: 2\n"})
	if b, _ := os.ReadFile(filepath.Join(snap, "app.yaml")); string(b) != "v: 1\n" {
		t.Errorf("the snapshot followed its source: %q", b)
	}
	again, release2, err := s.Snapshot(ctx, src, want)
	if err != nil || again != snap {
		t.Errorf("the same hash again: %s, %v; want the snapshot there", again, err)
	} else {
		release2()
	}
	other := strings.Repeat("0", 64)
	if _, _, err := s.Snapshot(ctx, src, other); err == nil || !strings.Contains(err.Error(), "changed since it was planned") {
		t.Errorf("a source that no longer has the planned content: %v", err)
	}
	if got := entries(t, s); !slices.Equal(got, []string{want}) {
		t.Errorf("store holds %v, want only %s (no temporary copy left)", got, want)
	}
}

// TestSnapshotChangedByHand: a snapshot changed on the host is reported
// modified and copied again for the next container; the changed one is set
// aside while its hash is in use.
func TestSnapshotChangedByHand(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	write(t, src, map[string]string{"app.yaml": "v: 1\n"})
	file := filepath.Join(src, "app.yaml")
	s := newStore(t)
	want := mustHash(t, s.Hasher(), file)
	snap, release, err := s.Snapshot(ctx, file, want)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if s.Modified(ctx, snap) {
		t.Fatal("a fresh snapshot reads as modified")
	}
	os.Chmod(snap, 0o644)
	os.WriteFile(snap, []byte("v: hacked\n"), 0o644)
	if !s.Modified(ctx, snap) {
		t.Fatal("a snapshot changed by hand is not modified")
	}
	again, release, err := s.Snapshot(ctx, file, want)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if b, _ := os.ReadFile(again); string(b) != "v: 1\n" || s.Modified(ctx, again) {
		t.Errorf("the new snapshot holds %q", b)
	}
	if got := entries(t, s); len(got) != 2 {
		t.Errorf("store holds %v, want the snapshot and the one set aside", got)
	}
	if _, err := s.Prune(ctx, []string{again}); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, s); len(got) != 2 {
		t.Errorf("while its hash is in use the set-aside copy must stay: %v", got)
	}
	if _, err := s.Prune(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, s); len(got) != 0 {
		t.Errorf("unused: store still holds %v", got)
	}
}

// TestPruneKeepsUsedAndLeased: a prune removes what no container uses,
// leftovers of a crash included, and keeps what is used or being mounted.
func TestPruneKeepsUsedAndLeased(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var snaps []string
	var releases []func()
	for _, v := range []string{"1", "2", "3"} {
		src := filepath.Join(t.TempDir(), "f")
		write(t, filepath.Dir(src), map[string]string{"f": v})
		snap, release, err := s.Snapshot(ctx, src, "")
		if err != nil {
			t.Fatal(err)
		}
		snaps, releases = append(snaps, snap), append(releases, release)
	}
	rw, releaseRW, err := s.Writable(ctx, snaps[0])
	if err != nil {
		t.Fatal(err)
	}
	// A crash between copy and rename leaves a temporary copy behind.
	os.MkdirAll(filepath.Join(s.Root(), tmpPrefix+strings.Repeat("a", 64)+"-dead"), 0o555)
	releases[1]()
	releases[2]()
	releaseRW()
	// snaps[0] leased, snaps[1] used, snaps[2] neither; rw used.
	removed, err := s.Prune(ctx, []string{snaps[1], rw})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 {
		t.Errorf("removed %v, want the unused snapshot and the temporary copy", removed)
	}
	got := entries(t, s)
	for _, keep := range []string{snaps[0], snaps[1], rw} {
		if !slices.Contains(got, filepath.Base(keep)) {
			t.Errorf("%s was removed: store holds %v", filepath.Base(keep), got)
		}
	}
	releases[0]()
	if _, err := s.Prune(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, s); len(got) != 0 {
		t.Errorf("store holds %v after all were released and unused", got)
	}
}

// TestWritableCopiesAreSeparate: each writable copy is its own, and writing
// to one changes neither the other nor the snapshot.
func TestWritableCopiesAreSeparate(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	write(t, src, map[string]string{"data/x": "orig"})
	s := newStore(t)
	snap, release, err := s.Snapshot(ctx, src, "")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	a, ra, err := s.Writable(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	defer ra()
	b, rb, err := s.Writable(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	defer rb()
	if err := os.WriteFile(filepath.Join(a, "data/x"), []byte("from a"), 0o644); err != nil {
		t.Fatalf("the writable copy is not writable: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(b, "data/x")); string(got) != "orig" {
		t.Errorf("copy b reads %q", got)
	}
	if s.Modified(ctx, snap) {
		t.Errorf("the snapshot changed")
	}
}
