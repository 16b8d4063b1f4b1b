package swarm

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/diff"
)

// ServiceName is the Swarm service of a [[service]]: <project>_<service>,
// as `docker stack` names them.
func ServiceName(project, service string) string { return project + "_" + service }

// List returns the current tasks (desired state running) of the managed
// services as containers: the labels a task's container carries are those
// of the spec it was made from, so during a rolling update old and new
// tasks tell their spec hashes apart, as old and new containers do. Addr is
// the task's node address and the host port Swarm published for it. A
// managed service without any such task is listed as one exited container,
// so that the plan still removes or repairs it. Three engine calls.
func (e *Engine) List(ctx context.Context) ([]diff.Container, error) {
	svcs, err := e.cli.ServiceList(ctx, client.ServiceListOptions{Filters: make(client.Filters).Add("label", apply.LabelManaged+"=true")})
	if err != nil {
		return nil, fmt.Errorf("list swarm services: %w", err)
	}
	if len(svcs.Items) == 0 {
		return nil, nil
	}
	tasks, err := e.cli.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("desired-state", "running")})
	if err != nil {
		return nil, fmt.Errorf("list swarm tasks: %w", err)
	}
	addrs, err := e.nodeAddrs(ctx)
	if err != nil {
		return nil, err
	}
	byService := map[string][]swarm.Task{}
	for _, t := range tasks.Items {
		byService[t.ServiceID] = append(byService[t.ServiceID], t)
	}
	var out []diff.Container
	for _, s := range svcs.Items {
		ts := byService[s.ID]
		if len(ts) == 0 {
			c := containerOf(s.Spec.Labels)
			c.ID, c.Name, c.State, c.Status = "service:"+s.ID, s.Spec.Name, "exited", "no task running"
			out = append(out, c)
			continue
		}
		for _, t := range ts {
			out = append(out, taskContainer(s, t, addrs[t.NodeID]))
		}
	}
	return out, nil
}

func (e *Engine) nodeAddrs(ctx context.Context) (map[string]string, error) {
	nodes, err := e.cli.NodeList(ctx, client.NodeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list swarm nodes: %w", err)
	}
	addrs := map[string]string{}
	for _, n := range nodes.Items {
		addrs[n.ID] = n.Status.Addr
	}
	return addrs, nil
}

func taskContainer(s swarm.Service, t swarm.Task, nodeAddr string) diff.Container {
	labels := s.Spec.Labels
	if cs := t.Spec.ContainerSpec; cs != nil && cs.Labels[apply.LabelHash] != "" {
		labels = cs.Labels
	}
	c := containerOf(labels)
	c.ID, c.Index, c.State = t.ID, t.Slot, taskState(t)
	c.Name = fmt.Sprintf("%s.%d.%s", s.Spec.Name, t.Slot, t.ID[:min(12, len(t.ID))])
	c.Status = string(t.Status.State)
	if t.Status.Err != "" {
		c.Status += ": " + t.Status.Err
	}
	for _, p := range t.Status.PortStatus.Ports {
		if p.PublishMode == swarm.PortConfigPublishModeHost && p.PublishedPort != 0 && nodeAddr != "" {
			c.Addr = net.JoinHostPort(nodeAddr, strconv.Itoa(int(p.PublishedPort)))
			break
		}
	}
	return c
}

func containerOf(labels map[string]string) diff.Container {
	c := diff.Container{
		Project: labels[apply.LabelProject], Service: labels[apply.LabelService],
		Hash: labels[apply.LabelHash], Revision: labels[apply.LabelRevision],
		Role: labels[apply.LabelRole], Node: labels[apply.LabelNode],
	}
	if spec, ok := diff.DecodeSpec(labels[apply.LabelSpec]); ok {
		c.Spec = &spec
	}
	return c
}

// taskState maps a task's state to a container's: running is running
// (with a healthcheck Swarm only says running once it passed), the states
// before it are created, every end is exited.
func taskState(t swarm.Task) string {
	switch t.Status.State {
	case swarm.TaskStateRunning:
		return "running"
	case swarm.TaskStateComplete, swarm.TaskStateShutdown, swarm.TaskStateFailed,
		swarm.TaskStateRejected, swarm.TaskStateRemove, swarm.TaskStateOrphaned:
		return "exited"
	}
	return "created"
}
