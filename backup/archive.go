package backup

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// timeFormat is the UTC time in an archive's name.
const timeFormat = "20060102T150405Z"

// archiveExt ends every whole archive's name; temporary names never do.
const archiveExt = ".tar.gz"

// ArchiveName is the name of the archive of project's volume taken at t:
// <project>-<volume>-<YYYYMMDDTHHMMSSZ>.tar.gz.
func ArchiveName(project, volume string, t time.Time) string {
	return project + "-" + volume + "-" + t.UTC().Format(timeFormat) + archiveExt
}

// archiveTime is the time in an archive's name; ok is false for a name that
// is not an archive's (temporary files, anything else in the target).
func archiveTime(name string) (time.Time, bool) {
	base, found := strings.CutSuffix(name, archiveExt)
	i := strings.LastIndexByte(base, '-')
	if !found || i < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(timeFormat, base[i+1:])
	return t, err == nil
}

// counts is what an archive holds.
type counts struct {
	files int
	bytes int64
}

// repack reads the engine's tar of a volume's mount point, whose entries all
// sit under the mount point's base name, and writes it to w as a gzip'd tar
// with paths relative to the volume's root (docs/guides/backups.md).
func repack(w io.Writer, engineTar io.Reader) (counts, error) {
	var n counts
	// BestSpeed: on already-compressed data (images, dumps written
	// compressed) the default level costs about 12 times the CPU for
	// nothing (BenchmarkRepack); text still shrinks well.
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed) // a valid level: no error
	tw := tar.NewWriter(zw)
	tr := tar.NewReader(engineTar)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("read the volume's files: %w", err)
		}
		rel := stripFirst(h.Name)
		if rel == "" {
			continue // the mount point itself
		}
		h.Name = rel
		if h.Typeflag == tar.TypeLink {
			h.Linkname = stripFirst(h.Linkname)
		}
		if err := tw.WriteHeader(h); err != nil {
			return n, fmt.Errorf("write the archive: %w", err)
		}
		c, err := io.Copy(tw, tr)
		if err != nil {
			return n, fmt.Errorf("copy %s into the archive: %w", rel, err)
		}
		if h.Typeflag == tar.TypeReg {
			n.files++
			n.bytes += c
		}
	}
	if err := tw.Close(); err != nil {
		return n, fmt.Errorf("write the archive: %w", err)
	}
	if err := zw.Close(); err != nil {
		return n, fmt.Errorf("write the archive: %w", err)
	}
	return n, nil
}

// stripFirst drops the first element of a tar path ("data/a/b" is "a/b").
func stripFirst(name string) string {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	_, rest, _ := strings.Cut(name, "/")
	return rest
}

// verify reads a whole gzip'd tar, so that a restore refuses a damaged
// archive before it stops anything.
func verify(r io.Reader) (counts, error) {
	var n counts
	zr, err := gzip.NewReader(r)
	if err != nil {
		return n, fmt.Errorf("not a gzip'd tar: %w", err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("damaged archive: %w", err)
		}
		c, err := io.Copy(io.Discard, tr)
		if err != nil {
			return n, fmt.Errorf("damaged archive at %s: %w", h.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			n.files++
			n.bytes += c
		}
	}
}
