package apply

import (
	"context"
	"fmt"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

// Desire builds the planner's view of every service of d. A service whose
// pull_policy is "always" has the image ID its tag resolves to in its spec, so
// a moved tag is a change; with pull those images are pulled first, without
// it (a plan) the local image is used. A pull that fails keeps the local
// image, and the apply of that service then reports why.
func Desire(ctx context.Context, rt Runtime, d *config.Desired, pull bool, secretHashes map[string]string) []diff.Service {
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
		spec := diff.NewSpec(s, imageID, secretHashes)
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

// MissingSecrets reports every ${secrets.NAME} of d that have cannot resolve,
// at the service that uses it, so a commit that uses an unknown secret is
// refused whole rather than deployed with a literal or empty value.
func MissingSecrets(d *config.Desired, have func(project, name string) bool, why string) config.Errors {
	var errs config.Errors
	for _, s := range d.Services() {
		for _, name := range s.SecretRefs {
			if !have(s.Project, name) {
				errs = append(errs, config.Error{File: s.File, Line: s.Line, Service: s.Name,
					Message: fmt.Sprintf("${secrets.%s}: %s", name, why)})
			}
		}
	}
	for _, name := range d.Cluster.SecretRefs {
		if !have("", name) {
			errs = append(errs, config.Error{File: "cluster.toml", Message: fmt.Sprintf("${secrets.%s}: %s", name, why)})
		}
	}
	return errs
}
