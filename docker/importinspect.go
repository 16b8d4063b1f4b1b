package docker

import (
	"context"
	"fmt"
	"strings"

	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/importer"
)

// InspectForImport reads what `orca-sync import containers` maps: the
// container's config beside its image's defaults, its mounts, networks with
// the aliases a user gave (not Docker's own), and port bindings.
func (d *Engine) InspectForImport(ctx context.Context, name string) (importer.Container, error) {
	res, err := d.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return importer.Container{}, fmt.Errorf("inspect container %s: %w", name, err)
	}
	ci := res.Container
	out := importer.Container{Name: strings.TrimPrefix(ci.Name, "/"), Networks: map[string][]string{}}
	hostname := ""
	if c := ci.Config; c != nil {
		out.Image, out.Env, out.Cmd, out.Entrypoint, out.Labels, hostname = c.Image, c.Env, c.Cmd, c.Entrypoint, c.Labels, c.Hostname
		for p := range c.ExposedPorts {
			out.ExposedPorts = append(out.ExposedPorts, int(p.Num()))
		}
	}
	if h := ci.HostConfig; h != nil {
		out.RestartPolicy = restartString(h.RestartPolicy)
		out.MemoryBytes, out.NanoCPUs, out.NetworkMode = h.Memory, h.NanoCPUs, string(h.NetworkMode)
		for port, bs := range h.PortBindings {
			for _, b := range bs {
				p := importer.ContainerPort{HostPort: b.HostPort, ContainerPort: int(port.Num()), Protocol: string(port.Proto())}
				if b.HostIP.IsValid() {
					p.HostIP = b.HostIP.String()
				}
				out.Ports = append(out.Ports, p)
			}
		}
	}
	for _, m := range ci.Mounts {
		out.Mounts = append(out.Mounts, importer.ContainerMount{Type: string(m.Type), Name: m.Name, Source: m.Source, Target: m.Destination, ReadOnly: !m.RW})
	}
	if ns := ci.NetworkSettings; ns != nil {
		for n, ep := range ns.Networks {
			var aliases []string
			if ep != nil {
				for _, a := range ep.Aliases {
					// Docker adds the short container ID (the default host
					// name) as an alias of its own.
					if !strings.HasPrefix(ci.ID, a) && a != hostname {
						aliases = append(aliases, a)
					}
				}
			}
			out.Networks[n] = aliases
		}
	}
	img, err := d.cli.ImageInspect(ctx, ci.Image)
	if err != nil {
		return importer.Container{}, fmt.Errorf("inspect the image of %s: %w", name, err)
	}
	if c := img.Config; c != nil {
		out.ImageEnv, out.ImageCmd, out.ImageEntrypoint, out.ImageLabels = c.Env, c.Cmd, c.Entrypoint, c.Labels
	}
	return out, nil
}
