package secrets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/orca-sync/orca-sync/config"
)

// Keyring resolves the secrets of checkouts with one host's identities.
type Keyring struct {
	ids *Identities
}

// NewKeyring returns a Keyring that decrypts with ids (nil: none).
func NewKeyring(ids *Identities) *Keyring {
	if ids == nil {
		ids = &Identities{}
	}
	return &Keyring{ids: ids}
}

// Resolve decrypts every secrets file of d, checks every ${secrets.NAME} of
// its services (project file first, then the cluster's) and of cluster.toml
// (the cluster's), expands the strings of d.Cluster in place and sets
// d.Secrets. Every problem — a file that cannot be decrypted, a missing name,
// a name given twice in one scope — is returned as config.Errors naming the
// file and the name, and d is then left without secrets, so nothing of it can
// be applied.
//
// Every file is decrypted, used or not: a file this host cannot read, or one
// changed without sops, is reported at the commit that brought it.
func (k *Keyring) Resolve(ctx context.Context, d *config.Desired) error {
	r := &resolved{scopes: map[string]map[string]entry{}}
	var errs config.Errors
	for _, sf := range d.SecretFiles {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("resolve secrets: %w", err)
		}
		f, err := k.decryptFile(d.Root, sf.Path)
		if err != nil {
			errs = append(errs, asConfigError(sf.Path, err))
			continue
		}
		errs = append(errs, r.add(sf.Project, f)...)
	}
	if len(errs) > 0 {
		return errs
	}
	errs = append(errs, r.check(d)...)
	if len(errs) > 0 {
		return errs
	}
	if errs := d.Cluster.CheckResolved(func(name string) (string, error) { return r.Value("", name) }); len(errs) > 0 {
		return errs
	}
	if err := r.expandCluster(&d.Cluster); err != nil {
		return err
	}
	d.Secrets = r
	return nil
}

func (k *Keyring) decryptFile(root, rel string) (*File, error) {
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		return nil, fileErr(rel, "read: %w", err)
	}
	return Decrypt(rel, data, k.ids)
}

func asConfigError(path string, err error) config.Error {
	var fe *FileError
	if errors.As(err, &fe) {
		return config.Error{File: fe.Path, Message: fe.Err.Error()}
	}
	return config.Error{File: path, Message: err.Error()}
}

// resolved is what a checkout's secrets files hold, by scope: "" is the
// cluster file, else the project.
type resolved struct {
	scopes map[string]map[string]entry
}

var _ config.SecretValues = (*resolved)(nil)

type entry struct {
	value string
	hash  string
	file  string
	err   error // the key holds a map or a list
}

func (r *resolved) add(project string, f *File) config.Errors {
	scope := r.scopes[project]
	if scope == nil {
		scope = map[string]entry{}
		r.scopes[project] = scope
	}
	var errs config.Errors
	for _, name := range f.Names() {
		if err := duplicate(scope, name, f.Path); err != nil {
			errs = append(errs, *err)
			continue
		}
		v, _, err := f.Get(name)
		scope[name] = entry{value: v, hash: f.Hash(name, v), file: f.Path, err: err}
	}
	return errs
}

func duplicate(scope map[string]entry, name, file string) *config.Error {
	prev, dup := scope[name]
	if !dup {
		return nil
	}
	return &config.Error{File: file, Key: name,
		Message: fmt.Sprintf("secret %s is also in %s: give each name once per directory", name, prev.file)}
}

// lookup finds name as project sees it: its own file first, then the
// cluster's.
func (r *resolved) lookup(project, name string) (entry, bool) {
	if project != "" {
		if e, ok := r.scopes[project][name]; ok {
			return e, true
		}
	}
	e, ok := r.scopes[""][name]
	return e, ok
}

func (r *resolved) Value(project, name string) (string, error) {
	e, ok := r.lookup(project, name)
	if !ok {
		return "", fmt.Errorf("${secrets.%s}: no such secret", name)
	}
	return e.value, e.err
}

func (r *resolved) Hash(project, name string) string {
	e, _ := r.lookup(project, name)
	return e.hash
}

// check reports every reference that does not resolve to a single value.
func (r *resolved) check(d *config.Desired) config.Errors {
	var errs config.Errors
	for _, s := range d.Services() {
		refs := s.SecretRefs
		if s.Backup != nil {
			refs = append(slices.Clone(refs), s.Backup.SecretRefs...)
		}
		for _, name := range refs {
			if msg := r.problem(s.Project, name, d); msg != "" {
				errs = append(errs, config.Error{File: s.File, Line: s.Line, Service: s.Name, Message: msg})
			}
		}
	}
	for _, name := range d.Cluster.SecretRefs {
		if msg := r.problem("", name, d); msg != "" {
			errs = append(errs, config.Error{File: "cluster.toml", Message: msg})
		}
	}
	return errs
}

func (r *resolved) problem(project, name string, d *config.Desired) string {
	e, ok := r.lookup(project, name)
	if ok && e.err != nil {
		return fmt.Sprintf("${secrets.%s}: %v", name, e.err)
	}
	if ok {
		return ""
	}
	var looked []string
	for _, sf := range d.SecretFiles {
		if sf.Project == project || sf.Project == "" {
			looked = append(looked, sf.Path)
		}
	}
	if len(looked) == 0 {
		where := "secrets.sops.yaml at the repository root"
		if project != "" {
			where = fmt.Sprintf("%s or %s", path.Join(d.ServicesDir, project, "secrets.sops.yaml"), where)
		}
		return fmt.Sprintf("${secrets.%s}: no secrets file: add %s (orca-sync secrets set %s)", name, where, name)
	}
	return fmt.Sprintf("${secrets.%s}: no secret %s in %s", name, name, strings.Join(looked, " or "))
}

// expandCluster resolves the references of every string of cluster.toml.
// check has already proven each resolves.
func (r *resolved) expandCluster(c *config.Cluster) error {
	return config.ExpandStrings(c, func(key, s string) (string, error) {
		return config.Expand(s, func(name string) (string, error) {
			v, err := r.Value("", name)
			if err != nil {
				return "", fmt.Errorf("cluster.toml: %s: %w", key, err)
			}
			return v, nil
		})
	})
}

// CheckNames is Resolve for a host without the key, such as a CI job that
// validates a pull request: SOPS leaves the names in the clear, so every
// reference is checked against the names of the files, and nothing is
// decrypted. d gets no secrets.
func CheckNames(ctx context.Context, d *config.Desired) error {
	r := &resolved{scopes: map[string]map[string]entry{}}
	var errs config.Errors
	co := NewCheckout(d.Root, nil)
	for _, sf := range d.SecretFiles {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("check secrets: %w", err)
		}
		names, err := co.names(sf.Path)
		if err != nil {
			errs = append(errs, asConfigError(sf.Path, err))
			continue
		}
		scope := r.scopes[sf.Project]
		if scope == nil {
			scope = map[string]entry{}
			r.scopes[sf.Project] = scope
		}
		for _, n := range names {
			if err := duplicate(scope, n, sf.Path); err != nil {
				errs = append(errs, *err)
				continue
			}
			scope[n] = entry{file: sf.Path}
		}
	}
	errs = append(errs, r.check(d)...)
	if len(errs) > 0 {
		return errs
	}
	return nil
}
