package apply

import (
	"context"
	"errors"
	"fmt"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/registryauth"
)

// Credentials finds what a pull sends to its registry: the [[registry]]
// entries of cluster.toml, else the host's Docker config
// (registryauth.Resolver).
type Credentials interface {
	For(ref string, registries []config.Registry) (registryauth.Auth, error)
}

var _ Credentials = (*registryauth.Resolver)(nil)

// ImageDigester reads the registry digest a local image was pulled (or
// pushed) as, for status and plan. An optional runtime capability.
type ImageDigester interface {
	// RepoDigest is the digest ("sha256:…") of image (an ID or a
	// reference) in the repository of ref, "" when it has none there (an
	// image built on this host).
	RepoDigest(ctx context.Context, image, ref string) (string, error)
}

// Kinds of a refused pull, which decide the hint its error gives.
const (
	PullUnauthorized = "unauthorized"
	PullNotFound     = "not found"
	PullUnreachable  = "unreachable"
	PullOther        = "failed"
)

// PullError is a pull the registry refused or that could not reach it. It
// is not a failed rollout: the fix is usually on the host (a docker login)
// or in the registry, so it is never pinned and the next sync tries again
// (docs/guides/private-registries.md). It never holds a credential.
type PullError struct {
	Image    string
	Registry string
	// Source is where the credentials sent came from, "" for none.
	Source string
	Kind   string
	Err    error
}

func (e *PullError) Error() string {
	fix := fmt.Sprintf("add a [[registry]] entry for %s to cluster.toml, or run `docker login %s` as the user orca-sync runs as", e.Registry, e.Registry)
	switch {
	case e.Kind == PullUnauthorized && e.Source != "":
		return fmt.Sprintf("pull %s: unauthorized at %s with the credentials from %s: correct them there (%s): %v", e.Image, e.Registry, e.Source, fix, e.Err)
	case e.Kind == PullUnauthorized:
		return fmt.Sprintf("pull %s: unauthorized at %s: %s: %v", e.Image, e.Registry, fix, e.Err)
	case e.Kind == PullNotFound && e.Source == "":
		return fmt.Sprintf("pull %s: not found at %s (a private repository looks the same without credentials: %s): %v", e.Image, e.Registry, fix, e.Err)
	case e.Kind == PullNotFound:
		return fmt.Sprintf("pull %s: not found at %s: check the name and tag: %v", e.Image, e.Registry, e.Err)
	case e.Kind == PullUnreachable:
		return fmt.Sprintf("pull %s: registry %s cannot be reached: %v", e.Image, e.Registry, e.Err)
	}
	return fmt.Sprintf("pull %s from %s: %v", e.Image, e.Registry, e.Err)
}

func (e *PullError) Unwrap() error { return e.Err }

// IsPullError reports whether err is a refused pull.
func IsPullError(err error) bool {
	var pe *PullError
	return errors.As(err, &pe)
}

// Puller pulls images with the credentials of their registry. Every pull
// of orca-sync goes through it: create, update, redeploy, pull_policy =
// "always" and the watch re-pull.
type Puller struct {
	rt    Runtime
	creds Credentials
}

// NewPuller returns a Puller for rt; with nil creds it sends only the
// credentials of [[registry]] entries.
func NewPuller(rt Runtime, creds Credentials) *Puller {
	if creds == nil {
		creds = registryauth.ClusterOnly()
	}
	return &Puller{rt: rt, creds: creds}
}

// Pull fetches ref with the credentials d's cluster.toml or the host give
// its registry. Any failure is a *PullError naming the registry.
func (p *Puller) Pull(ctx context.Context, d *config.Desired, ref string) error {
	auth, err := p.auth(ref, d)
	if err != nil {
		return &PullError{Image: ref, Registry: auth.Registry, Kind: PullOther, Err: err}
	}
	err = p.rt.Pull(ctx, ref, auth)
	if err == nil {
		return nil
	}
	var pe *PullError
	if !errors.As(err, &pe) {
		return &PullError{Image: ref, Registry: auth.Registry, Source: auth.Source, Kind: PullOther, Err: err}
	}
	return err
}

func (p *Puller) auth(ref string, d *config.Desired) (registryauth.Auth, error) {
	var regs []config.Registry
	if d != nil {
		regs = d.Cluster.Registries
	}
	return p.creds.For(ref, regs)
}

// PullsOwnImage reports whether s takes its image from a registry: with
// pull_policy = "never" it uses only what the host holds. Every pull of a
// service's image asks it first.
func PullsOwnImage(s *config.Service) bool { return s.PullPolicy != config.PullNever }
