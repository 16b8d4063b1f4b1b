package swarm

import (
	"slices"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

type fakeSecrets map[string]string

func (f fakeSecrets) Value(_, name string) (string, error) { return f[name], nil }
func (f fakeSecrets) Hash(_, name string) string           { return "h-" + name }

func desired(mut func(*config.Service)) *diff.Service {
	s := &config.Service{Project: "shop", Name: "api", Image: "reg.example/api:1", Replicas: 3, Port: 8080,
		Command: []string{"serve", "--db=${secrets.DB}"}, Env: map[string]string{"B": "2", "A": "${secrets.DB}"},
		RestartPolicy: "on-failure:4", Resources: config.Resources{MemoryBytes: 64 << 20, NanoCPUs: 5e8},
		Placement: &config.Placement{Labels: map[string]string{"zone": "a", "disk": "ssd"}},
		Readiness: &config.Probe{Type: config.ProbeHTTP, Path: "/healthz", Command: []string{"/app", "healthcheck"},
			Interval: time.Second, Timeout: 2 * time.Second, FailureThreshold: 3, InitialDelay: 2 * time.Second},
		Deploy:    config.Deploy{Strategy: config.StrategyRolling, MaxSurge: 2, MinReady: time.Second},
		Volumes:   []config.Volume{{Source: "data", Target: "/data"}},
		StopGrace: 7 * time.Second,
	}
	if mut != nil {
		mut(s)
	}
	spec := diff.NewSpec(s, diff.Inputs{})
	return &diff.Service{Service: s, Spec: spec, Hash: spec.Hash()}
}

// TestServiceSpecMapsTheService checks the mapping of docs/guides/swarm.md:
// secrets resolved, labels on service and tasks, constraints, resources,
// the exec-form healthcheck, host-mode port, the rolling update config.
func TestServiceSpecMapsTheService(t *testing.T) {
	d := desired(nil)
	got, err := serviceSpec(specInput{svc: d, secrets: fakeSecrets{"DB": "pw"}, revision: "abc", node: "mgr"})
	if err != nil {
		t.Fatal(err)
	}
	cs := got.TaskTemplate.ContainerSpec
	if got.Name != "shop_api" || cs.Image != "reg.example/api:1" {
		t.Fatalf("name %q image %q", got.Name, cs.Image)
	}
	if !slices.Equal(cs.Env, []string{"A=pw", "B=2"}) || !slices.Equal(cs.Args, []string{"serve", "--db=pw"}) {
		t.Fatalf("env %v args %v: want secrets resolved, env sorted", cs.Env, cs.Args)
	}
	for _, labels := range []map[string]string{got.Labels, cs.Labels} {
		if labels[apply.LabelHash] != d.Hash || labels[apply.LabelRevision] != "abc" || labels[apply.LabelNode] != "mgr" || labels[apply.LabelManaged] != "true" {
			t.Fatalf("labels %v", labels)
		}
		if spec, ok := diff.DecodeSpec(labels[apply.LabelSpec]); !ok || spec.Env["A"] != "${secrets.DB}" {
			t.Fatalf("orca.spec must keep the template, not the value: %v", labels[apply.LabelSpec])
		}
	}
	if c := got.TaskTemplate.Placement.Constraints; !slices.Equal(c, []string{"node.labels.disk == ssd", "node.labels.zone == a"}) {
		t.Fatalf("constraints %v", c)
	}
	if r := got.TaskTemplate.Resources; r.Limits.MemoryBytes != 64<<20 || r.Reservations.NanoCPUs != 5e8 {
		t.Fatalf("resources %+v", r)
	}
	if rp := got.TaskTemplate.RestartPolicy; rp.Condition != swarm.RestartPolicyConditionOnFailure || *rp.MaxAttempts != 4 {
		t.Fatalf("restart %+v", rp)
	}
	if hc := cs.Healthcheck; !slices.Equal(hc.Test, []string{"CMD", "/app", "healthcheck"}) || hc.Retries != 3 || hc.StartPeriod != 2*time.Second {
		t.Fatalf("healthcheck %+v: want the probe's command in the exec form", hc)
	}
	if p := got.EndpointSpec.Ports; len(p) != 1 || p[0].TargetPort != 8080 || p[0].PublishMode != swarm.PortConfigPublishModeHost || p[0].PublishedPort != 0 {
		t.Fatalf("ports %+v: want 8080 in host mode on a port Swarm picks", p)
	}
	uc := got.UpdateConfig
	if uc.Order != swarm.UpdateOrderStartFirst || uc.Parallelism != 2 || uc.FailureAction != swarm.UpdateFailureActionRollback || uc.Monitor != 6*time.Second {
		t.Fatalf("update config %+v", uc)
	}
	if n := got.TaskTemplate.Networks; len(n) != 1 || n[0].Target != "orca-shop" || !slices.Contains(n[0].Aliases, "api") {
		t.Fatalf("networks %+v", n)
	}
	if *got.Mode.Replicated.Replicas != 3 || *cs.StopGracePeriod != 7*time.Second {
		t.Fatal("replicas or stop grace")
	}
}

func TestRecreateIsStopFirst(t *testing.T) {
	d := desired(func(s *config.Service) {
		s.Deploy.Strategy = config.StrategyRecreate
		s.Internal = true
		s.Readiness = nil
	})
	got, err := serviceSpec(specInput{svc: d, secrets: fakeSecrets{"DB": "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	if uc := got.UpdateConfig; uc.Order != swarm.UpdateOrderStopFirst || uc.Parallelism != 0 {
		t.Fatalf("update config %+v", uc)
	}
	if got.TaskTemplate.ContainerSpec.Healthcheck != nil {
		t.Fatal("without a probe the image's HEALTHCHECK must stand")
	}
	if len(got.TaskTemplate.Networks) != 2 || got.TaskTemplate.Networks[1].Target != diff.InternalNetwork {
		t.Fatalf("networks %+v", got.TaskTemplate.Networks)
	}
}

// TestConvergedWantsOnlyTheNewSpec: a rolling update is done once exactly
// replicas tasks of the desired hash run and no old one is left.
func TestConvergedWantsOnlyTheNewSpec(t *testing.T) {
	d := desired(func(s *config.Service) { s.Replicas = 2 })
	task := func(hash, state string) diff.Container {
		return diff.Container{Project: "shop", Service: "api", Hash: hash, State: state}
	}
	other := diff.Container{Project: "shop", Service: "db", Hash: "x", State: "exited"}
	for _, c := range []struct {
		live []diff.Container
		want bool
	}{
		{[]diff.Container{task(d.Hash, "running"), task(d.Hash, "running"), other}, true},
		{[]diff.Container{task(d.Hash, "running"), task("old", "running")}, false},
		{[]diff.Container{task(d.Hash, "running"), task(d.Hash, "created")}, false},
		{[]diff.Container{task(d.Hash, "running")}, false},
	} {
		if got := converged(c.live, d); got != c.want {
			t.Errorf("converged(%v) = %v, want %v", c.live, got, c.want)
		}
	}
}

func TestTaskLiveReadsTheTaskSpec(t *testing.T) {
	d := desired(func(s *config.Service) { s.RestartPolicy = "unless-stopped" })
	spec, _ := serviceSpec(specInput{svc: d, secrets: fakeSecrets{"DB": "pw"}})
	spec.TaskTemplate.ContainerSpec.Image += "@sha256:0123"
	spec.TaskTemplate.Networks[0].Target = "netid"
	li := taskLive(swarm.Task{Spec: spec.TaskTemplate}, map[string]string{"netid": "orca-shop"})
	if li.Image != "reg.example/api:1" || li.Env["A"] != "pw" || li.RestartPolicy != "unless-stopped" || li.MemoryBytes != 64<<20 {
		t.Fatalf("live %+v", li)
	}
	if got := diff.ConfigDrift(&d.Spec, &li, func(v string) (string, error) {
		return config.Expand(v, func(string) (string, error) { return "pw", nil })
	}); len(got) != 0 {
		t.Fatalf("a task of the spec drifts: %+v", got)
	}
	li.Env["BY_HAND"] = "1"
	if got := diff.ConfigDrift(&d.Spec, &li, nil); len(got) != 1 || got[0].Field != "env.BY_HAND" {
		t.Fatalf("drift %+v, want env.BY_HAND", got)
	}
}

// Swarm keeps `nginx` as `nginx:latest@sha256:…` and drops
// `docker.io/library/`; none of that is drift, but another image or another
// pinned digest is.
func TestSameImageAsSwarmWritesIt(t *testing.T) {
	for _, c := range []struct {
		swarmRef, want string
		same           bool
	}{
		{"nginx:latest@sha256:aa", "nginx", true},
		{"nginx:1.27@sha256:aa", "docker.io/library/nginx:1.27", true},
		{"reg.example:5000/api:1@sha256:aa", "reg.example:5000/api:1", true},
		{"reg.example:5000/api:latest@sha256:aa", "reg.example:5000/api", true},
		{"api@sha256:aa", "api@sha256:aa", true},
		{"api@sha256:bb", "api@sha256:aa", false},
		{"nginx:1.26@sha256:aa", "nginx:1.27", false},
		{"other/nginx:latest", "nginx", false},
	} {
		if got := sameImage(c.swarmRef, c.want); got != c.same {
			t.Errorf("sameImage(%q, %q) = %v, want %v", c.swarmRef, c.want, got, c.same)
		}
	}
	d := desired(func(s *config.Service) { s.Image = "nginx" })
	spec, _ := serviceSpec(specInput{svc: d, secrets: fakeSecrets{"DB": "pw"}})
	spec.TaskTemplate.ContainerSpec.Image = "nginx:latest@sha256:0123"
	if li := taskLive(swarm.Task{Spec: spec.TaskTemplate}, nil); li.Image != "nginx" {
		t.Fatalf("a task of `nginx` reads as image %q, which drifts", li.Image)
	}
}
