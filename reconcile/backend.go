package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/planner"
	"github.com/orca-sync/orca-sync/redact"
	"github.com/orca-sync/orca-sync/state"
)

// ErrUnknownService is returned for a service the last valid checkout does
// not declare.
var ErrUnknownService = errors.New("no such service in the deployed checkout")

// Plan computes, without changing anything, what a sync of the last valid
// checkout would do now.
func (l *Loop) Plan(ctx context.Context) (diff.Plan, error) {
	d := l.last.desiredOf()
	if d == nil {
		return diff.Plan{}, errors.New("no valid checkout yet")
	}
	res, err := l.planner.Plan(ctx, d, false)
	var notNode *planner.NotANodeError
	if errors.As(err, &notNode) {
		return diff.Plan{Node: notNode.Node}, nil // applies nothing; status says why
	}
	return res.Plan, err
}

// History returns up to limit syncs, newest first.
func (l *Loop) History(limit int) ([]state.SyncRecord, error) { return l.opts.Store.History(limit) }

// Redeploy asks the next sync to force-pull a service's image and replace its
// containers, and signals it.
func (l *Loop) Redeploy(project, name string) error {
	// A service placed on another node is not this host's to redeploy.
	d := l.planner.Own(l.last.desiredOf())
	if d == nil || d.Project(project) == nil || d.Project(project).Service(name) == nil {
		return fmt.Errorf("%s/%s: %w", project, name, ErrUnknownService)
	}
	l.signals.markService(project+"/"+name, true)
	return nil
}

// RefreshImages asks the next sync to re-pull the images of the services that
// watch repo ("owner/name" or a URL ending in it) on branch, rolling those
// whose image moved, and to look up the branch of the services built from
// it, rebuilding those whose commit moved. It returns how many services
// matched.
func (l *Loop) RefreshImages(repo, branch string) int {
	d := l.last.desiredOf()
	if d == nil {
		return 0
	}
	n := 0
	for _, s := range d.Services() {
		if !watches(s, repo, branch) {
			continue
		}
		l.signals.markService(s.Key(), false)
		n++
	}
	return n
}

// watches reports whether a push to repo's branch concerns s: its watch
// repository, or the app repository it is built from (a new commit
// there rebuilds it at once).
func watches(s *config.Service, repo, branch string) bool {
	switch {
	case s.Watch != nil:
		return sameRepo(s.Watch.Repo, repo) && (s.Watch.Branch == "" || s.Watch.Branch == branch)
	case s.Build != nil:
		return sameRepo(s.Build.Repo, repo) && s.Build.Branch == branch
	}
	return false
}

func sameRepo(watch, repo string) bool {
	norm := func(s string) string {
		s = strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(s, "/"), ".git"))
		return s
	}
	w, r := norm(watch), norm(repo)
	return w == r || strings.HasSuffix(w, "/"+r) || strings.HasSuffix(w, ":"+r)
}

// Logs writes the logs of a service's containers to w, each line prefixed
// with its container's name when there are several.
func (l *Loop) Logs(ctx context.Context, project, name string, tail int, follow bool, w io.Writer) error {
	streamer := l.opts.Logs
	if streamer == nil {
		return errors.New("this runtime cannot stream logs")
	}
	live, err := l.opts.Runtime.List(ctx)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var mine []diff.Container
	for _, c := range live {
		if c.Project == project && c.Service == name {
			mine = append(mine, c)
		}
	}
	if len(mine) == 0 {
		return fmt.Errorf("%s/%s: %w", project, name, ErrUnknownService)
	}
	out := &lockedWriter{w: w}
	d := l.last.desiredOf()
	var wg sync.WaitGroup
	errs := make([]error, len(mine))
	for i, c := range mine {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var pw io.WriteCloser = nopCloser{out}
			if len(mine) > 1 {
				pw = &prefixWriter{w: out, prefix: c.Name + " | "}
			}
			// The redactor sees the raw stream, before any prefixing, for
			// every role (docs/guides/secrets.md#secret-values-in-output);
			// closing it, then the prefixer, writes out what each held back.
			rw := l.logRedactor(d, c).Writer(pw)
			errs[i] = errors.Join(streamer.StreamLogs(ctx, c.ID, tail, follow, rw), rw.Close(), pw.Close())
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// lockedWriter serialises writes of concurrent streams and flushes each.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (lw *lockedWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	n, err := lw.w.Write(p)
	if f, ok := lw.w.(interface{ Flush() }); ok {
		f.Flush()
	}
	return n, err
}

// nopCloser is a writer with nothing to write out at the end.
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// prefixWriter prefixes every line; partial lines are held until complete.
type prefixWriter struct {
	w      io.Writer
	prefix string
	buf    []byte
}

func (pw *prefixWriter) Write(p []byte) (int, error) {
	pw.buf = append(pw.buf, p...)
	for {
		i := strings.IndexByte(string(pw.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		if _, err := pw.w.Write(append([]byte(pw.prefix), pw.buf[:i+1]...)); err != nil {
			return 0, err
		}
		pw.buf = pw.buf[i+1:]
	}
}

// Close writes out a last line that had no newline.
func (pw *prefixWriter) Close() error {
	if len(pw.buf) == 0 {
		return nil
	}
	_, err := pw.w.Write(append([]byte(pw.prefix), pw.buf...))
	pw.buf = nil
	return err
}

// logRedactor is the redactor of container c's output: the secret values its
// orca.spec label says it was given (the remembered ones its hashes name,
// else the checkout's), or, for a container without that label, every secret
// its service references in the checkout.
func (l *Loop) logRedactor(d *config.Desired, c diff.Container) *redact.Redactor {
	var spec diff.Spec
	if c.Spec != nil {
		spec = *c.Spec
	}
	if len(spec.Secrets) == 0 && d != nil && d.Project(c.Project) != nil {
		if s := d.Project(c.Project).Service(c.Service); s != nil {
			spec.Secrets = map[string]string{}
			for _, name := range s.SecretRefs {
				spec.Secrets[name] = ""
			}
		}
	}
	return l.applier.Redactor(d, c.Project, spec)
}
