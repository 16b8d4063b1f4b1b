package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/files"
	"github.com/orca-sync/orca-sync/secrets"
	"github.com/spf13/cobra"
)

func newValidateCommand() *cobra.Command {
	var output, ageKeyFile string
	cmd := &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check an infra checkout: every error at once, as file:line: service: message",
		Long: "validate loads cluster.toml and every services/<project>/service.toml of DIR and reports\n" +
			"every problem. DIR defaults to the infra repository that contains the working directory.\n" +
			"Every ${secrets.NAME} must name a key of the secrets files (names are readable without the\n" +
			"age key); with an age identity (--age-key-file, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY) the files\n" +
			"must decrypt too.\n" +
			"Exit status: 0 valid, 1 invalid.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := infraDir(args)
			if err != nil {
				return err
			}
			err = validateCheckout(cmd.Context(), dir, ageKeyFile)
			var errs config.Errors
			if err != nil && !errors.As(err, &errs) {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if errs == nil {
					errs = config.Errors{}
				}
				if err := enc.Encode(map[string]any{"valid": len(errs) == 0, "errors": errs}); err != nil {
					return err
				}
			} else {
				for _, e := range errs {
					fmt.Fprintln(cmd.ErrOrStderr(), e.Error())
				}
			}
			if len(errs) > 0 {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().StringVar(&ageKeyFile, "age-key-file", "", ageKeyFlagHelp)
	return cmd
}

// validateCheckout loads dir and checks its secrets: decrypted when this
// machine has an age identity, else by name only.
func validateCheckout(ctx context.Context, dir, ageKeyFile string) error {
	d, err := config.Load(dir)
	if err != nil {
		return err
	}
	// Host paths are not checked: validate cannot know the host that runs it.
	if err := files.NewHasher().Resolve(ctx, d); err != nil {
		return err
	}
	ids, err := secrets.LoadIdentities(ageKeyFile, os.Getenv)
	if err != nil {
		return err
	}
	if ids.Len() == 0 {
		return secrets.CheckNames(ctx, d)
	}
	return secrets.NewKeyring(ids).Resolve(ctx, d)
}

// infraDir is the DIR argument, or the infra repository around the working
// directory: commands run from a subdirectory act on the whole repository
// rather than on a stray path (a pitfall of orca's, whose commands depended on
// the working directory).
func infraDir(args []string) (string, error) {
	if len(args) == 1 {
		return args[0], nil
	}
	return config.FindRoot(".")
}
