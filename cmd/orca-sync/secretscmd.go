package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/secrets"
	"github.com/spf13/cobra"
)

type secretsFlags struct {
	project, dir, ageKeyFile string
}

func newSecretsCommand() *cobra.Command {
	f := &secretsFlags{}
	cmd := &cobra.Command{
		Use:   "secrets set|get|list|rm [--project P] NAME [VALUE]",
		Short: "Edit the SOPS-encrypted secrets of an infra checkout",
		Long: "secrets edits secrets.sops.yaml at the repository root (cluster-wide) or, with --project P,\n" +
			"services/P/'s. Files stay normal SOPS files (age): the sops command reads what this writes.\n" +
			"The checkout is --dir, else the infra repository that contains the working directory.\n" +
			"list needs no key; get, and set or rm on an existing file, need the age identity.",
	}
	pf := cmd.PersistentFlags()
	pf.StringVarP(&f.project, "project", "p", "", "the project's secrets file instead of the cluster-wide one")
	pf.StringVar(&f.dir, "dir", "", "the infra checkout (default: the repository around the working directory)")
	pf.StringVar(&f.ageKeyFile, "age-key-file", "", ageKeyFlagHelp)
	cmd.AddCommand(f.setCommand(), f.getCommand(), f.listCommand(), f.rmCommand())
	return cmd
}

func (f *secretsFlags) setCommand() *cobra.Command {
	return &cobra.Command{
		Use: "set NAME [VALUE]", Short: "Set a secret (VALUE from stdin when omitted, which keeps it out of shell history)",
		Args: cobra.RangeArgs(1, 2),
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
	}
}

func (f *secretsFlags) getCommand() *cobra.Command {
	return &cobra.Command{
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
	}
}

func (f *secretsFlags) listCommand() *cobra.Command {
	return &cobra.Command{
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
	}
}

func (f *secretsFlags) rmCommand() *cobra.Command {
	return &cobra.Command{
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
	}
}

func (f *secretsFlags) checkout() (*secrets.Checkout, error) {
	root := f.dir
	if root == "" {
		var err error
		if root, err = config.FindRepoRoot("."); err != nil {
			return nil, fmt.Errorf("%w: pass --dir", err)
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
