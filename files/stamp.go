package files

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Stamp digests what tells a changed tree from an unchanged one without
// reading it: the path and fileID (inode, size, modification and change
// times, mode) of each entry under each path, .git directories left out.
// A path that does not exist stamps as missing; "" when one cannot be read.
func Stamp(paths ...string) string {
	h := sha256.New()
	for _, root := range paths {
		if _, err := os.Lstat(root); err != nil {
			fmt.Fprintf(h, "%s\x00missing\n", root)
			continue
		}
		err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() && e.Name() == ".git" {
				return filepath.SkipDir
			}
			fi, err := e.Info()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s\x00%+v\n", p, idOf(fi))
			return nil
		})
		if err != nil {
			return ""
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
