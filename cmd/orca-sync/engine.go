package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/docker"
	"github.com/orca-sync/orca-sync/reconcile"
	"github.com/orca-sync/orca-sync/registryauth"
	"github.com/orca-sync/orca-sync/source"
	"github.com/orca-sync/orca-sync/swarm"
)

// checkoutEngine is the [cluster] engine of the tracked branch, read once at
// start (docs/guides/swarm.md): serve fetches first so the engine is known
// before anything is wired. A fetch that fails falls back on the clone
// there is; no clone and no cluster.toml mean "docker".
func checkoutEngine(ctx context.Context, src *source.Repo, path string, log *slog.Logger) string {
	if _, err := src.Sync(ctx); err != nil {
		log.Warn("fetch before start failed; the engine is read from the last checkout", "error", err)
	}
	data, err := os.ReadFile(filepath.Join(src.Dir(), path, "cluster.toml"))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.Warn("read cluster.toml for the engine", "error", err)
		}
		return config.EngineDocker
	}
	c, _ := config.ParseClusterFile("cluster.toml", data) // a bad file is the first sync's to report
	if c.Engine == "" {
		return config.EngineDocker
	}
	return c.Engine
}

// wireSwarm makes the loop converge Swarm services: the Swarm engine is the
// runtime the planner lists and the scheduler of the plans. It refuses a
// node that is not a Swarm manager.
func wireSwarm(ctx context.Context, lopts *reconcile.Options, rt *docker.Engine, node string, log *slog.Logger) (*swarm.Engine, error) {
	sw, err := swarm.New(ctx, swarm.Options{Local: rt, Credentials: registryauth.New(""), Node: node, Log: log.With("component", "swarm")})
	if err != nil {
		return nil, fmt.Errorf("[cluster] engine = \"swarm\": %w", err)
	}
	lopts.Runtime, lopts.Scheduler, lopts.Engine, lopts.Inspector = sw, sw, config.EngineSwarm, sw
	// Tasks' logs are `docker service logs`; their image digests are the
	// workers' (docs/guides/swarm.md).
	lopts.Logs, lopts.Digester = nil, nil
	return sw, nil
}
