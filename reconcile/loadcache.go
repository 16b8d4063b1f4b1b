package reconcile

import (
	"sync"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/files"
)

// loadCache keeps the last valid load of a checkout: a sync of an unchanged
// tree reuses it rather than parsing every service.toml, hashing the mounts
// and decrypting the secrets again, which at 1,000 services is most of a
// no-change sync's time (docs/design.md#the-cost-of-a-sync). Unchanged means
// the same files under the infra tree and the same mount sources, by
// files.Stamp (inode, size, modification and change times). A loaded Desired is never changed after
// the load, so syncs may share it.
type loadCache struct {
	mu sync.Mutex
	// dir and tree are the checkout and the stamp of its infra tree taken
	// before the load; mounts are the sources the load hashed, and
	// mountStamp their stamp.
	dir, tree  string
	mounts     []string
	mountStamp string
	d          *config.Desired
}

// get returns the cached load of dir when its stamps still hold.
func (c *loadCache) get(dir, tree string) *config.Desired {
	if c == nil || tree == "" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.d == nil || c.dir != dir || c.tree != tree || files.Stamp(c.mounts...) != c.mountStamp {
		return nil
	}
	return c.d
}

// put keeps a valid load of dir made after its tree was stamped tree.
func (c *loadCache) put(dir, tree string, d *config.Desired) {
	if c == nil || tree == "" {
		return
	}
	var mounts []string
	for _, s := range d.Services() {
		for _, m := range s.Mounts {
			if m.FromCheckout() {
				mounts = append(mounts, m.HostPath)
			}
		}
	}
	ms := files.Stamp(mounts...)
	c.mu.Lock()
	c.dir, c.tree, c.mounts, c.mountStamp, c.d = dir, tree, mounts, ms, d
	c.mu.Unlock()
}
