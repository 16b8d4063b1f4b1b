package apply

import (
	"context"
	"fmt"
	"net"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/routing"
)

// containerConfig turns a spec into what the runtime starts: secret
// references resolved, mount sources made absolute, orca's labels added.
func (r *rollout) containerConfig(spec diff.Spec, hash, revision string, index int, secrets *secretLookup) (ContainerConfig, error) {
	cfg := ContainerConfig{
		Name: diff.ContainerName(r.svc.Project, r.svc.Name, hash, r.job.nameNode, index),
		Spec: spec,
		Env:  make(map[string]string, len(spec.Env)),
	}
	for k, v := range spec.Env {
		val, err := secrets.expand(v)
		if err != nil {
			return cfg, fmt.Errorf("env %s: %w", k, err)
		}
		cfg.Env[k] = val
	}
	for i, arg := range spec.Command {
		val, err := secrets.expand(arg)
		if err != nil {
			return cfg, fmt.Errorf("command argument %d: %w", i+1, err)
		}
		cfg.Command = append(cfg.Command, val)
	}
	for _, m := range spec.Mounts {
		host := m.Source
		if !path.IsAbs(host) {
			host = filepath.Join(r.job.root, filepath.FromSlash(m.Source))
		}
		cfg.Mounts = append(cfg.Mounts, config.Mount{Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly, HostPath: host})
	}
	cfg.Labels = map[string]string{}
	for k, v := range spec.Labels {
		cfg.Labels[k] = v
	}
	for k, v := range map[string]string{
		LabelManaged: "true", LabelProject: r.svc.Project, LabelService: r.svc.Name,
		LabelHash: hash, LabelRevision: revision, LabelRole: r.roleLabel(), LabelNode: r.job.node,
		LabelSpec: spec.Encode(),
	} {
		cfg.Labels[k] = v
	}
	return cfg, nil
}

// routeIn tells the router about a ready container.
func (r *rollout) routeIn(ctx context.Context, c diff.Container) {
	if r.svc.Port == 0 {
		return
	}
	st, err := r.a.rt.Inspect(ctx, c.ID)
	if err != nil {
		r.log.Warn("cannot route in", "container", c.Name, "error", err)
		return
	}
	ip := st.IPs[diff.NetworkName(r.svc.Project)]
	r.a.router.RouteIn(r.svc, routing.Target{ContainerID: c.ID, Addr: net.JoinHostPort(ip, strconv.Itoa(r.svc.Port)), Role: r.roleLabel()})
}

// retireOne routes a container out, drains it, stops and removes it.
func (r *rollout) retireOne(ctx context.Context, c diff.Container) error {
	if err := r.a.retire(ctx, r.svc.Project, r.svc.Name, c); err != nil {
		return err
	}
	r.noteRemoved(c)
	r.log.Info("removed", "container", c.Name)
	return nil
}

func (r *rollout) retireAll(ctx context.Context, cs []diff.Container) error {
	var errs []string
	for _, c := range cs {
		if err := r.retireOne(ctx, c); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
