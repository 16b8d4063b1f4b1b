package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/orca-sync/orca-sync/api/wire"
	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/build"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/docker"
	"github.com/orca-sync/orca-sync/files"
	"github.com/orca-sync/orca-sync/planner"
	"github.com/orca-sync/orca-sync/registryauth"
	"github.com/orca-sync/orca-sync/secrets"
	"github.com/orca-sync/orca-sync/swarm"
	"github.com/spf13/cobra"
)

// planned is a checkout planned against the live host.
type planned struct {
	desired *config.Desired
	plan    diff.Plan
	rt      *docker.Engine
	node    string
	// builder is set when the checkout has services with build.
	builder *build.Builder
	creds   *registryauth.Resolver
}

// checkoutOpts say which checkout to plan, and how.
type checkoutOpts struct {
	dir, node, ageKeyFile string
	// allowHostPaths are --allow-host-path's prefixes.
	allowHostPaths []string
	// hasher hashes the files services mount (apply shares its store's).
	hasher *files.Hasher
	// pull pulls pull_policy = "always" images first (apply), else the local
	// image is used (plan).
	pull bool
	// buildDir holds the clones of app repositories ([service.build]).
	buildDir string
}

// planCheckout loads and validates dir, resolves its secrets, then plans it
// against Docker. Errors of the checkout are printed; the returned error only
// carries the exit code.
func planCheckout(ctx context.Context, o checkoutOpts, stderr io.Writer, log *slog.Logger) (*planned, error) {
	policy, err := hostPolicy(o.allowHostPaths)
	if err != nil {
		return nil, err
	}
	d, err := config.Load(o.dir)
	if err == nil {
		// The host's policy holds for the services placed on its node only.
		err = policy.Check(planner.Planner{Node: o.node}.Own(d))
	}
	if err == nil {
		err = o.hasher.Resolve(ctx, d)
	}
	if err == nil {
		var ids *secrets.Identities
		if ids, err = secrets.LoadIdentities(o.ageKeyFile, os.Getenv); err == nil {
			err = secrets.NewKeyring(ids).Resolve(ctx, d)
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
	if d.Cluster.Engine == config.EngineSwarm && o.pull {
		return nil, errors.New(`apply runs containers on this host; with [cluster] engine = "swarm" the services are Swarm's: let serve apply the commit (orca-sync sync), see docs/guides/swarm.md`)
	}
	rt, err := docker.New(ctx, log)
	if err != nil {
		return nil, err
	}
	creds := registryauth.New("") // $DOCKER_CONFIG, else ~/.docker, as docker pull
	pl := planner.Planner{Runtime: rt, Node: o.node, ListTimeout: 30 * time.Second,
		Puller: apply.NewPuller(rt, creds), Digester: rt}
	if d.Cluster.Engine == config.EngineSwarm {
		// plan compares with the Swarm services and their tasks.
		sw, err := swarm.New(ctx, swarm.Options{Local: rt, Credentials: creds, Node: o.node, Log: log})
		if err != nil {
			rt.Close()
			return nil, fmt.Errorf("[cluster] engine = \"swarm\": %w", err)
		}
		defer sw.Close()
		pl.Runtime, pl.Digester = sw, nil
	}
	builder, err := lookupBuilds(ctx, d, rt, o.buildDir, log)
	if err != nil {
		rt.Close()
		return nil, err
	}
	if builder != nil {
		pl.Builds = builder
	}
	res, err := pl.Plan(ctx, d, o.pull)
	if err != nil {
		rt.Close()
		return nil, err
	}
	// The services of this node only: what apply carries out.
	return &planned{desired: pl.Own(d), plan: res.Plan, rt: rt, node: o.node, builder: builder, creds: creds}, nil
}

// lookupBuilds finds the commit of every build branch of d (nil when d has
// no service with build); app repositories are reached with the
// ORCA_SYNC_GIT_* credentials.
func lookupBuilds(ctx context.Context, d *config.Desired, rt build.Engine, dir string, log *slog.Logger) (*build.Builder, error) {
	has := false
	for _, s := range d.Services() {
		has = has || s.Build != nil
	}
	if !has {
		return nil, nil
	}
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "orca-sync-plan-builds") // plan only looks up: nothing is cloned
	}
	b := build.New(build.Options{Engine: rt, Dir: dir, Git: gitOptions(serveFlags{}, "", "", "", log), Log: log})
	var errs []error
	for key, err := range b.Resolve(ctx, d) {
		errs = append(errs, fmt.Errorf("%s: %w", key, err))
	}
	return b, errors.Join(errs...)
}

func newPlanCommand(log *slog.Logger) *cobra.Command {
	var output, node, ageKeyFile string
	var allowHostPaths []string
	var exitCode bool
	var pr int
	var client clientFlags
	cmd := &cobra.Command{
		Use:   "plan [DIR] | plan --pr N",
		Short: "Show what a sync of a checkout, or the merge of a pull request, would change on this Docker host",
		Long: "plan compares the checkout DIR with the containers orca-sync manages on this host and\n" +
			"prints the changes an apply would make. It changes nothing.\n" +
			"With --pr N it asks a running serve (--server) for the plan of pull request N's head.\n" +
			"With --exit-code: 0 no changes, 2 changes, 1 error (or an invalid pull request).",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pr != 0 {
				if len(args) > 0 {
					return errors.New("give either DIR or --pr, not both")
				}
				client.output = output
				return planPR(cmd, &client, pr, exitCode)
			}
			dir, err := infraDir(args)
			if err != nil {
				return err
			}
			p, err := planCheckout(cmd.Context(), checkoutOpts{dir: dir, node: node, ageKeyFile: ageKeyFile, allowHostPaths: allowHostPaths}, cmd.ErrOrStderr(), log)
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
	cmd.Flags().StringVar(&ageKeyFile, "age-key-file", "", ageKeyFlagHelp)
	allowHostPathFlag(cmd.Flags(), &allowHostPaths)
	cmd.Flags().IntVar(&pr, "pr", 0, "print the plan of this pull request from a running serve")
	fl := cmd.Flags()
	fl.StringVar(&client.server, "server", "http://127.0.0.1:6880", "with --pr: URL of a running orca-sync serve")
	fl.StringVar(&client.token, "token", "", "with --pr: API token, role viewer or more (default: <data-dir>/admin.token)")
	fl.StringVar(&client.dataDir, "data-dir", defaultDataDir(), "with --pr: where serve keeps admin.token")
	return cmd
}

// planPR prints the plan of pull request n as a running serve computes it.
func planPR(cmd *cobra.Command, c *clientFlags, n int, exitCode bool) error {
	var p wire.PRPlan
	if raw, err := c.get(cmd, fmt.Sprintf("/api/v1/plan?pr=%d", n), &p); raw || err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if !p.Valid {
		fmt.Fprintf(out, "Pull request #%d at %s is invalid; a merge would change nothing:\n%s\n", n, short(p.Commit), p.Text)
		return exitError{code: 1}
	}
	fmt.Fprintf(out, "Pull request #%d at %s (%s):\n%s\n", n, short(p.Commit), p.Subject, p.Text)
	if exitCode && p.Changes > 0 {
		return exitError{code: 2}
	}
	return nil
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

const ageKeyFlagHelp = "age identity file that decrypts the checkout's secrets (default: $SOPS_AGE_KEY_FILE and $SOPS_AGE_KEY, else sops's keys.txt)"

const nodeFlagHelp = "this host's node name: only the services placed on it ([[node]] of cluster.toml) and the containers labelled with it are planned for and pruned (default: [cluster] node, else the host name)"
