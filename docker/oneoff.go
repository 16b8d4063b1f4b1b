package docker

import (
	"context"
	"fmt"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/diff"
)

// Wait blocks until the container is no longer running and returns its
// exit code (docs/reference/service-toml.md#hooks: hooks and jobs run to
// their exit). A container that exited before the call returns at once.
func (d *Engine) Wait(ctx context.Context, id string) (int, error) {
	res := d.cli.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case r := <-res.Result:
		if r.Error != nil && r.Error.Message != "" {
			return int(r.StatusCode), fmt.Errorf("wait for container %s: %s", dockerShortID(id), r.Error.Message)
		}
		return int(r.StatusCode), nil
	case err := <-res.Error:
		return 0, fmt.Errorf("wait for container %s: %w", dockerShortID(id), err)
	}
}

// ListOneOffs returns the managed hook and job containers, running or not,
// which List leaves out: they are no replica of their service.
func (d *Engine) ListOneOffs(ctx context.Context) ([]diff.Container, error) {
	var out []diff.Container
	for _, role := range []string{apply.RoleHook, apply.RoleJob} {
		res, err := d.cli.ContainerList(ctx, client.ContainerListOptions{
			All: true,
			Filters: make(client.Filters).Add("label", apply.LabelManaged+"=true").
				Add("label", apply.LabelRole+"="+role),
		})
		if err != nil {
			return nil, fmt.Errorf("list %s containers: %w", role, err)
		}
		for _, s := range res.Items {
			out = append(out, dockerContainer(s))
		}
	}
	return out, nil
}
