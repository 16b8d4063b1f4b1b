package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/docker"
	"github.com/orca-sync/orca-sync/importer"
	"github.com/orca-sync/orca-sync/secrets"
	"github.com/spf13/cobra"
)

type importFlags struct {
	project, dir, ageKeyFile string
	profiles                 []string
}

func newImportCommand() *cobra.Command {
	f := &importFlags{}
	cmd := &cobra.Command{
		Use:   "import compose|containers",
		Short: "Write services/<project>/ from a Compose file or from running containers",
		Long: "import writes services/<project>/service.toml into the infra checkout (--dir, else the repository\n" +
			"around the working directory), copies the files of relative bind mounts under services/<project>/config/,\n" +
			"and moves secret-looking values into services/<project>/secrets.sops.yaml, encrypted for the .sops.yaml\n" +
			"recipients. It lists what it could not map, and checks that the result validates.",
	}
	pf := cmd.PersistentFlags()
	pf.StringVarP(&f.project, "project", "p", "", "the project to write (default: the Compose project's name)")
	pf.StringVar(&f.dir, "dir", "", "the infra checkout (default: the repository around the working directory)")
	pf.StringVar(&f.ageKeyFile, "age-key-file", "", ageKeyFlagHelp+"; needed only when the project already has a secrets file")
	compose := &cobra.Command{
		Use: "compose FILE", Short: "Import the services of a Compose file", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := importer.FromCompose(cmd.Context(), importer.ComposeOptions{File: args[0], Project: f.project, Profiles: f.profiles})
			if err != nil {
				return err
			}
			return f.write(cmd.Context(), res, cmd.OutOrStdout())
		},
	}
	compose.Flags().StringSliceVar(&f.profiles, "profile", nil, "a Compose profile to activate (repeatable)")
	containers := &cobra.Command{
		Use: "containers NAME... --project P", Short: "Import running containers, from docker inspect", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.project == "" {
				return fmt.Errorf("--project is required: the project the containers' services join")
			}
			cs, err := inspectForImport(cmd.Context(), args)
			if err != nil {
				return err
			}
			return f.write(cmd.Context(), importer.FromContainers(f.project, cs), cmd.OutOrStdout())
		},
	}
	cmd.AddCommand(compose, containers)
	return cmd
}

func inspectForImport(ctx context.Context, names []string) ([]importer.Container, error) {
	rt, err := docker.New(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	var cs []importer.Container
	for _, n := range names {
		c, err := rt.InspectForImport(ctx, n)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func (f *importFlags) write(ctx context.Context, res *importer.Result, w io.Writer) error {
	root := f.dir
	if root == "" {
		var err error
		if root, err = config.FindRepoRoot("."); err != nil {
			return fmt.Errorf("%w: pass --dir", err)
		}
	}
	ids, err := secrets.LoadIdentities(f.ageKeyFile, os.Getenv)
	if err != nil {
		return err
	}
	if err := importer.Write(ctx, root, res, ids); err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote services/%s/service.toml: %d services\n", res.Project, len(res.Services))
	for _, c := range res.Copies {
		fmt.Fprintf(w, "copied %s to %s\n", c.From, c.To)
	}
	if len(res.Secrets) > 0 {
		fmt.Fprintf(w, "wrote %d secrets to services/%s/secrets.sops.yaml (encrypted)\n", len(res.Secrets), res.Project)
	}
	if hp := importer.HostPaths(res); len(hp) > 0 {
		fmt.Fprintf(w, "host paths mounted (serve and apply need --allow-host-path for them): %s\n", strings.Join(hp, ", "))
	}
	if len(res.Unmapped) > 0 {
		fmt.Fprintf(w, "not mapped (%d):\n", len(res.Unmapped))
		for _, u := range res.Unmapped {
			fmt.Fprintf(w, "  %s\n", u)
		}
	}
	return nil
}
