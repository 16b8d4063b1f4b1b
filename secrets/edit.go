package secrets

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/getsops/sops/v3/cmd/sops/common"
	sopsconfig "github.com/getsops/sops/v3/config"
	"github.com/orca-sync/orca-sync/config"
)

// Checkout edits the secrets files of one infra checkout in place: one file
// per scope, the repository root's for the cluster, services/<project>/'s for
// a project.
type Checkout struct {
	// Root is the infra root (where cluster.toml and services/ live).
	Root string
	ids  *Identities
}

// NewCheckout returns a Checkout of root that decrypts with ids.
func NewCheckout(root string, ids *Identities) *Checkout {
	if ids == nil {
		ids = &Identities{}
	}
	return &Checkout{Root: root, ids: ids}
}

// DefaultFile is the name of a new secrets file.
const DefaultFile = "secrets.sops.yaml"

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// scopeDir is the directory of a scope, relative to Root.
func (c *Checkout) scopeDir(project string) (string, error) {
	if project == "" {
		return ".", nil
	}
	dir := path.Join("services", project)
	if st, err := os.Stat(filepath.Join(c.Root, filepath.FromSlash(dir))); err != nil || !st.IsDir() {
		return "", fmt.Errorf("no project %q: %s is not a directory of %s", project, dir, c.Root)
	}
	return dir, nil
}

// files are the SOPS files of a scope, relative to Root.
func (c *Checkout) files(project string) ([]string, error) {
	dir, err := c.scopeDir(project)
	if err != nil {
		return nil, err
	}
	matches, _ := filepath.Glob(filepath.Join(c.Root, filepath.FromSlash(dir), "secrets.*"))
	var out []string
	for _, m := range matches {
		rel := path.Join(dir, filepath.Base(m))
		data, err := os.ReadFile(m)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", rel, err)
		}
		if !config.IsSOPSEncrypted(rel, data) {
			return nil, fmt.Errorf("%s is not SOPS-encrypted: encrypt it with sops (or remove it) before editing secrets", rel)
		}
		out = append(out, rel)
	}
	return out, nil
}

// target is the file name belongs in: the scope's only file, or the one of
// several that has it; "" when the scope has no file yet.
func (c *Checkout) target(project, name string) (string, error) {
	files, err := c.files(project)
	if err != nil || len(files) <= 1 {
		if len(files) == 1 {
			return files[0], err
		}
		return "", err
	}
	for _, f := range files {
		names, err := c.names(f)
		if err != nil {
			return "", err
		}
		if slices.Contains(names, name) {
			return f, nil
		}
	}
	return "", fmt.Errorf("%s has several secrets files (%s) and none has %s: add it to one with sops", c.scopeName(project), strings.Join(files, ", "), name)
}

func (c *Checkout) scopeName(project string) string {
	if project == "" {
		return "the repository root"
	}
	return "project " + project
}

func (c *Checkout) read(rel string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(c.Root, filepath.FromSlash(rel)))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", rel, err)
	}
	return b, nil
}

func (c *Checkout) open(rel string) (*File, error) {
	data, err := c.read(rel)
	if err != nil {
		return nil, err
	}
	return Decrypt(rel, data, c.ids)
}

// names reads the names of a file without decrypting it: SOPS leaves keys in
// the clear.
func (c *Checkout) names(rel string) ([]string, error) {
	data, err := c.read(rel)
	if err != nil {
		return nil, err
	}
	format, err := FormatFor(rel)
	if err != nil {
		return nil, err
	}
	tree, err := common.StoreForFormat(format, sopsconfig.NewStoresConfig()).LoadEncryptedFile(data)
	if err != nil {
		return nil, fileErr(rel, "not a readable SOPS file: %w", err)
	}
	f := &File{Path: rel, tree: &tree}
	return f.Names(), nil
}

// Set sets name in the scope's file, creating the file (with the .sops.yaml
// creation rule that matches it) when the scope has none. It returns the
// file written.
func (c *Checkout) Set(ctx context.Context, project, name, value string) (string, error) {
	return c.SetMany(ctx, project, map[string]string{name: value})
}

// SetMany sets every name of values in the project's file in one write,
// creating the file as Set does. A new file needs no identity, so an import
// can write the secrets it found on a host without the private key.
func (c *Checkout) SetMany(ctx context.Context, project string, values map[string]string) (string, error) {
	names := make([]string, 0, len(values))
	for n := range values {
		if !nameRE.MatchString(n) {
			return "", fmt.Errorf("secret name %q: use letters, digits and _ (it is referenced as ${secrets.%s})", n, n)
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return "", nil
	}
	slices.Sort(names)
	rel, err := c.target(project, names[0])
	if err != nil {
		return "", err
	}
	var f *File
	if rel == "" {
		dir, err := c.scopeDir(project)
		if err != nil {
			return "", err
		}
		rel = path.Join(dir, DefaultFile)
		if f, err = c.create(rel); err != nil {
			return "", err
		}
	} else if f, err = c.open(rel); err != nil {
		return "", err
	}
	for _, n := range names {
		f.Set(n, values[n])
	}
	return rel, c.write(ctx, f)
}

// create starts the new file rel with the creation rule of the nearest
// .sops.yaml, as sops would.
func (c *Checkout) create(rel string) (*File, error) {
	abs, err := filepath.Abs(filepath.Join(c.Root, filepath.FromSlash(rel)))
	if err != nil {
		return nil, err
	}
	found, err := sopsconfig.LookupConfigFile(abs)
	if err != nil {
		return nil, fmt.Errorf("%s is new and there is no .sops.yaml to say whom to encrypt it for: add one with a creation rule (age: <recipient>), or create the file with sops --encrypt --age", rel)
	}
	rule, err := sopsconfig.LoadCreationRuleForFile(found.Path, abs, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", found.Path, err)
	}
	return Create(rel, rule)
}

// openExisting decrypts the scope's file that holds (or would hold) name.
func (c *Checkout) openExisting(project, name string) (*File, error) {
	rel, err := c.target(project, name)
	if err != nil {
		return nil, err
	}
	if rel == "" {
		return nil, fmt.Errorf("%s has no secrets file", c.scopeName(project))
	}
	return c.open(rel)
}

// Get returns name's value from the scope's file.
func (c *Checkout) Get(_ context.Context, project, name string) (string, error) {
	f, err := c.openExisting(project, name)
	if err != nil {
		return "", err
	}
	rel := f.Path
	v, ok, err := f.Get(name)
	if !ok {
		return "", fmt.Errorf("no secret %s in %s", name, rel)
	}
	return v, err
}

// List returns the names of the scope's files, without decrypting them.
func (c *Checkout) List(_ context.Context, project string) ([]string, error) {
	files, err := c.files(project)
	if err != nil {
		return nil, err
	}
	var all []string
	for _, rel := range files {
		names, err := c.names(rel)
		if err != nil {
			return nil, err
		}
		all = append(all, names...)
	}
	return all, nil
}

// Remove deletes name from the scope's file and returns the file written.
func (c *Checkout) Remove(ctx context.Context, project, name string) (string, error) {
	f, err := c.openExisting(project, name)
	if err != nil {
		return "", err
	}
	rel := f.Path
	if !f.Remove(name) {
		return "", fmt.Errorf("no secret %s in %s", name, rel)
	}
	return rel, c.write(ctx, f)
}

// write encrypts f and replaces its file atomically: the temporary file
// beside it holds ciphertext only, and a failure leaves the old file.
func (c *Checkout) write(ctx context.Context, f *File) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	out, err := f.Encrypt()
	if err != nil {
		return err
	}
	dst := filepath.Join(c.Root, filepath.FromSlash(f.Path))
	mode := os.FileMode(0o644)
	if st, err := os.Stat(dst); err == nil {
		mode = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".secrets-*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	return nil
}
