package files

import (
	"context"
	"fmt"

	"github.com/orca-sync/orca-sync/config"
)

// Resolve sets the content hash of every `./` mount of d (config.Mount's
// Content). A source that cannot be read makes the checkout invalid, like
// any other error of it: the errors are config.Errors, all at once.
func (h *Hasher) Resolve(ctx context.Context, d *config.Desired) error {
	if h == nil {
		h = NewHasher()
	}
	var errs config.Errors
	done := map[string]string{}
	for _, s := range d.Services() {
		for i := range s.Mounts {
			m := &s.Mounts[i]
			if !m.FromCheckout() {
				continue
			}
			if sum, ok := done[m.HostPath]; ok {
				m.Content = sum
				continue
			}
			sum, err := h.Hash(ctx, m.HostPath)
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("hash mount sources: %w", ctx.Err())
				}
				errs = append(errs, config.Error{File: s.File, Line: m.Line, Service: s.Name, Key: "mounts",
					Message: fmt.Sprintf("mount source %s cannot be read: %v", m.Source, err)})
				continue
			}
			m.Content, done[m.HostPath] = sum, sum
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
