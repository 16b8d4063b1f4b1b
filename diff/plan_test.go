package diff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/config"
)

func svc(project, name string, mod func(*config.Service)) *config.Service {
	s := &config.Service{
		Project: project, Name: name, Image: "app:v1", Replicas: 2, Port: 8080,
		Routes: []string{"/"}, Env: map[string]string{"MODE": "prod"}, Labels: map[string]string{},
		RestartPolicy: "unless-stopped", PullPolicy: config.PullIfNotPresent,
		Deploy: config.Deploy{Strategy: config.StrategyRolling},
	}
	if mod != nil {
		mod(s)
	}
	return s
}

func desired(s *config.Service) Service {
	spec := NewSpec(s, Inputs{ImageID: "", SecretHashes: map[string]string{"DB": "h1"}})
	return Service{Service: s, Spec: spec, Hash: spec.Hash()}
}

// running returns n serving containers of d, replica numbers 1..n.
func running(d Service, n int) []Container {
	var cs []Container
	for i := 1; i <= n; i++ {
		spec := d.Spec
		cs = append(cs, Container{
			ID: d.Name + string(rune('0'+i)), Project: d.Project, Service: d.Name,
			Index: i, Hash: d.Hash, State: "running", Spec: &spec,
		})
	}
	return cs
}

func TestComputeActions(t *testing.T) {
	base := desired(svc("shop", "web", nil))
	cases := []struct {
		name    string
		desired []Service
		live    []Container
		opts    Options
		want    Action
		reason  string
	}{
		{"create", []Service{base}, nil, Options{}, ActionCreate, ""},
		{"nothing", []Service{base}, running(base, 2), Options{}, ActionNone, ""},
		{"zero replicas, nothing live", []Service{desired(svc("shop", "web", func(s *config.Service) { s.Replicas = 0 }))}, nil, Options{}, ActionNone, ""},
		{"update", []Service{desired(svc("shop", "web", func(s *config.Service) { s.Image = "app:v2" }))}, running(base, 2), Options{}, ActionUpdate, ""},
		{"scale up", []Service{desired(svc("shop", "web", func(s *config.Service) { s.Replicas = 3 }))}, running(base, 2), Options{}, ActionScale, ""},
		{"scale down", []Service{desired(svc("shop", "web", func(s *config.Service) { s.Replicas = 1 }))}, running(base, 2), Options{}, ActionScale, ""},
		{"heal exited", []Service{base}, func() []Container {
			cs := running(base, 2)
			cs[1].State = "exited"
			return cs
		}(), Options{}, ActionHeal, "1 of 2 containers not serving"},
		{"heal unhealthy", []Service{base}, func() []Container {
			cs := running(base, 2)
			cs[0].Health = "unhealthy"
			return cs
		}(), Options{}, ActionHeal, "1 of 2 containers not serving"},
		{"starting by its HEALTHCHECK is serving", []Service{base}, func() []Container {
			cs := running(base, 2)
			cs[0].Health = "starting"
			return cs
		}(), Options{}, ActionNone, ""},
		{"heal removed by hand", []Service{base}, running(base, 2)[1:], Options{}, ActionHeal, "1 of 2 containers missing"},
		{"remove", nil, running(base, 2), Options{Prune: true}, ActionRemove, ""},
		{"prune off", nil, running(base, 2), Options{}, ActionNone, "gone from git; not removed because prune is off"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := Compute(tc.desired, tc.live, tc.opts)
			if len(p.Changes) != 1 {
				t.Fatalf("changes = %+v", p.Changes)
			}
			c := p.Changes[0]
			if c.Action != tc.want || c.Reason != tc.reason {
				t.Fatalf("action %q reason %q, want %q %q", c.Action, c.Reason, tc.want, tc.reason)
			}
			if p.HasChanges() != (tc.want != ActionNone) {
				t.Errorf("HasChanges = %v", p.HasChanges())
			}
		})
	}
}

func TestOtherNodesContainersAreNotOurs(t *testing.T) {
	base := desired(svc("shop", "web", nil))
	theirs := running(desired(svc("other", "db", nil)), 1)
	theirs[0].Node = "host-b"
	ours := running(base, 2)
	for i := range ours {
		ours[i].Node = "host-a"
	}
	p := Compute([]Service{base}, append(ours, theirs...), Options{Prune: true, Node: "host-a"})
	if len(p.Changes) != 1 || p.Changes[0].Action != ActionNone {
		t.Fatalf("another node's container was planned for: %+v", p.Changes)
	}
}

func TestSpecIgnoresWhatShapesNoContainer(t *testing.T) {
	base := desired(svc("shop", "web", nil)).Hash
	same := []func(*config.Service){
		func(s *config.Service) { s.Replicas = 5 },
		func(s *config.Service) { s.Domains = []string{"a.example.com"}; s.Routes = []string{"/api"} },
		func(s *config.Service) { s.Readiness = &config.Probe{Type: "http", Path: "/x"} },
		func(s *config.Service) { s.Deploy.CanaryWeight = 50; s.Deploy.Strategy = config.StrategyCanary },
		func(s *config.Service) { s.Port = 9090 },
		func(s *config.Service) { s.Drift = config.DriftWarn },
	}
	for i, mod := range same {
		if h := desired(svc("shop", "web", mod)).Hash; h != base {
			t.Errorf("change %d altered the spec hash", i)
		}
	}
}

// TestFieldChanges covers every field of the spec, each changed alone.
func TestFieldChanges(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*config.Service)
		want string
	}{
		{"image", func(s *config.Service) { s.Image = "app:v2" }, "image: app:v1 -> app:v2"},
		{"command", func(s *config.Service) { s.Command = []string{"serve", "--fast"} }, `command: [] -> ["serve", "--fast"]`},
		{"env changed", func(s *config.Service) { s.Env["MODE"] = "dev" }, `env.MODE: "prod" -> "dev"`},
		{"env added", func(s *config.Service) { s.Env["NEW"] = "1" }, `env.NEW: + "1"`},
		{"env removed", func(s *config.Service) { delete(s.Env, "MODE") }, `env.MODE: - "prod"`},
		{"env secret", func(s *config.Service) { s.Env["MODE"] = "${secrets.DB}"; s.SecretRefs = []string{"DB"} }, "env.MODE changed (secret)"},
		{"volumes", func(s *config.Service) { s.Volumes = []config.Volume{{Source: "data", Target: "/data"}} }, `volumes: [] -> ["data:/data"]`},
		{"mounts", func(s *config.Service) {
			s.Mounts = []config.Mount{{Source: "./services/shop/config", Target: "/cfg", ReadOnly: true, HostPath: "/x"}}
		}, `mounts: [] -> ["./services/shop/config:/cfg:ro"]`},
		{"ports", func(s *config.Service) {
			s.ExtraPorts = []config.PortBinding{{HostPort: 2222, ContainerPort: 22, Protocol: "tcp"}}
		}, `extra_ports: [] -> ["2222:22/tcp"]`},
		{"aliases", func(s *config.Service) { s.Aliases = []string{"www"} }, `aliases: ["web"] -> ["web", "www"]`},
		{"networks", func(s *config.Service) { s.Internal = true }, `networks: ["orca-shop"] -> ["orca-shop", "orca-internal"]`},
		{"memory", func(s *config.Service) { s.Resources.MemoryBytes = 1 << 20 }, "resources.memory: none -> 1048576 bytes"},
		{"cpu", func(s *config.Service) { s.Resources.NanoCPUs = 5e8 }, "resources.cpu: none -> 0.5"},
		{"restart", func(s *config.Service) { s.RestartPolicy = "always" }, "restart_policy: unless-stopped -> always"},
		{"labels", func(s *config.Service) { s.Labels["team"] = "web" }, `labels.team: + "web"`},
	}
	base := desired(svc("shop", "web", nil))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := desired(svc("shop", "web", tc.mod))
			if d.Hash == base.Hash {
				t.Fatal("spec hash did not change")
			}
			p := Compute([]Service{d}, running(base, 2), Options{})
			c := p.Changes[0]
			if c.Action != ActionUpdate || len(c.Fields) == 0 {
				t.Fatalf("change = %+v", c)
			}
			var got []string
			for _, f := range c.Fields {
				got = append(got, f.String())
			}
			if !contains(got, tc.want) {
				t.Fatalf("fields %q do not include %q", got, tc.want)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestSecretRotationShowsOnlyChanged(t *testing.T) {
	s := svc("shop", "web", func(s *config.Service) { s.Env["PASSWORD"] = "${secrets.DB}"; s.SecretRefs = []string{"DB"} })
	old := NewSpec(s, Inputs{ImageID: "", SecretHashes: map[string]string{"DB": "hash-of-old-value"}})
	newSpec := NewSpec(s, Inputs{ImageID: "", SecretHashes: map[string]string{"DB": "hash-of-new-value"}})
	if old.Hash() == newSpec.Hash() {
		t.Fatal("rotating a secret must change the spec hash")
	}
	fs := FieldChanges(&old, &newSpec)
	if len(fs) != 1 || fs[0].String() != "secrets.DB changed (secret)" || fs[0].From != "" || fs[0].To != "" {
		t.Fatalf("fields = %+v", fs)
	}
}

func TestImageIDMattersOnlyForPullAlways(t *testing.T) {
	always := svc("shop", "web", func(s *config.Service) { s.Image = "app:latest"; s.PullPolicy = config.PullAlways })
	if NewSpec(always, Inputs{ImageID: "sha256:aaa", SecretHashes: nil}).Hash() == NewSpec(always, Inputs{ImageID: "sha256:bbb", SecretHashes: nil}).Hash() {
		t.Error("a moved :latest tag must be a new spec")
	}
	pinned := svc("shop", "web", nil)
	if NewSpec(pinned, Inputs{ImageID: "sha256:aaa", SecretHashes: nil}).Hash() != NewSpec(pinned, Inputs{ImageID: "sha256:bbb", SecretHashes: nil}).Hash() {
		t.Error("an if-not-present image must not depend on the image ID")
	}
}

func TestSpecLabelRoundTrip(t *testing.T) {
	s := desired(svc("shop", "web", nil)).Spec
	back, ok := DecodeSpec(s.Encode())
	if !ok || back.Hash() != s.Hash() {
		t.Fatalf("round trip changed the spec: %+v", back)
	}
	if _, ok := DecodeSpec("not json"); ok {
		t.Error("garbage decoded")
	}
}

func TestPruneGuard(t *testing.T) {
	a, b, c := desired(svc("p", "a", nil)), desired(svc("p", "b", nil)), desired(svc("p", "c", nil))
	live := append(append(running(a, 1), running(b, 1)...), running(c, 1)...)
	cases := []struct {
		name    string
		desired []Service
		allow   bool
		wantErr string
	}{
		{"one of three", []Service{a, b}, false, ""},
		{"two of three", []Service{a}, false, "removes 2 of 3 managed services, more than prune_guard = 0.5"},
		{"all", nil, false, "removes all 3 managed services"},
		{"all allowed", nil, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Compute(tc.desired, live, Options{Prune: true}).CheckPruneGuard(0.5, tc.allow)
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestPlanText(t *testing.T) {
	web := desired(svc("shop", "web", nil))
	api := desired(svc("shop", "api", func(s *config.Service) { s.Image = "api:v2" }))
	oldAPI := desired(svc("shop", "api", nil))
	gone := desired(svc("old", "svc", nil))
	live := append(append(running(oldAPI, 2), running(gone, 1)...), running(web, 2)...)
	worker := desired(svc("shop", "worker", nil))
	p := Compute([]Service{web, api, worker}, live, Options{Prune: true})
	var buf bytes.Buffer
	if err := p.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	want := "- old/svc  remove 1 container(s); volumes are kept\n" +
		"~ shop/api  update 2 replica(s), rolling\n" +
		"      image: app:v1 -> api:v2\n" +
		"+ shop/worker  create 2 replica(s) of app:v1\n" +
		"\nPlan: 1 to create, 1 to update, 0 to scale, 0 to heal, 1 to remove; 1 unchanged.\n"
	if buf.String() != want {
		t.Fatalf("plan text:\n%s\nwant:\n%s", buf.String(), want)
	}
	js, err := json.Marshal(p)
	if err != nil || !strings.Contains(string(js), `"field":"image","from":"app:v1","to":"api:v2"`) {
		t.Fatalf("json: %s %v", js, err)
	}
}

// TestBuildCommitInSpec checks that a service with build runs the image
// tagged by its app commit, that a new commit is a new spec which plan shows
// as build: <repo>@<old12> -> <new12>, and that a service without build has
// no build key in its spec (its hash is what it was before builds existed).
func TestBuildCommitInSpec(t *testing.T) {
	const repo = "https://git.example.com/app.git"
	built := svc("shop", "web", func(s *config.Service) {
		s.Image = ""
		s.PullPolicy = config.PullNever
		s.Build = &config.Build{Repo: repo, Branch: "main", Context: ".", Dockerfile: "Dockerfile"}
	})
	oldC, newC := strings.Repeat("a", 40), strings.Repeat("b", 40)
	old := NewSpec(built, Inputs{BuildCommit: oldC})
	next := NewSpec(built, Inputs{BuildCommit: newC})
	if old.Image != "orca-build/shop-web:aaaaaaaaaaaa" {
		t.Errorf("image = %q", old.Image)
	}
	if old.Hash() == next.Hash() {
		t.Fatal("a new app commit must be a new spec")
	}
	fs := FieldChanges(&old, &next)
	if len(fs) != 1 || fs[0].String() != "build: "+repo+"@aaaaaaaaaaaa -> bbbbbbbbbbbb" {
		t.Fatalf("fields = %v", fs)
	}
	withArg := *built.Build
	withArg.Args = map[string]string{"MODE": "debug"}
	argSvc := *built
	argSvc.Build = &withArg
	argSpec := NewSpec(&argSvc, Inputs{BuildCommit: oldC})
	if argSpec.Hash() == old.Hash() {
		t.Error("new build args must be a new spec")
	}
	plain := NewSpec(svc("shop", "web", nil), Inputs{BuildCommit: oldC})
	if plain.Build != nil || strings.Contains(plain.Encode(), `"build"`) {
		t.Errorf("a service without build has a build in its spec: %s", plain.Encode())
	}
}

// TestPlanShowsMovedDigest: a moved tag of a pull_policy = "always" image
// shows as its registry digests, not its image IDs; a changed image shows
// both the image and the digest; an unknown digest leaves the image ID line.
func TestPlanShowsMovedDigest(t *testing.T) {
	s := svc("shop", "web", func(s *config.Service) { s.Image = "app:latest"; s.PullPolicy = config.PullAlways })
	old := NewSpec(s, Inputs{ImageID: "sha256:aaaaaaaaaaaaaaaa"})
	cur := NewSpec(s, Inputs{ImageID: "sha256:bbbbbbbbbbbbbbbb"})
	live := []Container{{ID: "c1", Project: "shop", Service: "web", Index: 1, Hash: old.Hash(), State: "running", Spec: &old,
		Digest: "sha256:1111111111111111"}}
	d := Service{Service: s, Spec: cur, Hash: cur.Hash(), Digest: "sha256:2222222222222222"}
	c := Compute([]Service{d}, live, Options{}).Changes[0]
	if got := fmt.Sprint(c.Fields); got != "[digest: sha256:111111111111 -> sha256:222222222222]" || c.Digest != d.Digest {
		t.Errorf("fields = %s, digest %q; want the digest move only", got, c.Digest)
	}
	d.Digest = ""
	c = Compute([]Service{d}, live, Options{}).Changes[0]
	if got := fmt.Sprint(c.Fields); got != "[image_id: aaaaaaaaaaaa -> bbbbbbbbbbbb]" {
		t.Errorf("fields without a desired digest = %s; want the image ID line", got)
	}
	s2 := svc("shop", "web", func(s *config.Service) { s.Image = "app:v2"; s.PullPolicy = config.PullIfNotPresent })
	v2 := NewSpec(s2, Inputs{})
	d = Service{Service: s2, Spec: v2, Hash: v2.Hash(), Digest: "sha256:3333333333333333"}
	c = Compute([]Service{d}, live, Options{}).Changes[0]
	if got := fmt.Sprint(c.Fields); got != "[image: app:latest -> app:v2 digest: sha256:111111111111 -> sha256:333333333333]" {
		t.Errorf("fields of a changed image = %s", got)
	}
}
