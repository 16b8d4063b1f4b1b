package docker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
)

// Run creates, connects and starts a container. If any step after the create
// fails, the container is force-removed before the error is returned.
func (d *Engine) Run(ctx context.Context, c apply.ContainerConfig) (string, error) {
	opts, err := createOptions(c)
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", c.Name, err)
	}
	created, err := d.cli.ContainerCreate(ctx, opts)
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", c.Name, err)
	}
	id := created.ID
	if err := d.connectAndStart(ctx, id, c); err != nil {
		if rerr := d.removeHalfMade(ctx, id, c.Name); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return "", err
	}
	return id, nil
}

// removeHalfMade force-removes a container whose connect or start failed,
// with a context of its own: ctx may be what just failed.
func (d *Engine) removeHalfMade(ctx context.Context, id, name string) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := d.cli.ContainerRemove(rctx, id, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove half-made container %s (%s): %w", name, dockerShortID(id), err)
	}
	return nil
}

// createOptions is the engine's create request for c: the container attached
// to its first network; connectAndStart attaches the others.
func createOptions(c apply.ContainerConfig) (client.ContainerCreateOptions, error) {
	restart, err := dockerRestartPolicy(c.Spec.RestartPolicy)
	if err != nil {
		return client.ContainerCreateOptions{}, err
	}
	exposed, bindings, err := dockerPorts(c.Spec.Ports)
	if err != nil {
		return client.ContainerCreateOptions{}, err
	}
	var cmd []string // nil keeps the image's CMD
	if len(c.Command) > 0 {
		cmd = c.Command
	}
	host := &container.HostConfig{
		RestartPolicy: restart,
		Resources:     container.Resources{Memory: c.Spec.MemoryBytes, NanoCPUs: c.Spec.NanoCPUs},
		Mounts:        dockerMounts(c),
		PortBindings:  bindings,
	}
	var netCfg *network.NetworkingConfig
	if len(c.Spec.Networks) > 0 {
		first := c.Spec.Networks[0]
		host.NetworkMode = container.NetworkMode(first)
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			first: {Aliases: c.Spec.Aliases},
		}}
	}
	var stopTimeout *int // nil keeps the engine's default, 10 s
	if c.StopGrace > 0 {
		secs := int(math.Ceil(c.StopGrace.Seconds()))
		stopTimeout = &secs
	}
	return client.ContainerCreateOptions{
		Name: c.Name,
		Config: &container.Config{
			Image:        c.Spec.Image,
			Cmd:          cmd,
			Env:          dockerEnv(c.Env),
			Labels:       c.Labels,
			ExposedPorts: exposed,
			StopTimeout:  stopTimeout,
		},
		HostConfig:       host,
		NetworkingConfig: netCfg,
	}, nil
}

// dockerMounts are c's named volumes, then its bind mounts (at their resolved
// host paths).
func dockerMounts(c apply.ContainerConfig) []mount.Mount {
	var mounts []mount.Mount
	for _, v := range c.Spec.Volumes {
		mounts = append(mounts, mount.Mount{Type: mount.TypeVolume, Source: v.Source, Target: v.Target})
	}
	for _, m := range c.Mounts {
		src := m.HostPath
		if src == "" {
			src = m.Source
		}
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: src, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	return mounts
}

// dockerEnv is env as KEY=value lines, sorted so that one spec always makes
// the same create request.
func dockerEnv(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func (d *Engine) connectAndStart(ctx context.Context, id string, c apply.ContainerConfig) error {
	for _, n := range c.Spec.Networks[min(1, len(c.Spec.Networks)):] {
		_, err := d.cli.NetworkConnect(ctx, n, client.NetworkConnectOptions{
			Container:      id,
			EndpointConfig: &network.EndpointSettings{Aliases: c.Spec.Aliases},
		})
		if err != nil {
			return fmt.Errorf("connect container %s to network %s: %w", c.Name, n, err)
		}
	}
	if _, err := d.cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", c.Name, err)
	}
	return nil
}

// dockerRestartPolicy reads "no", "always", "unless-stopped", "on-failure" or
// "on-failure:N"; "" is "no".
func dockerRestartPolicy(s string) (container.RestartPolicy, error) {
	name, count, hasCount := strings.Cut(s, ":")
	switch mode := container.RestartPolicyMode(name); mode {
	case "", container.RestartPolicyDisabled, container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		if hasCount {
			return container.RestartPolicy{}, fmt.Errorf("restart policy %q: only on-failure takes a retry count", s)
		}
		if mode == "" {
			mode = container.RestartPolicyDisabled
		}
		return container.RestartPolicy{Name: mode}, nil
	case container.RestartPolicyOnFailure:
		p := container.RestartPolicy{Name: mode}
		if hasCount {
			n, err := strconv.Atoi(count)
			if err != nil || n < 0 {
				return container.RestartPolicy{}, fmt.Errorf("restart policy %q: retry count must be a whole number ≥ 0", s)
			}
			p.MaximumRetryCount = n
		}
		return p, nil
	}
	return container.RestartPolicy{}, fmt.Errorf("restart policy %q: want no, always, unless-stopped, on-failure or on-failure:N", s)
}

// dockerPorts turns published ports into the exposed set and the bindings.
func dockerPorts(ports []config.PortBinding) (network.PortSet, network.PortMap, error) {
	if len(ports) == 0 {
		return nil, nil, nil
	}
	exposed := network.PortSet{}
	bindings := network.PortMap{}
	for _, p := range ports {
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		if p.ContainerPort <= 0 || p.ContainerPort > math.MaxUint16 || p.HostPort < 0 || p.HostPort > math.MaxUint16 {
			return nil, nil, fmt.Errorf("port %d:%d/%s: out of range", p.HostPort, p.ContainerPort, proto)
		}
		port, ok := network.PortFrom(uint16(p.ContainerPort), network.IPProtocol(proto))
		if !ok {
			return nil, nil, fmt.Errorf("port %d/%s: bad protocol", p.ContainerPort, proto)
		}
		b := network.PortBinding{}
		if p.HostIP != "" {
			ip, err := netip.ParseAddr(p.HostIP)
			if err != nil {
				return nil, nil, fmt.Errorf("port %s:%d:%d: host IP: %w", p.HostIP, p.HostPort, p.ContainerPort, err)
			}
			b.HostIP = ip
		}
		if p.HostPort > 0 {
			b.HostPort = strconv.Itoa(p.HostPort)
		}
		exposed[port] = struct{}{}
		bindings[port] = append(bindings[port], b)
	}
	return exposed, bindings, nil
}
