package e2e

import (
	"context"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/reconcile"
	"github.com/orca-sync/orca-sync/registryauth"
	"github.com/orca-sync/orca-sync/routing"
	"github.com/orca-sync/orca-sync/source"
)

// span is one stretch of time a rollout spent in something that is not
// orca-sync's own work (a Docker call, a readiness wait, a drain) or one
// step of a sync (fetch, load).
type span struct {
	kind       string // "docker:Run", "ready", "drain", "fetch", "load", "pending", "routes"
	start, end time.Time
}

// timeline collects the spans of one sync from the decorators around the
// loop's parts. Safe for concurrent use: a rollout's starts run side by side.
type timeline struct {
	mu    sync.Mutex
	spans []span
	// runEnd is when Run returned for a container ID: its readiness wait
	// starts there and ends when the router routes it in.
	runEnd map[string]time.Time
}

func newTimeline() *timeline { return &timeline{runEnd: map[string]time.Time{}} }

func (t *timeline) add(kind string, start, end time.Time) {
	t.mu.Lock()
	t.spans = append(t.spans, span{kind, start, end})
	t.mu.Unlock()
}

// take returns the spans so far and starts afresh.
func (t *timeline) take() []span {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.spans
	t.spans, t.runEnd = nil, map[string]time.Time{}
	return s
}

func (t *timeline) docker(method string) func() {
	start := time.Now()
	return func() { t.add("docker:"+method, start, time.Now()) }
}

// timedRuntime times every call that reaches the Docker engine: the
// benchmark's measure of "time inside Docker calls", taken at the Runtime
// boundary apply and the planner call through.
type timedRuntime struct {
	rt interface {
		apply.Runtime
		apply.ConfigInspector
		apply.ImageDigester
		apply.LogStreamer
	}
	tl *timeline
}

var (
	_ apply.Runtime         = (*timedRuntime)(nil)
	_ apply.ConfigInspector = (*timedRuntime)(nil)
	_ apply.ImageDigester   = (*timedRuntime)(nil)
)

func (r *timedRuntime) List(ctx context.Context) ([]diff.Container, error) {
	defer r.tl.docker("List")()
	return r.rt.List(ctx)
}

func (r *timedRuntime) ListOneOffs(ctx context.Context) ([]diff.Container, error) {
	defer r.tl.docker("ListOneOffs")()
	return r.rt.ListOneOffs(ctx)
}

func (r *timedRuntime) Wait(ctx context.Context, id string) (int, error) {
	defer r.tl.docker("Wait")()
	return r.rt.Wait(ctx, id)
}

func (r *timedRuntime) EnsureNetwork(ctx context.Context, name string) error {
	defer r.tl.docker("EnsureNetwork")()
	return r.rt.EnsureNetwork(ctx, name)
}

func (r *timedRuntime) EnsureVolume(ctx context.Context, name string) error {
	defer r.tl.docker("EnsureVolume")()
	return r.rt.EnsureVolume(ctx, name)
}

func (r *timedRuntime) ImageID(ctx context.Context, ref string) (string, error) {
	defer r.tl.docker("ImageID")()
	return r.rt.ImageID(ctx, ref)
}

func (r *timedRuntime) Pull(ctx context.Context, ref string, auth registryauth.Auth) error {
	defer r.tl.docker("Pull")()
	return r.rt.Pull(ctx, ref, auth)
}

func (r *timedRuntime) Run(ctx context.Context, c apply.ContainerConfig) (string, error) {
	start := time.Now()
	id, err := r.rt.Run(ctx, c)
	end := time.Now()
	r.tl.add("docker:Run", start, end)
	r.tl.mu.Lock()
	r.tl.runEnd[id] = end
	r.tl.mu.Unlock()
	return id, err
}

func (r *timedRuntime) Stop(ctx context.Context, id string, grace time.Duration) error {
	defer r.tl.docker("Stop")()
	return r.rt.Stop(ctx, id, grace)
}

func (r *timedRuntime) Remove(ctx context.Context, id string) error {
	defer r.tl.docker("Remove")()
	return r.rt.Remove(ctx, id)
}

func (r *timedRuntime) Rename(ctx context.Context, id, name string) error {
	defer r.tl.docker("Rename")()
	return r.rt.Rename(ctx, id, name)
}

func (r *timedRuntime) Inspect(ctx context.Context, id string) (apply.State, error) {
	defer r.tl.docker("Inspect")()
	return r.rt.Inspect(ctx, id)
}

func (r *timedRuntime) Logs(ctx context.Context, id string, tail int) (string, error) {
	defer r.tl.docker("Logs")()
	return r.rt.Logs(ctx, id, tail)
}

func (r *timedRuntime) Exec(ctx context.Context, id string, cmd []string) (int, error) {
	defer r.tl.docker("Exec")()
	return r.rt.Exec(ctx, id, cmd)
}

func (r *timedRuntime) InspectConfig(ctx context.Context, id string) (diff.Live, error) {
	defer r.tl.docker("InspectConfig")()
	return r.rt.InspectConfig(ctx, id)
}

func (r *timedRuntime) RepoDigest(ctx context.Context, image, ref string) (string, error) {
	defer r.tl.docker("RepoDigest")()
	return r.rt.RepoDigest(ctx, image, ref)
}

func (r *timedRuntime) StreamLogs(ctx context.Context, id string, tail int, follow bool, w io.Writer) error {
	defer r.tl.docker("StreamLogs")()
	return r.rt.StreamLogs(ctx, id, tail, follow, w)
}

// timedRouter marks the end of each container's readiness wait (it is
// routed in once ready) and times each drain (route out waits for the
// in-flight requests, up to drain_secs).
type timedRouter struct {
	r interface {
		apply.Router
		reconcile.RouteTable
	}
	tl *timeline
}

var (
	_ apply.Router         = (*timedRouter)(nil)
	_ reconcile.RouteTable = (*timedRouter)(nil)
)

func (t *timedRouter) RouteIn(svc *diff.Service, tg routing.Target) {
	now := time.Now()
	t.tl.mu.Lock()
	start, ok := t.tl.runEnd[tg.ContainerID]
	t.tl.mu.Unlock()
	if ok {
		t.tl.add("ready", start, now)
	}
	t.r.RouteIn(svc, tg)
}

func (t *timedRouter) RouteOut(ctx context.Context, project, service string, tg routing.Target) {
	start := time.Now()
	t.r.RouteOut(ctx, project, service, tg)
	t.tl.add("drain", start, time.Now())
}

func (t *timedRouter) Sync(ctx context.Context, d *config.Desired, live []diff.Container, node string) error {
	start := time.Now()
	err := t.r.Sync(ctx, d, live, node)
	t.tl.add("routes", start, time.Now())
	return err
}

// timedSource times the fetch.
type timedSource struct {
	src reconcile.Source
	tl  *timeline
}

func (s *timedSource) Sync(ctx context.Context) (source.Commit, error) {
	start := time.Now()
	c, err := s.src.Sync(ctx)
	s.tl.add("fetch", start, time.Now())
	return c, err
}

func (s *timedSource) Dir() string { return s.src.Dir() }

// timedSecrets marks the end of the load step: resolving secrets is the
// loader's last part (reconcile/loader.go).
type timedSecrets struct {
	s  reconcile.Secrets
	tl *timeline
}

func (s *timedSecrets) Resolve(ctx context.Context, d *config.Desired) error {
	err := s.s.Resolve(ctx, d)
	now := time.Now()
	s.tl.add("load", now, now)
	return err
}

// timedStatuses marks the start of the apply: the commit status goes to
// pending right before Apply (reconcile/apply.go).
type timedStatuses struct{ tl *timeline }

func (s *timedStatuses) CommitStatus(_, state, _ string) {
	if state == "pending" {
		now := time.Now()
		s.tl.add("pending", now, now)
	}
}

// union is the wall time, within [from, to], during which at least one of
// spans runs: calls that overlap (a batch's starts, side by side) count once.
func union(spans []span, from, to time.Time) time.Duration {
	var iv []span
	for _, s := range spans {
		if s.start.Before(from) {
			s.start = from
		}
		if s.end.After(to) {
			s.end = to
		}
		if s.end.After(s.start) {
			iv = append(iv, s)
		}
	}
	sort.Slice(iv, func(i, j int) bool { return iv[i].start.Before(iv[j].start) })
	var total time.Duration
	var cur *span
	for i := range iv {
		switch {
		case cur == nil:
			cur = &iv[i]
		case !iv[i].start.After(cur.end):
			if iv[i].end.After(cur.end) {
				cur.end = iv[i].end
			}
		default:
			total += cur.end.Sub(cur.start)
			cur = &iv[i]
		}
	}
	if cur != nil {
		total += cur.end.Sub(cur.start)
	}
	return total
}

// only keeps the spans whose kind is one of kinds.
func only(spans []span, kinds ...string) []span {
	var out []span
	for _, s := range spans {
		for _, k := range kinds {
			if s.kind == k {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// first and last are the earliest start and the latest start of a kind;
// ok is false when there is none.
func first(spans []span, kind string) (time.Time, bool) {
	var t time.Time
	for _, s := range spans {
		if s.kind == kind && (t.IsZero() || s.start.Before(t)) {
			t = s.start
		}
	}
	return t, !t.IsZero()
}

func last(spans []span, kind string) (time.Time, bool) {
	var t time.Time
	for _, s := range spans {
		if s.kind == kind && s.start.After(t) {
			t = s.start
		}
	}
	return t, !t.IsZero()
}
