package docker

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

// imageDefaults are what an image sets that Docker merges into its
// containers' config; an image ID names one content, so they never change.
type imageDefaults struct {
	env     map[string]string
	command []string
	labels  map[string]string
}

// InspectConfig reads a container's actual configuration for a drift check:
// one container inspect, plus one image inspect per image ID the Docker
// value has not seen before.
func (d *Engine) InspectConfig(ctx context.Context, id string) (diff.Live, error) {
	res, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return diff.Live{}, fmt.Errorf("inspect container %s: %w", dockerShortID(id), err)
	}
	ci := res.Container
	hostname := ""
	if ci.Config != nil {
		hostname = ci.Config.Hostname
	}
	li := diff.Live{ImageID: ci.Image, Env: map[string]string{}, Networks: map[string][]string{}}
	if c := ci.Config; c != nil {
		li.Image, li.Command, li.Labels = c.Image, c.Cmd, c.Labels
		li.Env = envMap(c.Env)
	}
	if s := ci.State; s != nil {
		li.ExitCode, li.OOMKilled = s.ExitCode, s.OOMKilled
	}
	if h := ci.HostConfig; h != nil {
		li.RestartPolicy = restartString(h.RestartPolicy)
		li.MemoryBytes, li.NanoCPUs = h.Memory, h.NanoCPUs
		for port, bs := range h.PortBindings {
			for _, b := range bs {
				pb := config.PortBinding{ContainerPort: int(port.Num()), Protocol: string(port.Proto())}
				pb.HostPort, _ = strconv.Atoi(b.HostPort)
				if b.HostIP.IsValid() && !b.HostIP.IsUnspecified() {
					pb.HostIP = b.HostIP.String()
				}
				li.Ports = append(li.Ports, pb)
			}
		}
	}
	for _, m := range ci.Mounts {
		switch {
		case m.Type == mount.TypeVolume && !anonymousVolume(m.Name):
			li.Volumes = append(li.Volumes, config.Volume{Source: m.Name, Target: m.Destination})
		case m.Type == mount.TypeBind:
			li.Binds = append(li.Binds, config.Mount{Source: m.Source, Target: m.Destination, ReadOnly: !m.RW})
		}
	}
	if ns := ci.NetworkSettings; ns != nil {
		for name, ep := range ns.Networks {
			var aliases []string
			if ep != nil {
				for _, a := range ep.Aliases {
					// Docker adds the short container ID (the default
					// host name) as an alias of its own.
					if !strings.HasPrefix(id, a) && a != hostname {
						aliases = append(aliases, a)
					}
				}
			}
			li.Networks[name] = aliases
		}
	}
	img, err := d.imageDefaults(ctx, ci.Image)
	if err != nil {
		return diff.Live{}, err
	}
	li.ImageEnv, li.ImageCommand, li.ImageLabels = img.env, img.command, img.labels
	return li, nil
}

func (d *Engine) imageDefaults(ctx context.Context, imageID string) (imageDefaults, error) {
	d.imgMu.Lock()
	img, ok := d.images[imageID]
	d.imgMu.Unlock()
	if ok {
		return img, nil
	}
	res, err := d.cli.ImageInspect(ctx, imageID)
	if err != nil {
		return img, fmt.Errorf("inspect image %s: %w", dockerShortID(strings.TrimPrefix(imageID, "sha256:")), err)
	}
	if c := res.Config; c != nil {
		img = imageDefaults{env: envMap(c.Env), command: c.Cmd, labels: c.Labels}
	}
	d.imgMu.Lock()
	if d.images == nil {
		d.images = map[string]imageDefaults{}
	}
	d.images[imageID] = img
	d.imgMu.Unlock()
	return img, nil
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// anonymousVolume reports whether a volume name is one Docker generated (64
// hex digits) for an image's VOLUME, which no spec names.
func anonymousVolume(name string) bool {
	if len(name) != 64 {
		return false
	}
	return strings.Trim(name, "0123456789abcdef") == ""
}

func restartString(p container.RestartPolicy) string {
	if p.Name == container.RestartPolicyOnFailure && p.MaximumRetryCount > 0 {
		return fmt.Sprintf("%s:%d", p.Name, p.MaximumRetryCount)
	}
	return string(p.Name)
}
