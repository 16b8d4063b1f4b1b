// Package swarm holds the end-to-end tests of the Swarm engine
// (docs/guides/swarm.md): they make the shared engine a single-node swarm
// for their run, so they hold the e2e engine lock (dockertest.LockEngine),
// as the e2e package does, and never run beside it.
package swarm

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/internal/dockertest"
)

// The test images: the e2e test app under tags of this package's own.
const (
	imageV1 = "orca-test/swarm:v1"
	imageV2 = "orca-test/swarm:v2"
	// imageMissing names no image: Swarm rejects its tasks.
	imageMissing = "orca-test/swarm:missing"
)

var (
	docker *client.Client
	binary string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	unlock, err := dockertest.LockEngine()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e/swarm:", err)
		return 1
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if docker, err = dockertest.Connect(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e/swarm:", err)
		return 1
	}
	defer docker.Close()
	leave, err := initSwarm(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e/swarm:", err)
		return 1
	}
	defer leave()
	if err := prepare(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e/swarm:", err)
		return 1
	}
	return m.Run()
}

// initSwarm makes the engine a single-node swarm, and refuses an engine
// already in one: leaving it at the end would destroy someone else's.
func initSwarm(ctx context.Context) (func(), error) {
	info, err := docker.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, fmt.Errorf("engine info: %w", err)
	}
	if st := info.Info.Swarm.LocalNodeState; st != swarm.LocalNodeStateInactive {
		return nil, fmt.Errorf("the engine is already in a swarm (state %q) that this test did not create; it will not touch it", st)
	}
	if _, err := docker.SwarmInit(ctx, client.SwarmInitOptions{ListenAddr: "127.0.0.1:2377", AdvertiseAddr: "127.0.0.1"}); err != nil {
		return nil, fmt.Errorf("docker swarm init --advertise-addr 127.0.0.1: %w", err)
	}
	return func() {
		lctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := docker.SwarmLeave(lctx, client.SwarmLeaveOptions{Force: true}); err != nil {
			fmt.Fprintln(os.Stderr, "e2e/swarm: docker swarm leave --force:", err)
		}
	}, nil
}

// prepare builds the test images and the orca-sync binary.
func prepare(ctx context.Context) error {
	entry := "EXPOSE 8080\nENTRYPOINT [\"/app\"]\n"
	err := dockertest.BuildImages(ctx, docker, dockertest.Program{Dir: "../testapp", Binary: "app"},
		dockertest.Image{Tag: imageV1, Lines: "ENV VERSION=v1\n" + entry},
		dockertest.Image{Tag: imageV2, Lines: "ENV VERSION=v2\n" + entry})
	if err != nil {
		return fmt.Errorf("build test images: %w", err)
	}
	dir, err := os.MkdirTemp("", "orca-sync-e2e-swarm-bin-")
	if err != nil {
		return err
	}
	binary = filepath.Join(dir, "orca-sync")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", binary, "./cmd/orca-sync")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/orca-sync: %v\n%s", err, out)
	}
	return nil
}
