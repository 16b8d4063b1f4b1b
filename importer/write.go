package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/BurntSushi/toml"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/secrets"
)

// Render is the service.toml of r.
func Render(r *Result) ([]byte, error) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Imported by orca-sync import; what it could not map is listed by the command.\n\n")
	enc := toml.NewEncoder(&buf)
	enc.Indent = ""
	if err := enc.Encode(struct {
		Service []*Service `toml:"service"`
	}{r.Services}); err != nil {
		return nil, fmt.Errorf("render service.toml: %w", err)
	}
	return buf.Bytes(), nil
}

// Write puts r into the infra checkout root: services/<project>/service.toml,
// the copied files under services/<project>/config/, and the secrets
// encrypted with the .sops.yaml recipients (ids opens an existing secrets
// file). It refuses a project that already has a service.toml, so nothing
// is overwritten, and finishes by loading the checkout as validate does.
func Write(ctx context.Context, root string, r *Result, ids *secrets.Identities) error {
	dir := filepath.Join(root, "services", r.Project)
	file := filepath.Join(dir, "service.toml")
	if _, err := os.Stat(file); err == nil {
		return fmt.Errorf("%s exists: import into a new --project, or move it away first", file)
	}
	text, err := Render(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for _, c := range r.Copies {
		if err := copyTree(c.From, filepath.Join(root, filepath.FromSlash(c.To))); err != nil {
			return fmt.Errorf("copy %s into the checkout: %w", c.From, err)
		}
	}
	if len(r.Secrets) > 0 {
		if _, err := secrets.NewCheckout(root, ids).SetMany(ctx, r.Project, r.Secrets); err != nil {
			return fmt.Errorf("write the secrets: %w", err)
		}
	}
	if err := os.WriteFile(file, text, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return Validate(ctx, root)
}

// Validate loads the checkout and checks its secret references by name.
func Validate(ctx context.Context, root string) error {
	d, err := config.Load(root)
	if err != nil {
		return fmt.Errorf("the imported checkout does not validate: %w", err)
	}
	if err := secrets.CheckNames(ctx, d); err != nil {
		return fmt.Errorf("the imported checkout does not validate: %w", err)
	}
	return nil
}

// copyTree copies a file or a directory (regular files and directories
// only) to dst; an existing dst is an error, so nothing is overwritten.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		return copyFile(p, to)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, st.Mode().Perm())
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists", dst)
	}
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// configPath is where a relative bind mount's file goes in the checkout.
func configPath(project, rel string) string {
	return path.Join("services", project, "config", filepath.ToSlash(rel))
}
