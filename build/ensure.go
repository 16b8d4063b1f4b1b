package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/redact"
)

// Ensure makes sure the engine holds s's image at commit, building it when
// no image of its tag was built from the same commit and settings (label
// LabelKey). It reports whether it built. The build output goes to the log
// (Debug per line, Info when done), redacted of the service's secret values
// and the git credentials; a failed build is an *Error with the last lines.
func (b *Builder) Ensure(ctx context.Context, d *config.Desired, s *config.Service, commit string) (bool, error) {
	if commit == "" {
		return false, &Error{Service: s.Key(), Repo: s.Build.Repo, Err: errNoCommit}
	}
	tag, key := s.BuildTag(commit), Key(s, commit)
	labels, found, err := b.opts.Engine.ImageLabels(ctx, tag)
	if err != nil {
		return false, &Error{Service: s.Key(), Repo: s.Build.Repo, Commit: commit, Err: err}
	}
	if found && labels[LabelKey] == key {
		return false, nil
	}
	red := b.redactor(d, s)
	tail, err := b.build(ctx, s, commit, key, red)
	if err != nil {
		var refused *Refused
		return false, &Error{Service: s.Key(), Repo: s.Build.Repo, Commit: commit, Refused: errors.As(err, &refused),
			Err: errors.New(red.String(err.Error())), Tail: tail}
	}
	b.prune(ctx, s)
	return true, nil
}

// build fetches the app repository, writes commit's tree apart from the
// clone and has the engine build its context. It returns the builder's last
// output lines.
func (b *Builder) build(ctx context.Context, s *config.Service, commit, key string, red *redact.Redactor) ([]string, error) {
	repo, err := b.repo(s.Build)
	if err != nil {
		return nil, err
	}
	if _, err := repo.Sync(ctx); err != nil {
		return nil, err
	}
	tree := repo.Dir() + ".trees/" + s.Project + "-" + s.Name
	if _, err := repo.Export(ctx, commit, tree); err != nil {
		return nil, fmt.Errorf("commit %s is not on branch %s any more: %w", short(commit), s.Build.Branch, err)
	}
	defer os.RemoveAll(tree)
	contextDir := filepath.Join(tree, filepath.FromSlash(s.Build.Context))
	if fi, err := os.Stat(filepath.Join(contextDir, filepath.FromSlash(s.Build.Dockerfile))); err != nil || fi.IsDir() {
		return nil, &Refused{Message: fmt.Sprintf("no Dockerfile %s in the build context %s of commit %s", s.Build.Dockerfile, s.Build.Context, short(commit))}
	}
	b.mu.Lock()
	b.builds++
	n := b.builds
	b.mu.Unlock()
	tag := s.BuildTag(commit)
	b.log.Info("build: building image", "service", s.Key(), "image", tag, "repo", repo.URL(), "commit", commit, "build", n)
	var tail []string
	line := func(l string) {
		l = red.String(l)
		b.log.Debug("build", "service", s.Key(), "line", l)
		if tail = append(tail, l); len(tail) > tailLines {
			tail = tail[1:]
		}
	}
	start := time.Now()
	err = b.opts.Engine.BuildImage(ctx, Request{
		Context: tarContext(contextDir, path.Clean(s.Build.Dockerfile)), Dockerfile: s.Build.Dockerfile, Tag: tag, Args: s.Build.Args,
		Labels: map[string]string{LabelService: s.Key(), LabelProject: s.Project, LabelCommit: commit, LabelKey: key},
	}, line)
	if err != nil {
		b.log.Warn("build: failed", "service", s.Key(), "image", tag, "duration", time.Since(start), "error", red.String(err.Error()))
		return tail, err
	}
	b.log.Info("build: image built", "service", s.Key(), "image", tag, "duration", time.Since(start))
	return tail, nil
}

// redactor hides, in build output and errors, the values of the secrets
// the service uses and the git credentials.
func (b *Builder) redactor(d *config.Desired, s *config.Service) *redact.Redactor {
	values := map[string]string{}
	if d != nil && d.Secrets != nil {
		for _, name := range s.SecretRefs {
			if v, err := d.Secrets.Value(s.Project, name); err == nil {
				values[name] = v
			}
		}
	}
	if p := b.opts.Git.Password; p != "" {
		values["GIT_PASSWORD"] = p
	}
	if t := b.opts.Git.Token; t != "" {
		values["GIT_TOKEN"] = t
	}
	return redact.New(values)
}

// prune removes the built images of s past the newest Keep. An image a
// container still uses stays (the engine refuses it).
func (b *Builder) prune(ctx context.Context, s *config.Service) {
	images, err := b.opts.Engine.BuiltImages(ctx, s.Key())
	if err != nil {
		b.log.Warn("build: list built images", "service", s.Key(), "error", err)
		return
	}
	sort.Slice(images, func(i, j int) bool { return images[i].Created.After(images[j].Created) })
	for _, img := range images[min(len(images), b.opts.Keep):] {
		if err := b.opts.Engine.RemoveImage(ctx, img.ID); err != nil {
			b.log.Debug("build: old image kept", "service", s.Key(), "image", img.ID, "error", err)
			continue
		}
		b.log.Info("build: old image removed", "service", s.Key(), "image", img.ID)
	}
}
