package files

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// theme is a 10 MB directory of 500 files in 10 subdirectories, the size of
// the theme directory the figures are given for (docs/guides/files.md).
func theme(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 20_000)
	for i := range 500 {
		for j := range buf {
			buf[j] = byte(r.Uint32())
		}
		p := filepath.Join(dir, fmt.Sprintf("d%d", i%10), fmt.Sprintf("f%03d.css", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkHashCold is a sync's hash cost for the theme on the first sync
// after a start (or after every file changed): every byte is read.
func BenchmarkHashCold(b *testing.B) {
	dir := theme(b)
	b.SetBytes(10_000_000)
	for b.Loop() {
		if _, err := NewHasher().Hash(context.Background(), dir); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHashCached is a sync's hash cost for the theme when nothing in it
// changed: a stat of each file, no read.
func BenchmarkHashCached(b *testing.B) {
	dir := theme(b)
	h := NewHasher()
	if _, err := h.Hash(context.Background(), dir); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := h.Hash(context.Background(), dir); err != nil {
			b.Fatal(err)
		}
	}
	if h.Reads() != 500 {
		b.Fatalf("the cached hashes read files: %d reads, want the first 500", h.Reads())
	}
}

// BenchmarkSnapshotCopy is the time to snapshot the theme for a new content
// hash: copy, hash, make read-only, rename into place.
func BenchmarkSnapshotCopy(b *testing.B) {
	dir := theme(b)
	s, err := NewStore(b.TempDir(), NewHasher(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(10_000_000)
	for b.Loop() {
		snap, release, err := s.Snapshot(context.Background(), dir, "")
		if err != nil {
			b.Fatal(err)
		}
		release()
		b.StopTimer()
		if err := removeTree(snap); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
