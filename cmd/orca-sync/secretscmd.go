package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/orca-sync/orca-sync/secrets"
	"github.com/spf13/cobra"
)

type secretsFlags struct {
	project, dir, ageKeyFile string
}

func newSecretsCommand() *cobra.Command {
	var f secretsFlags
	cmd := &cobra.Command{
		Use:   "secrets set|get|list|rm [--project P] NAME [VALUE]",
		Short: "Edit the SOPS-encrypted secrets of an infra checkout",
		Long: "secrets edits secrets.sops.yaml at the repository root (cluster-wide) or, with --project P,\n" +
			"services/P/'s. Files stay normal SOPS files (age): the sops command reads what this writes.\n" +
			"The checkout is --dir, else the infra repository that contains the working directory.",
	}
	pf := cmd.PersistentFlags()
	pf.StringVarP(&f.project, "project", "p", "", "the project's secrets file instead of the cluster-wide one")
	pf.StringVar(&f.dir, "dir", "", "the infra checkout (default: the repository around the working directory)")
	pf.StringVar(&f.ageKeyFile, "age-key-file", "", "age identity file (default: $SOPS_AGE_KEY_FILE, $SOPS_AGE_KEY, sops's keys.txt)")
	cmd.AddCommand(
		&cobra.Command{
			Use: "set NAME [VALUE]", Short: "Set a secret (VALUE from stdin when omitted)", Args: cobra.RangeArgs(1, 2),
			RunE: func(cmd *cobra.Command, args []string) error {
				value, err := secretValue(args, cmd.InOrStdin())
				if err != nil {
					return err
				}
				co, err := f.checkout()
				if err != nil {
					return err
				}
				rel, err := co.Set(cmd.Context(), f.project, args[0], value)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "set %s in %s\n", args[0], rel)
				return nil
			},
		},
		&cobra.Command{
			Use: "get NAME", Short: "Print a secret's value", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				co, err := f.checkout()
				if err != nil {
					return err
				}
				v, err := co.Get(cmd.Context(), f.project, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), v)
				return nil
			},
		},
		&cobra.Command{
			Use: "list", Short: "Print the secrets' names (never their values)", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				co, err := f.checkout()
				if err != nil {
					return err
				}
				names, err := co.List(cmd.Context(), f.project)
				if err != nil {
					return err
				}
				for _, n := range names {
					fmt.Fprintln(cmd.OutOrStdout(), n)
				}
				return nil
			},
		},
		&cobra.Command{
			Use: "rm NAME", Short: "Remove a secret", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				co, err := f.checkout()
				if err != nil {
					return err
				}
				rel, err := co.Remove(cmd.Context(), f.project, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "removed %s from %s\n", args[0], rel)
				return nil
			},
		},
	)
	return cmd
}

func (f secretsFlags) checkout() (*secrets.Checkout, error) {
	root := f.dir
	if root == "" {
		var err error
		if root, err = repoRoot("."); err != nil {
			return nil, err
		}
	}
	ids, err := secrets.LoadIdentities(f.ageKeyFile, os.Getenv)
	if err != nil {
		return nil, err
	}
	return secrets.NewCheckout(root, ids), nil
}

// secretValue is VALUE, or stdin without its final newline.
func secretValue(args []string, stdin io.Reader) (string, error) {
	if len(args) == 2 {
		return args[1], nil
	}
	b, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
	if err != nil {
		return "", fmt.Errorf("read the value from stdin: %w", err)
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
}

// repoRoot finds the infra repository around start: the nearest directory
// with services/ or cluster.toml, not above the git repository's root; else
// that git root. Outside any, it is an error, so that a secret is never
// written into a stray file wherever the command happened to run.
func repoRoot(start string) (string, error) {
	abs, err := filepath.Abs(start)
	if err != nil {
		return "", err
	}
	for dir := abs; ; dir = filepath.Dir(dir) {
		for _, marker := range []string{"services", "cluster.toml"} {
			if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
				return dir, nil
			}
		}
		if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", errors.New("not inside an infra repository (no services/, cluster.toml or .git above the working directory): pass --dir")
		}
	}
}
