//go:build linux

package files

import (
	"io/fs"
	"syscall"
)

// fileID is what tells a changed file from an unchanged one without reading
// it: any write moves the modification or change time, a file replaced (as
// git checkout does) has a new inode.
type fileID struct {
	ino, dev, size, mtime, ctime int64
	mode                         fs.FileMode
}

func idOf(info fs.FileInfo) fileID {
	id := fileID{size: info.Size(), mtime: info.ModTime().UnixNano(), mode: info.Mode()}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		id.ino, id.dev = int64(st.Ino), int64(st.Dev)
		id.ctime = int64(st.Ctim.Sec)*1e9 + int64(st.Ctim.Nsec)
	}
	return id
}
