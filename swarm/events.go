package swarm

import (
	"context"
	"time"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/diff"
)

var _ apply.EventSource = (*Engine)(nil)

// eventPoll is how often Events re-reads the tasks.
const eventPoll = time.Second

// Events reports the tasks Swarm starts, stops or moves by itself (a task
// that failed, a node lost, a `docker service update` from outside) as
// "update" events of managed containers, so the loop syncs: its status and
// the proxy's targets follow the tasks. The manager's Docker events would
// only tell of the tasks on its own node, so the task list is polled once
// a second and a change of any task's ID or state is one event.
func (e *Engine) Events(ctx context.Context, fn func(apply.Event)) error {
	var last map[string]string
	tick := time.NewTicker(eventPoll)
	defer tick.Stop()
	for {
		live, err := e.List(ctx)
		if err != nil {
			return err
		}
		now := taskStates(live)
		if last != nil {
			if id, node, changed := firstChange(last, now, live); changed {
				fn(apply.Event{Action: "update", ContainerID: id, Managed: true, Node: node})
			}
		}
		last = now
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func taskStates(live []diff.Container) map[string]string {
	m := make(map[string]string, len(live))
	for _, c := range live {
		m[c.ID] = c.State + " " + c.Addr
	}
	return m
}

// firstChange names a task whose state changed, appeared or went.
func firstChange(before, after map[string]string, live []diff.Container) (id, node string, changed bool) {
	for _, c := range live {
		if before[c.ID] != after[c.ID] {
			return c.ID, c.Node, true
		}
	}
	for id := range before {
		if _, ok := after[id]; !ok {
			return id, "", true
		}
	}
	return "", "", false
}
