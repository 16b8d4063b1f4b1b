package diff

import (
	"fmt"
	"io"
)

// symbols mark each action like a terraform plan.
func symbol(a Action) string {
	switch a {
	case ActionCreate:
		return "+"
	case ActionRemove:
		return "-"
	case ActionNone:
		return " "
	}
	return "~"
}

// WriteText prints a plan for people: one line per changed service, its
// changed fields below it, and a summary line.
func (p Plan) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	if p.Node != "" {
		ew.printf("Node %s:\n", p.Node)
	}
	for _, c := range p.Changes {
		if c.Action == ActionNone && c.Reason == "" {
			continue
		}
		ew.printf("%s %s  %s\n", symbol(c.Action), c.Key(), describe(c))
		for _, f := range c.Fields {
			ew.printf("      %s\n", f)
		}
	}
	unchanged := p.Count(ActionNone)
	if !p.HasChanges() {
		ew.printf("No changes: %d services up to date.\n", unchanged)
		return ew.err
	}
	ew.printf("\nPlan: %d to create, %d to update, %d to scale, %d to heal, %d to remove; %d unchanged.\n",
		p.Count(ActionCreate), p.Count(ActionUpdate), p.Count(ActionScale), p.Count(ActionHeal),
		p.Count(ActionRemove), unchanged)
	return ew.err
}

func describe(c Change) string {
	switch c.Action {
	case ActionCreate:
		return fmt.Sprintf("create %d replica(s) of %s", c.Replicas, c.Desired.Spec.Image)
	case ActionUpdate:
		return fmt.Sprintf("update %d replica(s), %s", c.Replicas, c.Strategy)
	case ActionScale:
		return fmt.Sprintf("scale %d -> %d", c.Live, c.Replicas)
	case ActionHeal:
		return "heal: " + c.Reason
	case ActionRemove:
		return fmt.Sprintf("remove %d container(s); volumes are kept", c.Live)
	}
	return c.Reason
}

// errWriter keeps the first write error so printing code stays linear.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
