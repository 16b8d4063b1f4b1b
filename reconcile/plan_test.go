package reconcile

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/notify"
	"github.com/orca-sync/orca-sync/planner"
	"github.com/orca-sync/orca-sync/registryauth"
	"github.com/orca-sync/orca-sync/state"
)

// untouchable is a runtime, store, notifier and commit status sink that
// fails the test on any call.
type untouchable struct{ t *testing.T }

func (u untouchable) called(what string) { u.t.Helper(); u.t.Errorf("the plan step called %s", what) }

func (u untouchable) List(context.Context) ([]diff.Container, error) {
	u.called("List")
	return nil, nil
}
func (u untouchable) EnsureNetwork(context.Context, string) error {
	u.called("EnsureNetwork")
	return nil
}
func (u untouchable) EnsureVolume(context.Context, string) error {
	u.called("EnsureVolume")
	return nil
}
func (u untouchable) ImageID(context.Context, string) (string, error) {
	u.called("ImageID")
	return "", nil
}
func (u untouchable) Pull(context.Context, string, registryauth.Auth) error {
	u.called("Pull")
	return nil
}
func (u untouchable) Run(context.Context, apply.ContainerConfig) (string, error) {
	u.called("Run")
	return "", nil
}
func (u untouchable) Stop(context.Context, string, time.Duration) error { u.called("Stop"); return nil }
func (u untouchable) Remove(context.Context, string) error              { u.called("Remove"); return nil }
func (u untouchable) Rename(context.Context, string, string) error      { u.called("Rename"); return nil }
func (u untouchable) Inspect(context.Context, string) (apply.State, error) {
	u.called("Inspect")
	return apply.State{}, nil
}
func (u untouchable) Logs(context.Context, string, int) (string, error) {
	u.called("Logs")
	return "", nil
}
func (u untouchable) Exec(context.Context, string, []string) (int, error) {
	u.called("Exec")
	return 0, nil
}
func (u untouchable) ListOneOffs(context.Context) ([]diff.Container, error) {
	u.called("ListOneOffs")
	return nil, nil
}
func (u untouchable) Wait(context.Context, string) (int, error) { u.called("Wait"); return 0, nil }
func (u untouchable) InspectConfig(context.Context, string) (diff.Live, error) {
	u.called("InspectConfig")
	return diff.Live{}, nil
}
func (u untouchable) StreamLogs(context.Context, string, int, bool, io.Writer) error {
	u.called("StreamLogs")
	return nil
}

func (u untouchable) AddSync(state.SyncRecord) (uint64, error) { u.called("AddSync"); return 0, nil }
func (u untouchable) UpdateSync(state.SyncRecord) error        { u.called("UpdateSync"); return nil }
func (u untouchable) History(int) ([]state.SyncRecord, error)  { u.called("History"); return nil, nil }
func (u untouchable) Pin(state.Pin) error                      { u.called("Pin"); return nil }
func (u untouchable) Unpin(string) error                       { u.called("Unpin"); return nil }
func (u untouchable) Pins() (map[string]state.Pin, error)      { u.called("Pins"); return nil, nil }
func (u untouchable) ClearPins() error                         { u.called("ClearPins"); return nil }
func (u untouchable) Put(string, string, any) error            { u.called("Put"); return nil }
func (u untouchable) Get(string, string, any) (bool, error)    { u.called("Get"); return false, nil }
func (u untouchable) Delete(string, string) error              { u.called("Delete"); return nil }
func (u untouchable) Keys(string) ([]string, error)            { u.called("Keys"); return nil, nil }

func (u untouchable) Notify(notify.Event)                 { u.called("Notify") }
func (u untouchable) CommitStatus(string, string, string) { u.called("CommitStatus") }

var (
	_ apply.Runtime         = untouchable{}
	_ apply.ConfigInspector = untouchable{}
	_ apply.LogStreamer     = untouchable{}
	_ Store                 = untouchable{}
	_ Notifier              = untouchable{}
	_ CommitStatuses        = untouchable{}
)

const webAndAPI = `[[service]]
name = "web"
image = "app:v1"
replicas = 2
[service.deploy]
min_ready_secs = 0
timeout_secs = 2
[[service]]
name = "api"
image = "IMAGE"
[service.deploy]
min_ready_secs = 0
timeout_secs = 2
`

// TestPlanStepMakesNoCall: the sync's plan step decides from what the steps
// before it read — a crashed replica to heal, a held spec, a stale pin, new
// drift — and leaves the writes and the news to the steps after it. Its
// runtime, store and notifier fail the test when called.
func TestPlanStepMakesNoCall(t *testing.T) {
	ctx := context.Background()
	deployed, src, rt, _ := newTestLoop(t)
	src.write(t, "c1", strings.Replace(webAndAPI, "IMAGE", "app:v1", 1))
	if rec := deployed.SyncOnce(ctx, "test"); rec.Result != ResultSucceeded || len(rec.Services) != 2 {
		t.Fatalf("deploy: %+v", rec)
	}
	crashed := firstKey(rt.IDs("web"))
	rt.SetState(crashed, "exited")
	src.write(t, "c2", strings.Replace(webAndAPI, "IMAGE", "app:v2", 1))
	d, err := config.Load(src.dir)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := rt.List(ctx)
	services := planner.Planner{Runtime: rt}.Desire(ctx, d, nil)
	var apiHash string
	for _, s := range services {
		if s.Name == "api" {
			apiHash = s.Hash
		}
	}

	u := untouchable{t}
	l := New(Options{Source: src, Runtime: u, Store: u, Notifier: u, Statuses: u, Node: "n1"})
	r := &run{commit: src.commit, desired: d, live: l.planner.Split(d, all), services: services,
		inspected: map[string]*diff.Live{},
		pins: map[string]state.Pin{
			"p/api": {Service: "p/api", Hash: apiHash, Reason: "not ready", Since: time.Now()},
			"p/web": {Service: "p/web", Hash: "an older spec", Reason: "not ready", Since: time.Now()},
		}}
	if err := l.syncer.plan(ctx, r); err != nil {
		t.Fatal(err)
	}

	actions := map[string]diff.Change{}
	for _, c := range r.plan.Changes {
		actions[c.Key()] = c
	}
	if c := actions["p/web"]; c.Action != diff.ActionHeal {
		t.Errorf("web with a crashed replica: %s (%s), want heal", c.Action, c.Reason)
	}
	if c := actions["p/api"]; c.Action != diff.ActionNone || !strings.HasPrefix(c.Reason, "held: ") {
		t.Errorf("api at its pinned spec: %s (%s), want held", c.Action, c.Reason)
	}
	if !slices.Equal(r.unpins, []string{"p/web"}) {
		t.Errorf("unpins = %v, want the stale pin of p/web", r.unpins)
	}
	if r.drift.news == nil || r.drift.news.Kind != notify.DriftDetected || len(r.drift.findings) != 1 ||
		r.drift.findings[0].Kind != diff.KindStopped || r.drift.findings[0].ID != crashed {
		t.Errorf("drift decision = %+v (news %v), want one stopped finding to announce", r.drift.findings, r.drift.news)
	}
}
