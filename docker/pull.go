package docker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/registryauth"
)

// Pull fetches ref, sending auth as the engine's X-Registry-Auth header.
// Progress goes to the logger: image-level lines at Info, each layer's
// status changes at Debug (the byte counters are not logged). A tag whose
// digest did not move downloads no layer: the engine compares the manifest
// first. Failures are *apply.PullError, classified for their hint.
func (d *Engine) Pull(ctx context.Context, ref string, auth registryauth.Auth) error {
	opts := client.ImagePullOptions{}
	if !auth.Empty() {
		enc, err := encodeAuth(auth)
		if err != nil {
			return pullError(ref, auth, err)
		}
		opts.RegistryAuth = enc
	}
	resp, err := d.cli.ImagePull(ctx, ref, opts)
	if err != nil {
		return pullError(ref, auth, err)
	}
	defer resp.Close()
	layers := map[string]string{} // layer ID → last status logged
	for m, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return pullError(ref, auth, fmt.Errorf("reading progress: %w", err))
		}
		if m.Error != nil {
			return pullError(ref, auth, m.Error)
		}
		if m.Status == "" {
			continue
		}
		if dockerIsLayerID(m.ID) {
			if layers[m.ID] == m.Status {
				continue
			}
			layers[m.ID] = m.Status
			d.log.Debug("pull", "image", ref, "layer", m.ID, "status", m.Status)
			continue
		}
		if m.ID != "" && !strings.Contains(m.Status, m.ID) {
			d.log.Info("pull", "image", ref, "status", m.ID+": "+m.Status)
		} else {
			d.log.Info("pull", "image", ref, "status", m.Status)
		}
	}
	return nil
}

// encodeAuth is the X-Registry-Auth header value: the engine's AuthConfig
// as JSON, base64url-encoded.
func encodeAuth(a registryauth.Auth) (string, error) {
	b, err := json.Marshal(registry.AuthConfig{Username: a.Username, Password: a.Password,
		ServerAddress: a.ServerAddress, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken})
	if err != nil {
		return "", fmt.Errorf("encode registry credentials: %w", err)
	}
	return base64.URLEncoding.EncodeToString(b), nil
}

// pullError classifies what the engine said of a failed pull. Engines word
// a refusal differently by version and registry (20.10 reports a registry's
// 401 as a 500 with the registry's text), so the text counts as much as
// the error's class.
func pullError(ref string, auth registryauth.Auth, err error) error {
	return &apply.PullError{Image: ref, Registry: auth.Registry, Source: auth.Source, Kind: pullKind(err), Err: err}
}

func pullKind(err error) string {
	msg := strings.ToLower(err.Error())
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(msg, s) {
				return true
			}
		}
		return false
	}
	switch {
	case cerrdefs.IsUnauthorized(err) || cerrdefs.IsPermissionDenied(err) ||
		has("unauthorized", "no basic auth credentials", "authentication required", "access denied", "denied:", "incorrect username or password"):
		return apply.PullUnauthorized
	case has("connection refused", "no such host", "i/o timeout", "dial tcp", "tls: ", "server gave http response", "network is unreachable"):
		return apply.PullUnreachable
	case cerrdefs.IsNotFound(err) || has("manifest unknown", "not found", "does not exist"):
		return apply.PullNotFound
	}
	return apply.PullOther
}

// RepoDigest is the digest of image (an ID or a reference) in the
// repository of ref, "" when the image has none there (built on this host,
// or never pulled from nor pushed to that repository). Results are cached
// by image ID once known: a digest names its content for good. While an
// Events stream runs, every answer is cached until an image event (a tag
// moved, a pull, a push, a removal) clears them, so a sync of unchanged
// services inspects no image (docs/design.md#the-cost-of-a-sync).
func (d *Engine) RepoDigest(ctx context.Context, image, ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	key := image + " " + named.Name()
	d.imgMu.Lock()
	dg, ok := d.digests[key]
	d.imgMu.Unlock()
	if ok {
		return dg, nil
	}
	if dg, ok := d.refs.get(key); ok {
		return dg, nil
	}
	gen := d.refs.generation()
	res, err := d.cli.ImageInspect(ctx, image)
	if cerrdefs.IsNotFound(err) {
		d.refs.put(gen, key, "")
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("inspect image %s: %w", image, err)
	}
	for _, rd := range res.RepoDigests {
		if c, err := reference.ParseNormalizedNamed(rd); err == nil && c.Name() == named.Name() {
			if canon, ok := c.(reference.Canonical); ok {
				dg = canon.Digest().String()
				break
			}
		}
	}
	d.refs.put(gen, key, dg)
	if dg != "" {
		d.imgMu.Lock()
		if d.digests == nil {
			d.digests = map[string]string{}
		}
		d.digests[res.ID+" "+named.Name()] = dg
		d.imgMu.Unlock()
	}
	return dg, nil
}
