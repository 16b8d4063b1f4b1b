package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/spf13/cobra"
)

// planned is a checkout planned against the live host.
type planned struct {
	desired *config.Desired
	plan    diff.Plan
	rt      *apply.Docker
	node    string
}

// planCheckout loads and validates dir, then plans it against Docker. Errors
// of the checkout are printed; the returned error only carries the exit code.
func planCheckout(ctx context.Context, dir, node string, pull bool, stderr io.Writer, log *slog.Logger) (*planned, error) {
	d, err := config.Load(dir)
	if err == nil {
		if errs := apply.MissingSecrets(d, func(string, string) bool { return false }, "secrets are not configured in this version of orca-sync"); errs != nil {
			err = errs
		}
	}
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(stderr, e.Error())
		}
		return nil, exitError{code: 1}
	}
	if err != nil {
		return nil, err
	}
	rt, err := apply.NewDocker(ctx, log)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	live, err := rt.List(lctx)
	if err != nil {
		rt.Close()
		return nil, err
	}
	desired := apply.Desire(ctx, rt, d, pull, nil)
	plan := diff.Compute(desired, live, diff.Options{Prune: d.Cluster.Reconcile.Prune, Node: apply.NodeName(node, d)})
	return &planned{desired: d, plan: plan, rt: rt, node: node}, nil
}

func newPlanCommand(log *slog.Logger) *cobra.Command {
	var output, node string
	var exitCode bool
	cmd := &cobra.Command{
		Use:   "plan [DIR]",
		Short: "Show what a sync of a checkout would change on this Docker host",
		Long: "plan compares the checkout DIR with the containers orca-sync manages on this host and\n" +
			"prints the changes an apply would make. It changes nothing.\n" +
			"With --exit-code: 0 no changes, 2 changes, 1 error.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := infraDir(args)
			if err != nil {
				return err
			}
			p, err := planCheckout(cmd.Context(), dir, node, false, cmd.ErrOrStderr(), log)
			if err != nil {
				return err
			}
			defer p.rt.Close()
			if err := writePlan(cmd.OutOrStdout(), p.plan, output); err != nil {
				return err
			}
			if err := p.plan.CheckPruneGuard(p.desired.Cluster.Reconcile.PruneGuard, p.desired.Cluster.Reconcile.AllowEmpty); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: apply would refuse this plan:", err)
			}
			if exitCode && p.plan.HasChanges() {
				return exitError{code: 2}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().BoolVar(&exitCode, "exit-code", false, "exit 2 when there are changes, 0 when there are none")
	cmd.Flags().StringVar(&node, "node", "", nodeFlagHelp)
	return cmd
}

func writePlan(w io.Writer, p diff.Plan, output string) error {
	switch output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	case "text":
		return p.WriteText(w)
	}
	return fmt.Errorf("unknown --output %q: use text or json", output)
}

const nodeFlagHelp = "this host's node name: only containers labelled with it are planned for and pruned (default: [cluster] node, else the host name)"
