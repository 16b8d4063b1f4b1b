package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func loadSwarm(t *testing.T, cluster, service string) error {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "services", "web"), 0o755)
	os.WriteFile(filepath.Join(dir, "cluster.toml"), []byte(cluster), 0o644)
	os.WriteFile(filepath.Join(dir, "services", "web", "service.toml"), []byte(service), 0o644)
	os.WriteFile(filepath.Join(dir, "conf.txt"), []byte("x"), 0o644)
	_, err := Load(dir)
	return err
}

// TestSwarmRefusesWhatItCannotDo: every key Swarm cannot carry out is an
// error naming it, and the same service loads on the Docker engine.
func TestSwarmRefusesWhatItCannotDo(t *testing.T) {
	const swarmCluster = "[cluster]\nengine = \"swarm\"\n"
	base := "[[service]]\nname = \"a\"\nimage = \"x:1\"\nport = 8080\n"
	cases := map[string]struct{ extra, want string }{
		"canary":     {"[service.deploy]\nstrategy = \"canary\"\n", `"canary" is not supported on Swarm`},
		"blue-green": {"[service.deploy]\nstrategy = \"blue-green\"\n", `"blue-green" is not supported on Swarm`},
		"mount":      {"mounts = [{ source = \"./conf.txt\", target = \"/c\" }]\n", "not on the workers"},
		"http probe": {"[service.readiness]\ntype = \"http\"\npath = \"/healthz\"\n", "readiness: a http probe needs a command on Swarm"},
		"health":     {"health = \"/healthz\"\n", "health: an http probe needs a command"},
		"liveness":   {"[service.liveness]\ntype = \"exec\"\ncommand = [\"true\"]\n", "liveness:"},
		"drain_secs": {"[service.deploy]\ndrain_secs = 5\n", "deploy.drain_secs: Swarm stops an old task itself"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := loadSwarm(t, swarmCluster, base+c.extra)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			if name != "mount" && name != "http probe" && name != "health" && name != "liveness" && name != "drain_secs" {
				return
			}
			if err := loadSwarm(t, "", base+c.extra); err != nil {
				t.Fatalf("on the docker engine: %v", err)
			}
		})
	}
	if err := loadSwarm(t, swarmCluster, base+"[service.readiness]\ntype = \"exec\"\ncommand = [\"/app\", \"healthcheck\"]\n"); err != nil {
		t.Fatalf("an exec readiness probe on Swarm: %v", err)
	}
	if err := loadSwarm(t, "[cluster]\nengine = \"k8s\"\n", base); err == nil || !strings.Contains(err.Error(), "cluster.engine") {
		t.Fatalf("engine = k8s: %v", err)
	}
}
