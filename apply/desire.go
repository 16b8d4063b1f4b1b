package apply

import (
	"context"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

// Desire builds the planner's view of every service of d. A service whose
// pull_policy is "always" has the image ID its tag resolves to in its spec, so
// a moved tag is a change; with pull those images are pulled first, without
// it (a plan) the local image is used. A pull that fails keeps the local
// image, and the apply of that service then reports why. Secrets enter the
// spec by the keyed hash d.Secrets gives them, and the files of the checkout
// a service mounts by their content hash.
func Desire(ctx context.Context, rt Runtime, d *config.Desired, pull bool) []diff.Service {
	var out []diff.Service
	ids := map[string]string{}
	for _, s := range d.Services() {
		var imageID string
		if s.PullPolicy == config.PullAlways {
			id, seen := ids[s.Image]
			if !seen {
				id = resolveImage(ctx, rt, s.Image, pull)
				ids[s.Image] = id
			}
			imageID = id
		}
		spec := diff.NewSpec(s, diff.Inputs{ImageID: imageID, SecretHashes: secretHashes(d, s), MountHashes: mountHashes(s)})
		out = append(out, diff.Service{Service: s, Spec: spec, Hash: spec.Hash()})
	}
	return out
}

func resolveImage(ctx context.Context, rt Runtime, ref string, pull bool) string {
	if pull {
		_ = rt.Pull(ctx, ref) // reported by prepare when the image is still missing
	}
	id, err := rt.ImageID(ctx, ref)
	if err != nil {
		return ""
	}
	return id
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
