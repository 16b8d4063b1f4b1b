package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/orca-sync/orca-sync/files"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagsFromEnv sets every flag the command line left unset from
// ORCA_SYNC_<FLAG> (upper case, dashes as underscores).
func flagsFromEnv(cmd *cobra.Command) error {
	var errs []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		name := "ORCA_SYNC_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if err := cmd.Flags().Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			}
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("environment: %s", strings.Join(errs, "; "))
	}
	return nil
}

// allowHostPathFlag adds --allow-host-path to a command that refuses the
// host paths it does not allow (serve, apply, plan).
func allowHostPathFlag(cmd *cobra.Command, allow *[]string) {
	cmd.Flags().StringSliceVar(allow, "allow-host-path", nil,
		"let services mount host paths below this prefix (repeatable, or comma-separated in ORCA_SYNC_ALLOW_HOST_PATH); the Docker socket only by its own path")
}

// hostPolicy is the policy of --allow-host-path.
func hostPolicy(allow []string) (files.HostPolicy, error) {
	return files.NewHostPolicy(allow, os.Getenv("DOCKER_HOST"))
}

// defaultDataDir is /var/lib/orca-sync for root, else ~/.orca-sync.
func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/orca-sync"
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".orca-sync"
	}
	return filepath.Join(home, ".orca-sync")
}

func newLoggerFormat(w io.Writer, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
