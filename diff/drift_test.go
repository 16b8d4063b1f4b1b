package diff

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/config"
)

// liveOf is the inspect of a container made exactly from spec, as Docker
// reports it: image defaults merged in, orca's labels on it.
func liveOf(spec Spec) *Live {
	li := &Live{
		Image: spec.Image, ImageID: spec.ImageID, Env: map[string]string{"PATH": "/bin"},
		ImageEnv: map[string]string{"PATH": "/bin"}, ImageCommand: []string{"/app"},
		Command: spec.Command, Networks: map[string][]string{}, Labels: map[string]string{"orca.managed": "true", "org.image": "x"},
		ImageLabels: map[string]string{"org.image": "x"}, RestartPolicy: spec.RestartPolicy,
		MemoryBytes: spec.MemoryBytes, NanoCPUs: spec.NanoCPUs, Ports: spec.Ports, Volumes: spec.Volumes,
	}
	if len(li.Command) == 0 {
		li.Command = []string{"/app"}
	}
	for k, v := range spec.Env {
		li.Env[k] = v
	}
	for k, v := range spec.Labels {
		li.Labels[k] = v
	}
	for _, n := range spec.Networks {
		li.Networks[n] = append([]string(nil), spec.Aliases...)
	}
	for _, m := range spec.Mounts {
		li.Binds = append(li.Binds, config.Mount{Source: "/checkout/" + m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	return li
}

func driftOf(d Service, live []Container, inspected map[string]*Live) []Finding {
	return Drift(DriftInput{Desired: []Service{d}, Live: live, Inspected: inspected,
		Deployed: map[string]int{d.Key(): d.Replicas}})
}

func TestDriftNoneWhenLiveMatches(t *testing.T) {
	d := desired(svc("shop", "web", func(s *config.Service) {
		s.Mounts = []config.Mount{{Source: "./services/shop/conf", Target: "/etc/app", ReadOnly: true}}
		s.Labels = map[string]string{"team": "a"}
		s.ExtraPorts = nil
	}))
	live := running(d, 2)
	ins := map[string]*Live{}
	for _, c := range live {
		ins[c.ID] = liveOf(d.Spec)
	}
	if fs := driftOf(d, live, ins); len(fs) != 0 {
		t.Fatalf("findings for a container made from its spec: %v", fs)
	}
}

func TestDriftKinds(t *testing.T) {
	d := desired(svc("shop", "web", nil))
	cases := []struct {
		name  string
		live  func() []Container
		ins   func(map[string]*Live, []Container)
		want  string // "kind container field from->to"
		unhea map[string]string
	}{
		{name: "docker stop", live: func() []Container {
			cs := running(d, 2)
			cs[1].State = "exited"
			return cs
		}, ins: func(m map[string]*Live, cs []Container) { m[cs[1].ID].ExitCode = 137 },
			want: "stopped web2 state running->exited (exit code 137)"},
		{name: "paused", live: func() []Container {
			cs := running(d, 2)
			cs[0].State = "paused"
			return cs
		}, want: "stopped web1 state running->paused"},
		{name: "restarting", live: func() []Container {
			cs := running(d, 2)
			cs[0].State = "restarting"
			return cs
		}, want: "stopped web1 state running->restarting"},
		{name: "docker rm", live: func() []Container { return running(d, 2)[:1] },
			want: fmt.Sprintf("removed shop-web-%s-2 state running->missing", d.Hash[:8])},
		// docker rm -f seen while the engine is still removing the
		// container: it is being removed, not stopped.
		{name: "docker rm -f under way", live: func() []Container {
			cs := running(d, 2)
			cs[1].State = StateRemoving
			cs[1].Name = fmt.Sprintf("shop-web-%s-2", d.Hash[:8])
			return cs
		}, want: fmt.Sprintf("removed shop-web-%s-2 state running->missing", d.Hash[:8])},
		{name: "healthcheck", live: func() []Container {
			cs := running(d, 2)
			cs[0].Health = "unhealthy"
			return cs
		}, want: "unhealthy web1 health healthy->unhealthy (image HEALTHCHECK)"},
		{name: "liveness", live: func() []Container { return running(d, 2) }, unhea: map[string]string{"web2": "http GET: status 500"},
			want: "unhealthy web2 liveness passing->http GET: status 500"},
		{name: "stray replica", live: func() []Container {
			cs := running(d, 3)
			cs[2].Name = "stray"
			return cs
		}, want: "extra stray replicas ->2 wanted"},
		{name: "duplicate index", live: func() []Container {
			cs := running(d, 3)
			cs[2].Index, cs[2].Name = 1, "web1-copy"
			return cs
		}, want: "extra web1-copy replicas ->2 wanted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			live := tc.live()
			for i := range live {
				if live[i].Name == "" {
					live[i].Name = live[i].ID
				}
			}
			ins := map[string]*Live{}
			for _, c := range live {
				ins[c.ID] = liveOf(d.Spec)
			}
			if tc.ins != nil {
				tc.ins(ins, live)
			}
			fs := Drift(DriftInput{Desired: []Service{d}, Live: live, Inspected: ins, Deployed: map[string]int{d.Key(): d.Replicas}, Unhealthy: tc.unhea})
			if got := render(fs); got != tc.want {
				t.Fatalf("findings\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func render(fs []Finding) string {
	var s []string
	for _, f := range fs {
		s = append(s, fmt.Sprintf("%s %s %s %s->%s", f.Kind, f.Container, f.Field, f.From, f.To))
	}
	return strings.Join(s, "; ")
}

func TestDriftRemovedOnlyOnceDeployed(t *testing.T) {
	d := desired(svc("shop", "web", nil))
	fs := Drift(DriftInput{Desired: []Service{d}})
	if len(fs) != 0 {
		t.Fatalf("a service that never ran is pending, not removed: %v", fs)
	}
	fs = Drift(DriftInput{Desired: []Service{d}, Deployed: map[string]int{d.Key(): d.Replicas}})
	if len(fs) != 2 || fs[0].Kind != KindRemoved {
		t.Fatalf("both replicas of a deployed service removed: %v", fs)
	}
	// Git scaled 1 -> 2: the second replica is pending, not removed.
	fs = Drift(DriftInput{Desired: []Service{d}, Live: running(d, 1), Deployed: map[string]int{d.Key(): 1}})
	if len(fs) != 0 {
		t.Fatalf("a replica git just added is reported: %v", fs)
	}
}

// A container Docker is removing is no longer there for the user: not an
// extra replica, not a stray service.
func TestDriftIgnoresContainersBeingRemoved(t *testing.T) {
	d := desired(svc("shop", "web", nil))
	live := running(d, 3)
	live[2].State = StateRemoving
	stray := Container{ID: "s1", Name: "shop-ghost-1", Project: "shop", Service: "ghost", State: StateRemoving}
	if fs := driftOf(d, append(live, stray), nil); len(fs) != 0 {
		t.Fatalf("findings for containers being removed: %v", render(fs))
	}
}

func TestDriftExtraServiceAndNodes(t *testing.T) {
	d := desired(svc("shop", "web", nil))
	stray := Container{ID: "s1", Name: "shop-ghost-1", Project: "shop", Service: "ghost", State: "running", Node: "n1"}
	other := Container{ID: "o1", Name: "shop-other-1", Project: "shop", Service: "other", State: "running", Node: "n2"}
	handMade := Container{ID: "h1", Name: "copy", Project: "shop", Service: "gone", State: "running"}
	live := append(running(d, 2), stray, other, handMade)
	for i := range live[:2] {
		live[i].Node = "n1"
		live[i].Name = live[i].ID
	}
	fs := Drift(DriftInput{Desired: []Service{d}, Live: live, Node: "n1"})
	if got := render(fs); got != "extra shop-ghost-1 service ->not in git; extra copy service ->not in git" {
		t.Fatalf("got %q: want the stray and the unlabelled-node copy, not the other node's container", got)
	}
}

func TestDriftModifiedFields(t *testing.T) {
	base := svc("shop", "web", func(s *config.Service) {
		s.Env = map[string]string{"MODE": "prod", "DB_PASS": "${secrets.DB}", "KEEP": "1"}
		s.SecretRefs = []string{"DB"}
		s.Labels = map[string]string{"team": "a"}
		s.Command = []string{"/app", "serve"}
		s.Mounts = []config.Mount{{Source: "./services/shop/conf", Target: "/etc/app", ReadOnly: true}}
		s.Volumes = []config.Volume{{Source: "data", Target: "/data"}}
		s.ExtraPorts = []config.PortBinding{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}
		s.Aliases = []string{"www"}
		s.Resources = config.Resources{MemoryBytes: 256 << 20, NanoCPUs: 5e8}
	})
	d := desired(base)
	expand := func(v string) (string, error) {
		return strings.ReplaceAll(v, "${secrets.DB}", "hunter2"), nil
	}
	cases := []struct {
		name, field, from, to string
		secret                bool
		edit                  func(li *Live)
	}{
		{"image tag", "image", "app:v1", "app:hand", false, func(li *Live) { li.Image = "app:hand" }},
		{"env changed", "env.MODE", `"prod"`, `"debug"`, false, func(li *Live) { li.Env["MODE"] = "debug" }},
		{"env added", "env.EXTRA", "", `"1"`, false, func(li *Live) { li.Env["EXTRA"] = "1" }},
		{"env removed", "env.KEEP", `"1"`, "", false, func(li *Live) { delete(li.Env, "KEEP") }},
		{"secret env changed", "env.DB_PASS", "", "", true, func(li *Live) { li.Env["DB_PASS"] = "other-secret" }},
		{"command", "command", `["/app", "serve"]`, `["/app", "debug"]`, false, func(li *Live) { li.Command = []string{"/app", "debug"} }},
		{"ports", "extra_ports", `["8080:80/tcp"]`, `["9090:80/tcp"]`, false, func(li *Live) {
			li.Ports = []config.PortBinding{{HostPort: 9090, ContainerPort: 80}}
		}},
		{"mount mode", "mounts", `["/etc/app:ro"]`, `["/etc/app"]`, false, func(li *Live) { li.Binds[0].ReadOnly = false }},
		{"volume", "volumes", `["data:/data"]`, `["other:/data"]`, false, func(li *Live) { li.Volumes = []config.Volume{{Source: "other", Target: "/data"}} }},
		{"network", "networks", `["orca-shop"]`, `["bridge", "orca-shop"]`, false, func(li *Live) { li.Networks["bridge"] = nil }},
		{"aliases", "aliases.orca-shop", `["web", "www"]`, `["web"]`, false, func(li *Live) { li.Networks["orca-shop"] = []string{"web"} }},
		{"label", "labels.team", `"a"`, `"b"`, false, func(li *Live) { li.Labels["team"] = "b" }},
		{"restart", "restart_policy", "unless-stopped", "no", false, func(li *Live) { li.RestartPolicy = "" }},
		{"memory", "resources.memory", "268435456 bytes", "none", false, func(li *Live) { li.MemoryBytes = 0 }},
		{"cpu", "resources.cpu", "0.5", "2", false, func(li *Live) { li.NanoCPUs = 2e9 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			li := liveOf(d.Spec)
			li.Env["DB_PASS"] = "hunter2"
			if fs := ConfigDrift(&d.Spec, li, expand); len(fs) != 0 {
				t.Fatalf("unedited container drifted: %v", fs)
			}
			tc.edit(li)
			fs := ConfigDrift(&d.Spec, li, expand)
			want := FieldChange{Field: tc.field, From: tc.from, To: tc.to, Secret: tc.secret}
			if len(fs) != 1 || fs[0] != want {
				t.Fatalf("got %+v, want [%+v]", fs, want)
			}
			b, _ := json.Marshal(fs)
			if strings.Contains(string(b), "hunter2") || strings.Contains(string(b), "other-secret") {
				t.Fatalf("a secret value leaked: %s", b)
			}
		})
	}
}

func TestDriftSecretsWithoutExpander(t *testing.T) {
	d := desired(svc("shop", "web", func(s *config.Service) {
		s.Env = map[string]string{"DB_PASS": "${secrets.DB}"}
	}))
	li := liveOf(d.Spec)
	li.Env["DB_PASS"] = "whatever"
	if fs := ConfigDrift(&d.Spec, li, nil); len(fs) != 0 {
		t.Fatalf("without an expander a secret-backed value is not compared: %v", fs)
	}
	delete(li.Env, "DB_PASS")
	fs := ConfigDrift(&d.Spec, li, nil)
	if len(fs) != 1 || !fs[0].Secret || fs[0].From != "" || fs[0].To != "" {
		t.Fatalf("a removed secret key shows as changed, valueless: %+v", fs)
	}
}

func TestDriftModifiedInReport(t *testing.T) {
	d := desired(svc("shop", "web", nil))
	live := running(d, 2)
	live[0].Name = "w1"
	li := liveOf(d.Spec)
	li.Env["MODE"] = "hand"
	fs := driftOf(d, live, map[string]*Live{live[0].ID: li, live[1].ID: liveOf(d.Spec)})
	if got := render(fs); got != `modified w1 env.MODE "prod"->"hand"` {
		t.Fatalf("got %q", got)
	}
	if fs[0].String() != `modified w1: env.MODE: "prod" -> "hand"` {
		t.Fatalf("text: %q", fs[0].String())
	}
}

// Docker reports an unspecified host IP ("::" as well as "0.0.0.0") as none
// and an IPv6 address in its canonical form: extra_ports written either way
// are the container's own, not drift that a "correct" policy would recreate
// the container for at every tick.
func TestDriftPortFormsDockerNormalises(t *testing.T) {
	for _, in := range []string{"[::]:8080:80", "0.0.0.0:8080:80", "[0:0:0:0:0:0:0:1]:8080:80", "[::ffff:127.0.0.1]:8080:80"} {
		t.Run(in, func(t *testing.T) {
			pb, err := config.ParsePort(in)
			if err != nil {
				t.Fatal(err)
			}
			d := desired(svc("shop", "web", func(s *config.Service) { s.ExtraPorts = []config.PortBinding{pb} }))
			li := liveOf(d.Spec)
			// What the Docker adapter reads back: the address parsed, an
			// unspecified one left out.
			li.Ports = []config.PortBinding{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}
			if ip, err := netip.ParseAddr(pb.HostIP); err == nil && !ip.IsUnspecified() {
				li.Ports[0].HostIP = ip.String()
			}
			if fs := ConfigDrift(&d.Spec, li, nil); len(fs) != 0 {
				t.Fatalf("%s reported as drift: %+v", in, fs)
			}
		})
	}
}
