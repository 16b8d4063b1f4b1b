// Command orca-sync is a pull-based GitOps reconciler for Docker hosts.
//
// This package only parses flags and wires packages together; the work is
// done in config, diff, apply and the other packages of the module.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code out of a command without printing
// anything more (the command has already said what went wrong).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var exit exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.code
	default:
		fmt.Fprintln(stderr, "orca-sync:", err)
		return 1
	}
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "orca-sync",
		Short:         "Pull-based GitOps for Docker hosts",
		Long:          "orca-sync keeps a Docker host converged to the services declared in an infra git repository.",
		SilenceUsage:  true,
		SilenceErrors: true,
		// Every flag can also come from ORCA_SYNC_<FLAG>.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return flagsFromEnv(cmd) },
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	log := newLoggerFormat(stderr, "text")
	root.AddCommand(newValidateCommand(), newPlanCommand(log), newApplyCommand(log), newServeCommand(stderr), newSecretsCommand(), newVersionCommand(),
		newInstallCommand(), newUninstallCommand(), newImportCommand())
	addClientCommands(root)
	return root
}
