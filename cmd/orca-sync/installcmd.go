package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/orca-sync/orca-sync/install"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

type installFlags struct {
	user, unitFile, envFile string
	print, now              bool
}

func newInstallCommand() *cobra.Command {
	var sf serveFlags
	var f installFlags
	serveSet := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	sf.bind(serveSet)
	// A system service keeps its state in /var/lib whoever runs install.
	serveSet.Lookup("data-dir").DefValue = "/var/lib/orca-sync"
	sf.dataDir = "/var/lib/orca-sync"
	cmd := &cobra.Command{
		Use:   "install --repo URL|PATH [serve flags] [--user U] [--print] [--now]",
		Short: "Write the systemd unit that runs serve with these flags at every boot",
		Long: "install writes a systemd unit running `orca-sync serve` with the serve flags given (this binary's\n" +
			"absolute path, Restart=always, CAP_NET_BIND_SERVICE for the proxy's ports, ORCA_SYNC_* values from\n" +
			"--env-file), then prints the two systemctl commands that start it (--now runs them).\n" +
			"--print prints the unit to stdout and writes nothing.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := installUnit(sf, serveSet, f)
			if err != nil {
				return err
			}
			if f.print {
				_, err := io.WriteString(cmd.OutOrStdout(), u.Render())
				return err
			}
			if err := install.Write(u, f.unitFile); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (ORCA_SYNC_* values go in %s)\n", f.unitFile, u.EnvFile)
			return systemctl(cmd, install.InstallCommands(f.unitFile), f.now, "to start it now and at every boot, run:")
		},
	}
	cmd.Flags().AddFlagSet(serveSet)
	fl := cmd.Flags()
	fl.StringVar(&f.user, "user", "", "run the service as this user, with the docker group (default: root)")
	fl.BoolVar(&f.print, "print", false, "print the unit to stdout and write nothing")
	fl.BoolVar(&f.now, "now", false, "also run systemctl daemon-reload and systemctl enable --now")
	fl.StringVar(&f.unitFile, "unit-file", install.DefaultUnitFile, "where to write the unit")
	fl.StringVar(&f.envFile, "env-file", install.DefaultEnvFile, "the unit's EnvironmentFile for ORCA_SYNC_* values (created, mode 0600, if missing)")
	return cmd
}

// installUnit turns the parsed flags into the unit: serve's flags that were
// set, with paths made absolute (the service does not start where install
// ran), and the data dir always.
func installUnit(sf serveFlags, serveSet *pflag.FlagSet, f installFlags) (install.Unit, error) {
	if sf.repo == "" {
		return install.Unit{}, errors.New("--repo is required (a git URL or a local path)")
	}
	if sf.once {
		return install.Unit{}, errors.New("--once: a service that exits after one sync would be restarted forever; run serve --once from a timer instead")
	}
	bin, err := os.Executable()
	if err != nil {
		return install.Unit{}, fmt.Errorf("find this binary's path: %w", err)
	}
	if bin, err = filepath.EvalSymlinks(bin); err != nil {
		return install.Unit{}, fmt.Errorf("find this binary's path: %w", err)
	}
	envFile, err := filepath.Abs(f.envFile)
	if err != nil {
		return install.Unit{}, err
	}
	u := install.Unit{Binary: bin, EnvFile: envFile, User: f.user}
	var errs []error
	serveSet.VisitAll(func(fl *pflag.Flag) {
		if !fl.Changed && fl.Name != "data-dir" {
			return
		}
		v := fl.Value.String()
		switch {
		case fl.Name == "data-dir" || fl.Name == "age-key-file" || fl.Name == "ssh-key" || (fl.Name == "repo" && isLocalRepo(v)):
			abs, err := filepath.Abs(v)
			errs = append(errs, err)
			v = abs
		}
		if fl.Name == "data-dir" {
			u.DataDir = v
		}
		if sv, ok := fl.Value.(pflag.SliceValue); ok { // --allow-host-path: one flag per value
			for _, item := range sv.GetSlice() {
				u.Args = append(u.Args, "--"+fl.Name+"="+item)
			}
			return
		}
		u.Args = append(u.Args, "--"+fl.Name+"="+v)
	})
	if err := errors.Join(errs...); err != nil {
		return install.Unit{}, err
	}
	return u, u.Check()
}

// isLocalRepo reports whether --repo names a directory rather than a URL.
func isLocalRepo(repo string) bool {
	if strings.Contains(repo, "://") {
		return false
	}
	at, colon := strings.Index(repo, "@"), strings.Index(repo, ":")
	return !(at > 0 && colon > at) // git@host:org/repo
}

// systemctl runs cmds when now is set, else prints them after intro.
func systemctl(cmd *cobra.Command, cmds [][]string, now bool, intro string) error {
	if now {
		return install.Run(cmd.Context(), cmds)
	}
	w := cmd.ErrOrStderr()
	fmt.Fprintln(w, intro)
	for _, c := range cmds {
		fmt.Fprintln(w, "  "+strings.Join(c, " "))
	}
	return nil
}

func newUninstallCommand() *cobra.Command {
	var unitFile string
	var now bool
	cmd := &cobra.Command{
		Use:   "uninstall [--now]",
		Short: "Remove the systemd unit install wrote",
		Long: "uninstall removes the unit file and its boot links (the environment file and the data dir\n" +
			"stay), then prints the systemctl commands that stop the service (--now runs them).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmds := install.UninstallCommands(unitFile)
			if now { // stop while systemd still knows the unit's file
				if err := install.Run(cmd.Context(), cmds[:1]); err != nil {
					return err
				}
				cmds = cmds[1:]
			}
			if err := install.Remove(unitFile); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "removed %s\n", unitFile)
			return systemctl(cmd, cmds, now, "to stop the service and make systemd forget it, run:")
		},
	}
	cmd.Flags().StringVar(&unitFile, "unit-file", install.DefaultUnitFile, "the unit to remove")
	cmd.Flags().BoolVar(&now, "now", false, "also run systemctl stop and systemctl daemon-reload")
	return cmd
}
