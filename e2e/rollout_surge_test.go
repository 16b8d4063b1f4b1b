package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
)

// TestApplyMaxSurgeStartsAtOnce rolls 4 replicas with max_surge = 2 and
// reads the engine's own record of it: both new containers of a batch are
// started, and still running, before the first old one is told to stop; a
// batch never starts before the old ones of the one before it were stopped
// (at most 2 above the replica count); the 2 old ones of a batch are
// stopped side by side (each v1 takes a second to shut down, and the second
// is told to stop before the first has exited); 4 answer /healthz at every
// moment;
// and each container is created on its project network in the create call
// (no network connect request reaches the engine).
func TestApplyMaxSurgeStartsAtOnce(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	p := env.project("surge")
	dir := t.TempDir()
	web := func(image string) string {
		s := webApp(image, 4)
		if image == imageV1 {
			s.Env = map[string]string{"SHUTDOWN_DELAY_MS": "1000"}
		}
		s.Deploy = deploy{Strategy: "rolling", MaxSurge: 2, TimeoutSecs: passingRolloutSecs}
		return s.String()
	}
	writeFiles(t, dir, map[string]string{"cluster.toml": clusterToml})
	writeProject(t, dir, p, web(imageV1))
	orca := newOrca(t, env, dir)
	orca.mustApply()
	if v1 := env.mustContainers(t, p, "web"); len(v1) != 4 || !allRunning(v1) {
		t.Fatalf("after the first apply: %s, want 4 running", describe(v1))
	}

	writeProject(t, dir, p, web(imageV2))
	evs := env.watchEvents(t, p)
	mon := env.watchReady(p, "web")
	orca.docker.takeRequests()
	r := orca.apply()
	samples := mon.stop()
	reqs := orca.docker.takeRequests()
	if r.Code != 0 {
		t.Fatalf("rolling apply failed:\n%s", r)
	}
	if l := applyLines(r.Stdout)[p+"/web"]; l.Action != "update" || l.Started != 4 || l.Removed != 4 || l.Status != "ok" {
		t.Errorf("apply output for web: %+v, want update: started 4, removed 4; ok\n%s", l, r)
	}
	for _, s := range samples {
		if s.ready < 4 {
			t.Errorf("fewer than 4 ready containers during the rollout: %v", s)
			break
		}
	}
	for k, n := range reqs {
		if strings.HasSuffix(k, "/connect") {
			t.Errorf("%d requests %s: a container is created on its one network, never connected after", n, k)
		}
	}
	if n := reqs["POST /containers/create"]; n != 4 {
		t.Errorf("%d container creates, want 4: %v", n, reqs)
	}

	var msgs []events.Message
	env.waitFor(t, 10*time.Second, func() (bool, string) {
		var err error
		if msgs, err = evs.snapshot(); err != nil {
			t.Fatalf("event stream: %v", err)
		}
		destroyed := 0
		for _, m := range msgs {
			if m.Action == events.ActionDestroy && m.Actor.Attributes["image"] == imageV1 {
				destroyed++
			}
		}
		return destroyed == 4, fmt.Sprintf("%d v1 containers destroyed in the event stream, want 4", destroyed)
	})
	started, running, stopped, exited := 0, 0, 0, 0
	killed := map[string]bool{}
	var trail []string
	for _, m := range msgs {
		img := m.Actor.Attributes["image"]
		switch {
		case m.Action == events.ActionStart && img == imageV2:
			started++
			running++
			// Batch b (0-based) starts once the 2·b old ones of the
			// batches before it were told to stop.
			if batch := (started - 1) / 2; stopped < 2*batch {
				t.Errorf("new container %d started when only %d old ones were stopped: more than max_surge above 4", started, stopped)
			}
		case m.Action == events.ActionDie && img == imageV2:
			running--
		case m.Action == events.ActionDie && img == imageV1:
			exited++
		case m.Action == events.ActionKill && img == imageV1 && !killed[m.Actor.ID]:
			killed[m.Actor.ID] = true
			stopped++
			// Old ones 1 and 2 go once new ones 1 and 2 run; 3 and 4 once 3 and 4 do.
			if want := 2 * ((stopped + 1) / 2); running < want {
				t.Errorf("old container %s stopped when %d new containers were running, want %d (the whole batch)", m.Actor.Attributes["name"], running, want)
			}
			if stopped%2 == 0 && exited > stopped-2 {
				t.Errorf("old container %s told to stop after %d old ones had exited: the batch's old ones are stopped one after the other", m.Actor.Attributes["name"], exited)
			}
		default:
			continue
		}
		trail = append(trail, fmt.Sprintf("%s %s", m.Action, m.Actor.Attributes["name"]))
	}
	if started != 4 || stopped != 4 {
		t.Errorf("events: %d v2 starts and %d v1 stops, want 4 and 4", started, stopped)
	}
	if t.Failed() {
		t.Logf("event trail: %v", trail)
	}
}
