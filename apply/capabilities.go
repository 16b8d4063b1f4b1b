package apply

import (
	"context"
	"io"

	"github.com/orca-sync/orca-sync/diff"
)

// The optional capabilities of a runtime beyond Runtime. The Docker adapter
// has them all; the reconcile loop takes them as options of their own, so a
// fake runtime goes without, and nothing finds them by a type assertion at
// the call.

// ConfigInspector reads a container's actual config, which makes drift
// checks field-deep; without it only state, missing and extra containers are
// drift.
type ConfigInspector interface {
	InspectConfig(ctx context.Context, id string) (diff.Live, error)
}

// LogStreamer streams a container's logs: the last tail lines, then, with
// follow, what comes until ctx ends.
type LogStreamer interface {
	StreamLogs(ctx context.Context, id string, tail int, follow bool, w io.Writer) error
}

// EventSource is the runtime's event stream: it calls fn for each container
// event that matters until ctx ends or the stream breaks, and says why it
// stopped; callers reconnect.
type EventSource interface {
	Events(ctx context.Context, fn func(Event)) error
}
