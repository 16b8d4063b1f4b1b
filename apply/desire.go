package apply

import (
	"context"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

// Desire builds the planner's view of every service of d. A service whose
// pull_policy is "always" has the image ID its tag resolves to in its spec, so
// a moved tag is a change; with a puller those images are pulled first,
// without one (a plan) the local image is used. A pull that fails keeps the
// local image and is told in the service's PullErr; the apply of a service
// whose image is missing then reports why. Secrets enter the spec by the
// keyed hash d.Secrets gives them, and the files of the checkout a service
// mounts by their content hash.
func Desire(ctx context.Context, rt Runtime, d *config.Desired, pull *Puller) []diff.Service {
	return DesireBuilt(ctx, rt, d, pull, nil)
}

// BuildCommits tells the app commit a service with build runs: the one the
// last lookup of its branch found ("" for none).
type BuildCommits interface {
	Commit(s *config.Service) string
}

// DesireBuilt is Desire with the app commits of the services with build
// (nil: none known). Their images are never pulled.
func DesireBuilt(ctx context.Context, rt Runtime, d *config.Desired, pull *Puller, builds BuildCommits) []diff.Service {
	var out []diff.Service
	type resolved struct {
		id  string
		err error
	}
	ids := map[string]resolved{}
	for _, s := range d.Services() {
		var commit string
		if s.Build != nil && builds != nil {
			commit = builds.Commit(s)
		}
		var img resolved
		if s.PullPolicy == config.PullAlways && PullsOwnImage(s) {
			var seen bool
			if img, seen = ids[s.Image]; !seen {
				img.id, img.err = resolveImage(ctx, rt, d, s.Image, pull)
				ids[s.Image] = img
			}
		}
		spec := diff.NewSpec(s, diff.Inputs{ImageID: img.id, SecretHashes: secretHashes(d, s), MountHashes: mountHashes(s),
			BuildCommit: commit})
		out = append(out, diff.Service{Service: s, Spec: spec, Hash: spec.Hash(), PullErr: img.err})
	}
	return out
}

// resolveImage pulls ref (with a puller) and returns its local image ID,
// "" when the host has none, and the pull's error.
func resolveImage(ctx context.Context, rt Runtime, d *config.Desired, ref string, pull *Puller) (string, error) {
	var pullErr error
	if pull != nil {
		pullErr = pull.Pull(ctx, d, ref)
	}
	id, err := rt.ImageID(ctx, ref)
	if err != nil {
		return "", pullErr
	}
	return id, pullErr
}

// secretHashes are the keyed hashes of the secrets s uses. Without resolved
// secrets there are none: such a checkout is never applied, since expanding
// its references fails.
func secretHashes(d *config.Desired, s *config.Service) map[string]string {
	if d.Secrets == nil || len(s.SecretRefs) == 0 {
		return nil
	}
	m := make(map[string]string, len(s.SecretRefs))
	for _, name := range s.SecretRefs {
		m[name] = d.Secrets.Hash(s.Project, name)
	}
	return m
}

// mountHashes are the content hashes of s's `./` mounts by target, as
// files.Hasher's Resolve set them on the loaded checkout.
func mountHashes(s *config.Service) map[string]string {
	var m map[string]string
	for _, mt := range s.Mounts {
		if mt.Content == "" {
			continue
		}
		if m == nil {
			m = map[string]string{}
		}
		m[mt.Target] = mt.Content
	}
	return m
}
