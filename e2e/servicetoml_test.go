package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/config"
)

// svc is one [[service]] table of a service.toml, for the tests that need a
// service and not one spelling of it (docs/reference/service-toml.md has the
// keys). String renders it; a zero field is left out, so the loader's
// default applies. Replicas is a pointer (see count) because 0 replicas is
// a value tests write.
type svc struct {
	Name, Image string
	Replicas    *int
	Port        int
	Domain      string
	Keys        []string          // more top-level lines, as written: `drift = "warn"`, `routes = ["/api"]`
	Env         map[string]string // [service.env], by key
	Readiness   probe             // [service.readiness] when Path is set
	Liveness    probe             // [service.liveness] when Path is set
	Deploy      deploy            // [service.deploy] when any field is set
	Tables      string            // more tables, as written, last: [[service.mounts]], [service.watch]
}

// probe is a [service.readiness] or [service.liveness] table.
type probe struct {
	Path                                             string
	IntervalSecs, InitialDelaySecs, FailureThreshold int
}

// deploy is the [service.deploy] table.
type deploy struct {
	Strategy                                       string
	MaxSurge, TimeoutSecs, DrainSecs, MinReadySecs int
	Keys                                           []string // more lines, as written: canary steps, analysis, `min_ready_secs = 0`
}

// healthz is the readiness probe most tests use: GET /healthz every second.
var healthz = probe{Path: "/healthz", IntervalSecs: 1}

// webApp is service "web" of the test app on port 8080 behind healthz,
// with a 20 s rollout deadline: what most tests deploy.
func webApp(image string, replicas int) svc {
	return svc{Name: "web", Image: image, Replicas: count(replicas), Port: 8080, Readiness: healthz, Deploy: deploy{TimeoutSecs: passingRolloutSecs}}
}

// passingRolloutSecs is the timeout_secs of a rollout a test expects to
// pass: timeout_secs bounds the whole rollout (every batch, every Docker
// call), and on a shared engine at load average ~19 Docker's create and
// start calls alone have passed a 20 s one, so a tight one makes the test a
// timed assertion. Tests of a failing rollout set their own, short one.
const passingRolloutSecs = 120

// count is n for svc.Replicas.
func count(n int) *int { return &n }

// services is a service.toml of ss.
func services(ss ...svc) string {
	var b strings.Builder
	for i, s := range ss {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(s.String())
	}
	return b.String()
}

func (s svc) String() string {
	var b strings.Builder
	b.WriteString("[[service]]\n")
	fmt.Fprintf(&b, "name = %q\n", s.Name)
	if s.Image != "" { // a service with [service.build] may go without
		fmt.Fprintf(&b, "image = %q\n", s.Image)
	}
	if s.Replicas != nil {
		fmt.Fprintf(&b, "replicas = %d\n", *s.Replicas)
	}
	line(&b, "port", s.Port)
	if s.Domain != "" {
		fmt.Fprintf(&b, "domain = %q\n", s.Domain)
	}
	lines(&b, s.Keys)
	if len(s.Env) > 0 {
		b.WriteString("[service.env]\n")
		for _, k := range slices.Sorted(maps.Keys(s.Env)) {
			fmt.Fprintf(&b, "%s = %q\n", k, s.Env[k])
		}
	}
	s.Readiness.write(&b, "readiness")
	s.Liveness.write(&b, "liveness")
	s.Deploy.write(&b)
	b.WriteString(s.Tables)
	return b.String()
}

func (p probe) write(b *strings.Builder, table string) {
	if p.Path == "" {
		return
	}
	fmt.Fprintf(b, "[service.%s]\npath = %q\n", table, p.Path)
	line(b, "interval_secs", p.IntervalSecs)
	line(b, "initial_delay_secs", p.InitialDelaySecs)
	line(b, "failure_threshold", p.FailureThreshold)
}

func (d deploy) write(b *strings.Builder) {
	if d.Strategy == "" && d.MaxSurge == 0 && d.TimeoutSecs == 0 && d.DrainSecs == 0 && d.MinReadySecs == 0 && len(d.Keys) == 0 {
		return
	}
	b.WriteString("[service.deploy]\n")
	if d.Strategy != "" {
		fmt.Fprintf(b, "strategy = %q\n", d.Strategy)
	}
	line(b, "max_surge", d.MaxSurge)
	line(b, "min_ready_secs", d.MinReadySecs)
	line(b, "timeout_secs", d.TimeoutSecs)
	line(b, "drain_secs", d.DrainSecs)
	lines(b, d.Keys)
}

// line writes key = n unless n is 0.
func line(b *strings.Builder, key string, n int) {
	if n != 0 {
		fmt.Fprintf(b, "%s = %d\n", key, n)
	}
}

func lines(b *strings.Builder, ls []string) {
	for _, l := range ls {
		b.WriteString(strings.TrimSpace(l) + "\n")
	}
}

// TestServiceBuilder loads what svc renders with the real loader: every
// field lands on the key it names, a zero field leaves the default, and 0
// replicas is written. It needs no Docker (it runs with -short too).
func TestServiceBuilder(t *testing.T) {
	full := svc{Name: "web", Image: imageV1, Replicas: count(3), Port: 8080, Domain: "shop.test",
		Keys:      []string{`routes = ["/api"]`, "strip_prefix = true"},
		Env:       map[string]string{"MODE": "prod", "B": "${secrets.B}"},
		Readiness: probe{Path: "/healthz", IntervalSecs: 1, InitialDelaySecs: 2},
		Liveness:  probe{Path: "/live", IntervalSecs: 4, FailureThreshold: 5},
		Deploy: deploy{Strategy: "canary", MaxSurge: 2, TimeoutSecs: 20, DrainSecs: 10, MinReadySecs: 1,
			Keys: []string{"steps = [{weight = 50, pause_secs = 4}]"}},
		Tables: "[service.watch]\nrepo = \"acme/app\"\nbranch = \"main\"\n"}
	idle := svc{Name: "idle", Image: imageV2, Replicas: count(0)}
	bare := svc{Name: "bare", Image: imageV3}
	got, errs := config.ParseServiceFile("services/p/service.toml", "p", []byte(services(full, idle, bare)))
	if len(errs) > 0 || len(got) != 3 {
		t.Fatalf("loader: %d services, errors %v\n%s", len(got), errs, services(full, idle, bare))
	}
	w, i, b := got[0], got[1], got[2]
	if w.Name != "web" || w.Image != imageV1 || w.Replicas != 3 || w.Port != 8080 ||
		strings.Join(w.Domains, ",") != "shop.test" || strings.Join(w.Routes, ",") != "/api" || !w.StripPrefix ||
		!maps.Equal(w.Env, full.Env) || w.Watch == nil {
		t.Errorf("web = %+v", w)
	}
	if r := w.Readiness; r == nil || r.Path != "/healthz" || r.Interval != time.Second || r.InitialDelay != 2*time.Second {
		t.Errorf("readiness = %+v", r)
	}
	if l := w.Liveness; l == nil || l.Path != "/live" || l.Interval != 4*time.Second || l.FailureThreshold != 5 {
		t.Errorf("liveness = %+v", l)
	}
	if d := w.Deploy; d.Strategy != "canary" || d.MaxSurge != 2 || d.Timeout != 20*time.Second ||
		d.Drain != 10*time.Second || d.MinReady != time.Second || len(d.Steps) != 1 || d.Steps[0].Weight != 50 {
		t.Errorf("deploy = %+v", d)
	}
	if i.Name != "idle" || i.Replicas != 0 {
		t.Errorf("idle = %+v, want 0 replicas", i)
	}
	if b.Replicas != 1 || b.Port != 0 || b.Readiness != nil || b.Liveness != nil || b.Deploy.Timeout != 300*time.Second {
		t.Errorf("bare = %+v, want the loader's defaults", b)
	}
}
