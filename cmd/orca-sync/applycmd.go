package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/files"
	"github.com/orca-sync/orca-sync/source"
	"github.com/orca-sync/orca-sync/state"
	"github.com/spf13/cobra"
)

// applyFlags are apply's flags.
type applyFlags struct {
	allowMassPrune                    bool
	output, node, ageKeyFile, dataDir string
	allowHostPaths                    []string
}

func newApplyCommand(log *slog.Logger) *cobra.Command {
	var f applyFlags
	cmd := &cobra.Command{
		Use:   "apply [DIR]",
		Short: "Converge this Docker host to a checkout once, then exit",
		Long: "apply validates the checkout DIR, plans it against the live host and carries out the plan:\n" +
			"create, roll, scale, heal and prune. A rollout that does not become ready in time is undone.\n" +
			"It takes the lock of --data-dir first: while a serve (or another apply) holds it, apply\n" +
			"changes nothing and exits 1. Files of DIR that services mount are snapshotted under\n" +
			"<data-dir>/files first: containers never mount DIR itself.\n" +
			"Exit status: 0 when every service converged, 1 otherwise.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := infraDir(args)
			if err != nil {
				return err
			}
			return runApply(cmd, dir, f, log)
		},
	}
	cmd.Flags().BoolVar(&f.allowMassPrune, "allow-mass-prune", false, "allow removing more than prune_guard of the managed services, or all of them")
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	cmd.Flags().StringVar(&f.node, "node", "", nodeFlagHelp)
	cmd.Flags().StringVar(&f.ageKeyFile, "age-key-file", "", ageKeyFlagHelp)
	cmd.Flags().StringVar(&f.dataDir, "data-dir", defaultDataDir(), "data dir whose lock apply takes (serve's; a running serve holds it) and whose files/ holds the snapshots containers mount")
	allowHostPathFlag(cmd, &f.allowHostPaths)
	return cmd
}

// runApply applies the checkout dir once.
func runApply(cmd *cobra.Command, dir string, f applyFlags, log *slog.Logger) error {
	// One writer per data dir: a running serve changes the same containers.
	lock, err := state.LockDataDir(f.dataDir, "apply")
	if err != nil {
		return err
	}
	defer lock.Unlock()
	ctx := cmd.Context()
	// Containers mount snapshots in the data dir, never DIR itself.
	store, err := files.NewStore(f.dataDir, files.NewHasher(), log)
	if err != nil {
		return err
	}
	p, err := planCheckout(ctx, checkoutOpts{dir: dir, node: f.node, ageKeyFile: f.ageKeyFile, pull: true,
		allowHostPaths: f.allowHostPaths, hasher: store.Hasher(), buildDir: filepath.Join(f.dataDir, "builds")}, cmd.ErrOrStderr(), log)
	if err != nil {
		return err
	}
	defer p.rt.Close()
	rc := p.desired.Cluster.Reconcile
	if err := p.plan.CheckPruneGuard(rc.PruneGuard, rc.AllowEmpty || f.allowMassPrune); err != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), "refused:", err)
		return exitError{code: 1}
	}
	revision, err := source.Revision(dir)
	if err != nil {
		log.Warn("no revision for the labels", "error", err)
	}
	results := buildFailures(ctx, p)
	applier := apply.New(p.rt, apply.Options{Node: f.node, Files: store, Log: log, Credentials: p.creds})
	results = append(results, applier.Apply(ctx, p.desired, p.plan, revision)...)
	if err := writeResults(cmd.OutOrStdout(), results, f.output); err != nil {
		return err
	}
	for _, r := range results {
		if r.Failed() {
			return exitError{code: 1}
		}
	}
	return nil
}

// buildFailures builds the images the plan needs; a failed build fails its
// service, whose containers keep running.
func buildFailures(ctx context.Context, p *planned) []apply.Result {
	if p.builder == nil {
		return nil
	}
	var out []apply.Result
	for key, err := range p.builder.EnsurePlanned(ctx, p.desired, &p.plan) {
		project, name, _ := strings.Cut(key, "/")
		out = append(out, apply.Result{Project: project, Service: name, Action: diff.ActionUpdate, Error: err.Error()})
	}
	return out
}

func writeResults(w io.Writer, results []apply.Result, output string) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	if len(results) == 0 {
		_, err := fmt.Fprintln(w, "No changes.")
		return err
	}
	for _, r := range results {
		status := "ok"
		if r.Failed() {
			status = "FAILED: " + r.Error
		}
		if _, err := fmt.Fprintf(w, "%s/%s  %s: started %d, removed %d in %s; %s\n",
			r.Project, r.Service, r.Action, len(r.Started), len(r.Removed), r.Duration.Round(100_000_000), status); err != nil {
			return err
		}
	}
	return nil
}
