package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestArchiveNameRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 12, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	name := ArchiveName("shop", "db-data", at)
	if name != "shop-db-data-20260112T020405Z.tar.gz" {
		t.Fatalf("name = %s", name)
	}
	if got, ok := archiveTime(name); !ok || !got.Equal(at) {
		t.Errorf("archiveTime = %v %v", got, ok)
	}
	for _, bad := range []string{".shop-db-20260112T020405Z.tar.gz.abc.partial", "notes.txt", "shop-db-2026.tar.gz"} {
		if _, ok := archiveTime(bad); ok {
			t.Errorf("%q parsed as an archive", bad)
		}
	}
}

// TestRepackStripsMountPoint: the engine's tar has every entry under the
// mount point's base name; the archive's paths are relative to the volume.
func TestRepackStripsMountPoint(t *testing.T) {
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	for _, e := range []struct{ name, body string }{{"data/", ""}, {"data/a.txt", "alpha"}, {"data/sub/", ""}, {"data/sub/b", "beta"}} {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		}
		tw.WriteHeader(h)
		io.WriteString(tw, e.body)
	}
	tw.Close()
	var out bytes.Buffer
	n, err := repack(&out, &in)
	if err != nil || n.files != 2 || n.bytes != 9 {
		t.Fatalf("repack = %+v, %v", n, err)
	}
	v, err := verify(bytes.NewReader(out.Bytes()))
	if err != nil || v != n {
		t.Fatalf("verify = %+v, %v", v, err)
	}
	if _, err := verify(bytes.NewReader(out.Bytes()[:out.Len()/2])); err == nil {
		t.Error("a truncated archive verified")
	}
}

// TestLocalTargetAtomicAndRetention: Put leaves only the final name; List
// ignores temporary and foreign files; retention deletes only archives
// dated older than the limit.
func TestLocalTargetAtomicAndRetention(t *testing.T) {
	dir := t.TempDir()
	tg := localTarget{dir: filepath.Join(dir, "b")}
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	fresh, old := ArchiveName("p", "v", now), ArchiveName("p", "v", now.AddDate(0, 0, -8))
	for _, n := range []string{fresh, old} {
		if err := tg.Put(ctx, n, strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(tg.dir, ".p-v-x.partial"), nil, 0o600)
	os.WriteFile(filepath.Join(tg.dir, "README"), nil, 0o600)
	removed, err := applyRetention(ctx, tg, 7, now)
	if err != nil || !slices.Equal(removed, []string{old}) {
		t.Fatalf("removed %v, %v", removed, err)
	}
	objs, _ := tg.List(ctx)
	if len(objs) != 1 || objs[0].Name != fresh {
		t.Errorf("list = %v", objs)
	}
	if removed, _ := applyRetention(ctx, tg, 0, now.AddDate(1, 0, 0)); removed != nil {
		t.Errorf("retention_days = 0 removed %v", removed)
	}
}

// BenchmarkRepack is the archive step alone (tar re-pack and gzip) on
// incompressible bytes: go test -run '^$' -bench Repack ./backup
func BenchmarkRepack(b *testing.B) {
	const size = 32 << 20
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	body := make([]byte, size)
	rand.Read(body)
	tw.WriteHeader(&tar.Header{Name: "data/f", Mode: 0o644, Size: size, Typeflag: tar.TypeReg})
	tw.Write(body)
	tw.Close()
	b.SetBytes(size)
	for b.Loop() {
		if _, err := repack(io.Discard, bytes.NewReader(in.Bytes())); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLocalTargetRemovesOldPartialFiles(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, ".shop-db-20200101T000000Z.tar.gz.abc.partial")
	young := filepath.Join(dir, ".shop-db-20260101T000000Z.tar.gz.def.partial")
	for _, p := range []string{old, young} {
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	l := localTarget{dir: dir}
	if err := l.Put(context.Background(), "shop-db-20261201T000000Z.tar.gz", strings.NewReader("archive"), 7); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("a .partial file a crash left two days ago is still there (%v)", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("a .partial file another writer may still be writing was removed: %v", err)
	}
}
