// Package build makes the images of services with [service.build]: it finds
// the commit of each build's branch with a cheap remote lookup, fetches the
// app repository into a clone of its own under the data dir, and has the
// engine build the commit's tree, tagged <repository>:<commit12>
// (docs/guides/builds.md). The engine is reached through Engine, which
// package docker implements; nothing here links the Docker client.
package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/source"
)

// Labels on every image a build makes. LabelKey is the digest of what the
// image was built from (commit, context, Dockerfile, args): an image of the
// same tag and key is never built again, also after a restart.
const (
	LabelService = "orca.build.service" // project/service
	LabelProject = "orca.build.project"
	LabelCommit  = "orca.build.commit"
	LabelKey     = "orca.build.key"
)

// DefaultKeep is how many built images per service are kept.
const DefaultKeep = 3

// tailLines is how many of the builder's last output lines a failed build's
// error carries.
const tailLines = 20

// Engine is what a build needs of the container engine.
type Engine interface {
	// BuildImage runs the engine's builder on req and calls line for each
	// line of its output. A build the builder itself refuses (a bad
	// Dockerfile, a failing step) is a *Refused.
	BuildImage(ctx context.Context, req Request, line func(string)) error
	// ImageLabels returns the labels of a local image; found is false when
	// the engine has no such image.
	ImageLabels(ctx context.Context, ref string) (labels map[string]string, found bool, err error)
	// BuiltImages lists the local images whose LabelService is service.
	BuiltImages(ctx context.Context, service string) ([]Image, error)
	// RemoveImage removes an image by ID (its tags with it), and fails for
	// one a container uses.
	RemoveImage(ctx context.Context, id string) error
}

// Request is one build.
type Request struct {
	// Context is the build context as a tar stream.
	Context io.Reader
	// Dockerfile is its path inside the context.
	Dockerfile string
	Tag        string
	Args       map[string]string
	Labels     map[string]string
}

// Image is a built image the engine holds.
type Image struct {
	ID      string
	Created time.Time
}

// Refused is the builder's own error: the build ran and failed.
type Refused struct{ Message string }

func (e *Refused) Error() string { return e.Message }

// Error is a failed build of one service. Refused tells a build the builder
// refused (it fails again until git changes) from one that could not run
// (the repository or the engine unreachable), which the next sync retries.
type Error struct {
	Service string
	Repo    string
	Commit  string
	Refused bool
	Err     error
	// Tail is the builder's last lines, redacted.
	Tail []string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("build %s@%s: %v", e.Repo, short(e.Commit), e.Err)
	if len(e.Tail) > 0 {
		msg += "\nlast build output:\n" + joinLines(e.Tail)
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Options configure a Builder.
type Options struct {
	Engine Engine
	// Dir holds one clone per app repository and branch (<data-dir>/builds).
	Dir string
	// Git carries the credentials and SSH settings of the infra repository,
	// which every app repository is reached with; its URL is the infra
	// repository's, whose scheme and host alone get the HTTP credentials
	// ("" sends them everywhere); Branch and Dir are ignored.
	Git source.Options
	// Keep is how many built images per service stay; DefaultKeep when 0.
	Keep int
	Log  *slog.Logger
}

// Builder finds, builds and prunes the images of services with build. Safe
// for concurrent use; one build of a repository runs at a time.
type Builder struct {
	opts Options
	log  *slog.Logger

	mu    sync.Mutex
	heads map[string]string       // repo/branch key → commit last found
	repos map[string]*source.Repo // repo/branch key → its clone
	// builds counts the builds started, for the log's summary lines.
	builds int
}

// New returns a Builder; it does no I/O.
func New(opts Options) *Builder {
	if opts.Keep <= 0 {
		opts.Keep = DefaultKeep
	}
	b := &Builder{opts: opts, log: opts.Log, heads: map[string]string{}, repos: map[string]*source.Repo{}}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	return b
}

func repoKey(bc *config.Build) string { return bc.Repo + "\x00" + bc.Branch }

// Commit is the commit last found on s's build branch ("" before any).
func (b *Builder) Commit(s *config.Service) string {
	if s.Build == nil {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.heads[repoKey(s.Build)]
}

// Known remembers commit for s's build branch unless a lookup has found
// one: after a restart whose first lookup failed, the commit the running
// containers were built from stands.
func (b *Builder) Known(s *config.Service, commit string) {
	if s.Build == nil || commit == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.heads[repoKey(s.Build)]; !ok {
		b.heads[repoKey(s.Build)] = commit
	}
}

// Resolve looks up the head of every build branch of d, once per distinct
// repository and branch, and remembers it. A failed lookup keeps the commit
// found before; it returns the lookup errors by service key.
func (b *Builder) Resolve(ctx context.Context, d *config.Desired) map[string]error {
	errs := map[string]error{}
	done := map[string]error{}
	for _, s := range d.Services() {
		if s.Build == nil {
			continue
		}
		key := repoKey(s.Build)
		err, seen := done[key]
		if !seen {
			err = b.lookup(ctx, s.Build)
			done[key] = err
		}
		if err != nil {
			errs[s.Key()] = err
		}
	}
	return errs
}

func (b *Builder) lookup(ctx context.Context, bc *config.Build) error {
	repo, err := b.repo(bc)
	if err != nil {
		return err
	}
	start := time.Now()
	head, err := repo.RemoteHead(ctx)
	if err != nil {
		return err
	}
	b.mu.Lock()
	before := b.heads[repoKey(bc)]
	b.heads[repoKey(bc)] = head
	b.mu.Unlock()
	level := slog.LevelDebug
	if before != head {
		level = slog.LevelInfo
	}
	b.log.Log(ctx, level, "build: branch head", "repo", repo.URL(), "branch", bc.Branch, "commit", head,
		"previous", before, "duration", time.Since(start))
	return nil
}

// repo is the clone of bc's repository and branch, made on first use.
func (b *Builder) repo(bc *config.Build) (*source.Repo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	key := repoKey(bc)
	if r, ok := b.repos[key]; ok {
		return r, nil
	}
	opts := b.opts.Git
	if opts.URL != "" && !sameOrigin(opts.URL, bc.Repo) {
		// The infra repository's token is for its own host: whoever can
		// merge a service.toml must not be able to send it elsewhere
		// (docs/guides/builds.md#credentials). Without an infra URL (a
		// one-shot plan or apply of a local checkout) the operator's own
		// environment is what they gave for this command.
		opts.Username, opts.Password, opts.Token = "", "", ""
	}
	opts.URL, opts.Branch, opts.Dir, opts.Log = bc.Repo, bc.Branch, cloneDir(b.opts.Dir, key), b.log
	r, err := source.New(opts)
	if err != nil {
		return nil, fmt.Errorf("app repository %s: %w", bc.Repo, err)
	}
	b.repos[key] = r
	return r, nil
}

// cloneDir is the directory of one repository and branch: a digest of both,
// so that no URL character reaches the file system.
func cloneDir(root, key string) string {
	sum := sha256.Sum256([]byte(key))
	return root + "/" + hex.EncodeToString(sum[:8])
}

// Key is the digest of what s's image at commit is built from.
func Key(s *config.Service, commit string) string {
	bc := s.Build
	args := make([]string, 0, len(bc.Args))
	for k := range bc.Args {
		args = append(args, k)
	}
	sort.Strings(args)
	var ordered [][2]string
	for _, k := range args {
		ordered = append(ordered, [2]string{k, bc.Args[k]})
	}
	doc, _ := json.Marshal(struct {
		Repo, Commit, Context, Dockerfile string
		Args                              [][2]string
	}{bc.Repo, commit, bc.Context, bc.Dockerfile, ordered})
	sum := sha256.Sum256(doc)
	return hex.EncodeToString(sum[:])
}

func short(sha string) string { return sha[:min(len(sha), 12)] }

func joinLines(ls []string) string {
	out := ""
	for _, l := range ls {
		out += l + "\n"
	}
	return out
}

var errNoCommit = errors.New("no commit of the build branch is known yet")

// EnsurePlanned builds the images the changes of plan need (a create or a
// roll of a service with build), for the one-shot apply. A change whose
// build failed becomes no change, so the containers it would replace keep
// running; its error is returned by service key.
func (b *Builder) EnsurePlanned(ctx context.Context, d *config.Desired, plan *diff.Plan) map[string]error {
	errs := map[string]error{}
	for i := range plan.Changes {
		c := &plan.Changes[i]
		if c.Desired == nil || c.Desired.Build == nil || (c.Action != diff.ActionCreate && c.Action != diff.ActionUpdate) {
			continue
		}
		if _, err := b.Ensure(ctx, d, c.Desired.Service, c.Desired.Spec.Build.Commit); err != nil {
			errs[c.Key()] = err
			c.Action, c.Reason = diff.ActionNone, "build failed"
		}
	}
	return errs
}

// sameOrigin reports whether two repository URLs have the same scheme and
// host (an scp-like git@host:path counts as ssh), so that HTTP credentials
// of one may be sent to the other.
func sameOrigin(a, b string) bool {
	sa, ha := origin(a)
	sb, hb := origin(b)
	return ha != "" && sa == sb && strings.EqualFold(ha, hb)
}

func origin(raw string) (scheme, host string) {
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" && u.Host != "" {
		return u.Scheme, u.Host
	}
	if at := strings.Index(raw, "@"); at >= 0 {
		if colon := strings.Index(raw[at:], ":"); colon > 0 {
			return "ssh", raw[at+1 : at+colon]
		}
	}
	return "", ""
}
