package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"

	"github.com/orca-sync/orca-sync/api"
	"github.com/orca-sync/orca-sync/api/wire"
	"github.com/orca-sync/orca-sync/backup"
	"github.com/orca-sync/orca-sync/docker"
	"github.com/orca-sync/orca-sync/reconcile"
	"github.com/orca-sync/orca-sync/state"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
)

// The Docker adapter is what backups drive.
var _ backup.Runtime = (*docker.Engine)(nil)

// newBackups wires the backup manager of a serve to its loop.
func newBackups(dataDir string, loop *reconcile.Loop, rt *docker.Engine, db *state.DB, n backup.Notifier,
	reg prometheus.Registerer, log *slog.Logger) *backup.Manager {
	m := backup.New(backup.Options{
		Runtime: rt, Desired: loop.Desired, Exclusive: loop.Exclusive,
		Restored: func(string, string) { loop.Trigger("restore", false) },
		SpoolDir: filepath.Join(dataDir, "backup-spool"), Store: db, Notifier: n,
		Metrics: backup.NewMetrics(reg), Node: loop.Node(), Log: log.With("component", "backup"),
	})
	m.ExportMetrics()
	return m
}

// backupAPI adapts the manager to the API.
type backupAPI struct{ m *backup.Manager }

var _ api.Backups = backupAPI{}

func (b backupAPI) Run(ctx context.Context, project, service string) (wire.BackupReport, error) {
	rep, err := b.m.Run(ctx, project, service)
	return rep, apiNotFound(err)
}

func (b backupAPI) List(ctx context.Context, project, service string) (wire.BackupList, error) {
	list, err := b.m.List(ctx, project, service)
	return list, apiNotFound(err)
}

func (b backupAPI) Restore(ctx context.Context, project, service, volume, archive string) (wire.RestoreReport, error) {
	rep, err := b.m.Restore(ctx, backup.RestoreRequest{Project: project, Service: service, Volume: volume, Archive: archive})
	return rep, apiNotFound(err)
}

func apiNotFound(err error) error {
	if errors.Is(err, backup.ErrUnknown) {
		return fmt.Errorf("%w: %v", api.ErrNotFound, err)
	}
	return err
}

func newBackupCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "backup", Short: "Run, list and restore volume backups (talks to a running serve)"}
	cmd.AddCommand(newBackupRunCommand(), newBackupListCommand(), newBackupRestoreCommand())
	return cmd
}

// serviceQuery is ?service=P or P/S, or nothing.
func serviceQuery(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return "?" + url.Values{"service": {args[0]}}.Encode()
}

func newBackupRunCommand() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{
		Use:   "run [PROJECT[/SERVICE]]",
		Short: "Back up the volumes of every service, a project's or one service's, now; exit 1 unless every archive was written",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := c.do(cmd, http.MethodPost, "/api/v1/backups"+serviceQuery(args))
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			var rep wire.BackupReport
			if err := json.Unmarshal(body, &rep); err != nil {
				return fmt.Errorf("read the backup report: %w", err)
			}
			if c.output == "json" {
				_, err = cmd.OutOrStdout().Write(body)
			} else {
				err = wire.WriteBackupReport(cmd.OutOrStdout(), rep)
			}
			if err == nil && !rep.OK {
				return exitError{code: 1}
			}
			return err
		},
	}
	c.register(cmd)
	return cmd
}

func newBackupListCommand() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{
		Use: "list [PROJECT[/SERVICE]]", Short: "List the archives every backup target holds, newest first", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var list wire.BackupList
			if raw, err := c.get(cmd, "/api/v1/backups"+serviceQuery(args), &list); raw || err != nil {
				return err
			}
			return wire.WriteBackupList(cmd.OutOrStdout(), list)
		},
	}
	c.register(cmd)
	return cmd
}

func newBackupRestoreCommand() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{
		Use:   "restore PROJECT/SERVICE VOLUME ARCHIVE",
		Short: "Stop the service, empty the volume (its source in service.toml), refill it from ARCHIVE (as backup list names it) and start the service",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, _, err := splitService(args[0]); err != nil {
				return err
			}
			q := url.Values{"service": {args[0]}, "volume": {args[1]}, "archive": {args[2]}}
			var rep wire.RestoreReport
			resp, err := c.do(cmd, http.MethodPost, "/api/v1/backups/restore?"+q.Encode())
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if c.output == "json" {
				_, err = io.Copy(cmd.OutOrStdout(), resp.Body)
				return err
			}
			if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
				return fmt.Errorf("read the restore report: %w", err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "restored volume %s of %s/%s from %s (%s, %d bytes); stopped %d container(s); the sync signalled starts the service\n",
				rep.Volume, rep.Project, rep.Service, rep.Archive, rep.Target, rep.Bytes, len(rep.Stopped))
			return err
		},
	}
	c.register(cmd)
	return cmd
}
