// Package source gets the desired state's files: a git checkout of the
// tracked branch and the commit it is at.
//
// A Repo keeps a full single-branch clone in Options.Dir. Every Sync fetches
// the branch with a force refspec (a force-pushed history is followed), then
// hard-resets the work tree to the fetched head and removes everything that
// is not part of the commit, so the checkout equals the commit exactly. A
// fetch that fails leaves the last good checkout in place.
package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// DefaultBranch is the branch tracked when Options.Branch is empty.
const DefaultBranch = "main"

// Environment variables read by OptionsFromEnv.
const (
	EnvUsername = "ORCA_SYNC_GIT_USERNAME"
	EnvPassword = "ORCA_SYNC_GIT_PASSWORD"
	EnvToken    = "ORCA_SYNC_GIT_TOKEN"
)

// tokenUsername is the basic-auth user name sent with a token when no
// Username is set (GitHub's convention; GitLab and Gitea accept any name).
const tokenUsername = "x-access-token"

// Options configures a Repo.
type Options struct {
	// URL of the repository: a local path, file://, http(s)://, ssh://,
	// scp-style git@host:org/repo, or git://. Credentials embedded in an
	// http(s) URL are used as basic auth and never stored or logged.
	URL string
	// Branch tracked; DefaultBranch when empty.
	Branch string
	// Dir is where the clone lives (<data-dir>/repo). It is created, and
	// replaced when it holds a clone of another URL or a broken one.
	Dir string

	// HTTP auth: Token is sent as basic auth with user name
	// "x-access-token" unless Username is set; or Username and Password.
	Username, Password, Token string

	// SSHKeyFile is the private key for ssh URLs; without it the SSH agent
	// (SSH_AUTH_SOCK) is asked. The host key is checked against
	// KnownHostsFile (default: $SSH_KNOWN_HOSTS, ~/.ssh/known_hosts and
	// /etc/ssh/ssh_known_hosts) unless InsecureIgnoreHostKey is set.
	SSHKeyFile            string
	KnownHostsFile        string
	InsecureIgnoreHostKey bool

	// Log receives progress and warnings; nil discards them.
	Log *slog.Logger
}

// OptionsFromEnv fills o's Username, Password and Token from
// ORCA_SYNC_GIT_USERNAME, ORCA_SYNC_GIT_PASSWORD and ORCA_SYNC_GIT_TOKEN,
// each only when it is empty.
func OptionsFromEnv(o *Options) {
	fill := func(dst *string, key string) {
		if *dst == "" {
			*dst = os.Getenv(key)
		}
	}
	fill(&o.Username, EnvUsername)
	fill(&o.Password, EnvPassword)
	fill(&o.Token, EnvToken)
}

// Commit is a checked-out commit.
type Commit struct {
	SHA     string
	Author  string // "Name <email>"
	Message string // full message
	Time    time.Time
}

// Subject is the first line of the commit message.
func (c Commit) Subject() string {
	s, _, _ := strings.Cut(strings.TrimLeft(c.Message, "\n"), "\n")
	return strings.TrimSpace(s)
}

// Repo is a clone of one branch of a remote repository. Its methods are
// safe for concurrent use; Sync and Head on the same Repo run one at a time.
type Repo struct {
	opts     Options
	url      string // remote URL as stored in .git/config: no credentials
	protocol string // file, http, https, ssh or git
	branch   plumbing.ReferenceName
	host     string // host:port, for ssh host key algorithms
	user     string // ssh user name
	username string // http basic auth, with password
	password string
	secrets  []string // never to appear in errors or logs
	log      *slog.Logger
	lock     chan struct{} // held by Sync and Head
}

// New checks opts and returns a Repo. It does no I/O: the clone is made by
// the first Sync.
func New(opts Options) (*Repo, error) {
	if opts.URL == "" {
		return nil, errors.New("git source: no repository URL")
	}
	if opts.Dir == "" {
		return nil, errors.New("git source: no clone directory")
	}
	if opts.Branch == "" {
		opts.Branch = DefaultBranch
	}
	r := &Repo{opts: opts, log: opts.Log, lock: make(chan struct{}, 1)}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.secrets = secretsOf(opts.Password, opts.Token)
	r.branch = plumbing.NewBranchReferenceName(opts.Branch)
	if err := r.branch.Validate(); err != nil {
		return nil, fmt.Errorf("git source: branch %q: %w", opts.Branch, err)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("git source: clone directory %s: %w", opts.Dir, err)
	}
	r.opts.Dir = dir
	if err := r.parseURL(opts.URL); err != nil {
		return nil, err
	}
	if err := r.setCredentials(); err != nil {
		return nil, err
	}
	return r, nil
}

// parseURL sets url, protocol, host and user from raw, taking credentials
// out of http(s) URLs.
func (r *Repo) parseURL(raw string) error {
	ep, err := transport.NewEndpoint(raw)
	if err != nil {
		return fmt.Errorf("git source: repository URL %s: %w", redactURL(raw), err)
	}
	r.protocol, r.url = ep.Protocol, raw
	switch ep.Protocol {
	case "file":
		if !strings.HasPrefix(raw, "file://") {
			r.url = ep.Path // absolute
		}
	case "http", "https", "ssh", "git":
		u, err := url.Parse(raw)
		if err == nil && u.Scheme != "" && u.User != nil {
			pass, hasPass := u.User.Password()
			if ep.Protocol == "ssh" {
				u.User = url.User(u.User.Username())
			} else {
				r.username, r.password = u.User.Username(), pass
				r.secrets = append(r.secrets, secretsOf(u.User.Username())...)
				u.User = nil
			}
			if hasPass {
				r.secrets = append(r.secrets, secretsOf(pass)...)
			}
			r.url = u.String()
		}
	default:
		return fmt.Errorf("git source: repository URL %s: unsupported protocol %q", redactURL(raw), ep.Protocol)
	}
	r.user = ep.User
	if r.user == "" {
		r.user = "git"
	}
	port := ep.Port
	if port == 0 {
		port = 22
	}
	r.host = fmt.Sprintf("%s:%d", ep.Host, port)
	return nil
}

// setCredentials settles the http basic-auth pair from the options (which
// win over credentials in the URL) and rejects ambiguous ones.
func (r *Repo) setCredentials() error {
	o := r.opts
	if o.Token != "" && o.Password != "" {
		return errors.New("git source: both a token and a password are set; use one")
	}
	switch {
	case o.Token != "":
		r.username, r.password = o.Username, o.Token
		if r.username == "" {
			r.username = tokenUsername
		}
	case o.Password != "":
		if o.Username == "" {
			return errors.New("git source: a password is set without a user name")
		}
		r.username, r.password = o.Username, o.Password
	case o.Username != "" && r.username == "":
		r.username = o.Username
	}
	isHTTP := r.protocol == "http" || r.protocol == "https"
	if !isHTTP && (o.Token != "" || o.Password != "") {
		r.log.Warn("git credentials are ignored: they apply to http(s) repositories only", "url", r.url)
	}
	if r.protocol != "ssh" && o.SSHKeyFile != "" {
		r.log.Warn("ssh key is ignored: the repository is not reached over ssh", "url", r.url)
	}
	return nil
}

// Dir is the work tree.
func (r *Repo) Dir() string { return r.opts.Dir }

// URL is the repository URL without credentials.
func (r *Repo) URL() string { return r.url }

// Branch is the tracked branch.
func (r *Repo) Branch() string { return r.opts.Branch }

// acquire takes the Repo's lock, or gives up when ctx ends.
func (r *Repo) acquire(ctx context.Context) error {
	select {
	case r.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Repo) release() { <-r.lock }

// redactURL removes the password (or token user name) from a URL that is
// about to be shown in an error.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.User == nil {
		return raw
	}
	if u.Scheme == "ssh" {
		u.User = url.User(u.User.Username())
	} else {
		u.User = nil
	}
	return u.String()
}

func secretsOf(values ...string) []string {
	var out []string
	for _, v := range values {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// redact returns err with every secret of r removed from its message; the
// original stays reachable through errors.Is and errors.As.
func (r *Repo) redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, s := range r.secrets {
		msg = strings.ReplaceAll(msg, s, "***")
	}
	return &messageError{msg: msg, err: err}
}

// messageError is err with another message.
type messageError struct {
	msg string
	err error
}

func (e *messageError) Error() string { return e.msg }
func (e *messageError) Unwrap() error { return e.err }
