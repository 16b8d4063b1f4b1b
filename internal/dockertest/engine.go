package dockertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// Connect returns a client of the engine that DOCKER_HOST (or the default
// socket) names, after a Ping proves it answers. The error says how to get
// an engine or how to run without one.
func Connect(ctx context.Context) (*client.Client, error) {
	// API version negotiation is the default in moby/moby/client (it happens
	// on the first request; the Ping below forces it).
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("cannot reach the Docker engine at %s (set DOCKER_HOST or start dockerd; "+
			"`go test -short ./...` runs the unit tests only): %w", cli.DaemonHost(), err)
	}
	return cli, nil
}

// Require skips the test in -short mode, the one case in which a Docker test
// may skip. Without -short a missing engine fails the test (see Engine and
// Connect); it never skips.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a Docker engine: run without -short")
	}
}

// Engine is Require plus a client of the engine, closed when the test ends.
func Engine(t testing.TB) *client.Client {
	t.Helper()
	Require(t)
	cli, err := Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// IsNotFound reports whether err is the engine's "no such object".
func IsNotFound(err error) bool { return cerrdefs.IsNotFound(err) }
