package source

import (
	"context"
	"fmt"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/storage/memory"
)

// RemoteHead asks the remote which commit the tracked branch points at, as
// git ls-remote does: one reference advertisement, no objects and no
// checkout, so it is cheap enough to run at every sync. Errors carry no
// credentials.
func (r *Repo) RemoteHead(ctx context.Context) (string, error) {
	if r.protocol == "file" {
		return r.localRemoteHead(ctx)
	}
	auth, err := r.auth()
	if err != nil {
		return "", fmt.Errorf("ls-remote %s %s: %w", r.url, r.opts.Branch, r.redact(err))
	}
	rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: remoteName, URLs: []string{r.url}})
	refs, err := rem.ListContext(ctx, &git.ListOptions{Auth: auth})
	if err != nil {
		return "", fmt.Errorf("ls-remote %s %s: %w", r.url, r.opts.Branch, r.redact(err))
	}
	for _, ref := range refs {
		if ref.Name() == r.branch {
			return ref.Hash().String(), nil
		}
	}
	return "", fmt.Errorf("ls-remote %s %s: %w", r.url, r.opts.Branch, ErrNoSuchRef)
}
