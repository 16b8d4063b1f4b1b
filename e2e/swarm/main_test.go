// Package swarm holds the end-to-end tests of the Swarm engine
// (docs/guides/swarm.md): they make the shared engine a single-node swarm
// for their run, so they hold the e2e engine lock (dockertest.LockEngine),
// as the e2e package does, and never run beside it.
package swarm

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

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
	// SwarmInspect answers only in a swarm (the engine's /info can hang on
	// a busy shared engine).
	if _, err := docker.SwarmInspect(ctx, client.SwarmInspectOptions{}); err == nil {
		return nil, errors.New("the engine is already in a swarm that this test did not create; it will not touch it")
	}
	if _, err := docker.SwarmInit(ctx, client.SwarmInitOptions{ListenAddr: "127.0.0.1:2377", AdvertiseAddr: "127.0.0.1"}); err != nil {
		return nil, fmt.Errorf("docker swarm init --advertise-addr 127.0.0.1 (an engine that is a swarm worker cannot be used either): %w", err)
	}
	return func() {
		lctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		drain(lctx)
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

// drain removes the test's services, waits until their task containers are
// gone and removes the overlay networks before the swarm is left: a
// `docker swarm leave --force` with tasks and overlay networks still up can
// leave Docker 20.10's network controller hung (`docker network ls`
// blocking) for everyone on the shared engine.
func drain(ctx context.Context) {
	svcs, err := docker.ServiceList(ctx, client.ServiceListOptions{})
	if err == nil {
		for _, s := range svcs.Items {
			docker.ServiceRemove(ctx, s.ID, client.ServiceRemoveOptions{})
		}
	}
	for ctx.Err() == nil {
		res, err := docker.ContainerList(ctx, client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", "com.docker.swarm.task.id")})
		if err != nil || len(res.Items) == 0 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	nets, err := docker.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("driver", "overlay")})
	if err != nil {
		return
	}
	for _, n := range nets.Items {
		if n.Name != "ingress" {
			docker.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
		}
	}
}
