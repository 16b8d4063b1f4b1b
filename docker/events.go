package docker

import (
	"context"
	"fmt"
	"strings"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/apply"
)

// Events streams container and network events until ctx ends or the stream
// breaks, calling fn for each that matters. It returns why it stopped;
// callers reconnect.
//
// Image events clear the image lookups RepoDigest keeps meanwhile (see
// imageWatch).
func (d *Engine) Events(ctx context.Context, fn func(apply.Event)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.refs.start()
	defer d.refs.stop()
	res := d.cli.Events(ctx, client.EventsListOptions{
		Filters: make(client.Filters).Add("type", string(events.ContainerEventType), string(events.NetworkEventType),
			string(events.ImageEventType)),
	})
	for {
		select {
		case m := <-res.Messages:
			if m.Type == events.ImageEventType {
				d.refs.changed()
				continue
			}
			if e, ok := dockerEvent(m); ok {
				fn(e)
			}
		case err := <-res.Err:
			return fmt.Errorf("docker events: %w", err)
		}
	}
}

func dockerEvent(m events.Message) (apply.Event, bool) {
	action := string(m.Action)
	switch m.Type {
	case events.NetworkEventType:
		if m.Action != events.ActionConnect && m.Action != events.ActionDisconnect {
			return apply.Event{}, false
		}
		return apply.Event{Action: action, ContainerID: m.Actor.Attributes["container"]}, true
	case events.ContainerEventType:
		e := apply.Event{Action: action, ContainerID: m.Actor.ID, Managed: m.Actor.Attributes[apply.LabelManaged] == "true" && !IsSwarmTask(m.Actor.Attributes),
			Node: m.Actor.Attributes[apply.LabelNode], Role: m.Actor.Attributes[apply.LabelRole]}
		switch {
		case m.Action == events.ActionDie, m.Action == events.ActionOOM, m.Action == events.ActionUpdate,
			m.Action == events.ActionStop, m.Action == events.ActionDestroy, m.Action == events.ActionPause,
			strings.HasPrefix(action, "health_status"):
			return e, true
		}
	}
	return apply.Event{}, false
}
