package apply

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/routing"
)

// containerConfig turns a spec into what the runtime starts: secret
// references resolved, mounts given their host paths (snapshots for files
// of the checkout), orca's labels added. Call release once the container
// exists, or failed to: until then its snapshots are kept from a prune.
func (r *rollout) containerConfig(ctx context.Context, spec diff.Spec, hash, revision string, index int, secrets *secretLookup) (ContainerConfig, func(), error) {
	cfg := ContainerConfig{
		Name: diff.ContainerName(r.svc.Project, r.svc.Name, hash, r.job.nameNode, index),
		Spec: spec,
		Env:  make(map[string]string, len(spec.Env)),
		// The container's own stop timeout, for stops that do not say
		// (docs/reference/service-toml.md#stop_grace_secs).
		StopGrace: r.svc.StopGrace,
	}
	for k, v := range spec.Env {
		val, err := secrets.expand(v)
		if err != nil {
			return cfg, func() {}, fmt.Errorf("env %s: %w", k, err)
		}
		cfg.Env[k] = val
	}
	for i, arg := range spec.Command {
		val, err := secrets.expand(arg)
		if err != nil {
			return cfg, func() {}, fmt.Errorf("command argument %d: %w", i+1, err)
		}
		cfg.Command = append(cfg.Command, val)
	}
	mounts, release, err := r.a.HostMounts(ctx, spec, r.job.root)
	if err != nil {
		return cfg, func() {}, err
	}
	cfg.Mounts = mounts
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
	return cfg, release, nil
}

// HostMounts gives the mounts of spec their host paths: a host path stays as
// written; a file of the checkout (under root) is mounted from its
// immutable snapshot, or for read_only = false from a writable copy of it of
// the container's own (docs/guides/files.md). Call release once the
// container exists, or failed to. Hook and job containers mount the same.
func (a *Applier) HostMounts(ctx context.Context, spec diff.Spec, root string) ([]config.Mount, func(), error) {
	var out []config.Mount
	var releases []func()
	release := func() {
		for _, f := range releases {
			f()
		}
	}
	for _, m := range spec.Mounts {
		host := m.Source
		if !path.IsAbs(m.Source) {
			if a.files == nil {
				release()
				return nil, func() {}, fmt.Errorf("mount %s: no snapshot store to mount files of the checkout from", m.Target)
			}
			src := filepath.Join(root, filepath.FromSlash(m.Source))
			snap, rel, err := a.files.Snapshot(ctx, src, spec.MountHashes[m.Target])
			if err != nil {
				release()
				return nil, func() {}, fmt.Errorf("mount %s: %w", m.Target, err)
			}
			releases, host = append(releases, rel), snap
			if !m.ReadOnly {
				cp, rel, err := a.files.Writable(ctx, snap)
				if err != nil {
					release()
					return nil, func() {}, fmt.Errorf("mount %s: %w", m.Target, err)
				}
				releases, host = append(releases, rel), cp
			}
		}
		out = append(out, config.Mount{Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly, HostPath: host})
	}
	return out, release, nil
}

// routeIn tells the router about a ready container, at the address its
// readiness wait read (one inspect, for a container it did not start).
func (r *rollout) routeIn(ctx context.Context, c diff.Container) {
	if r.svc.Port == 0 {
		return
	}
	ip := r.addr(c.ID)
	if ip == "" {
		st, err := r.a.rt.Inspect(ctx, c.ID)
		if err != nil {
			r.log.Warn("cannot route in", "container", c.Name, "error", err)
			return
		}
		ip = st.IPs[diff.NetworkName(r.svc.Project)]
	}
	r.a.router.RouteIn(r.svc, routing.Target{ContainerID: c.ID, Addr: net.JoinHostPort(ip, strconv.Itoa(r.svc.Port)), Role: r.roleLabel()})
}

// retireOne routes a container out, drains it, stops and removes it.
func (r *rollout) retireOne(ctx context.Context, c diff.Container) error {
	if err := r.a.retire(ctx, r.svc.Project, r.svc.Name, c, r.svc.StopGrace); err != nil {
		return err
	}
	r.noteRemoved(c)
	r.log.Info("removed", "container", c.Name)
	return nil
}

// retireAll retires cs side by side: each is routed out, drained, stopped
// and removed on its own, so n containers take about as long as one.
func (r *rollout) retireAll(ctx context.Context, cs []diff.Container) error {
	return sideBySide(cs, func(c diff.Container) error { return r.retireOne(ctx, c) })
}

// stopAll routes cs out, drains and stops them side by side, and leaves
// their removal to run beside what the rollout does next (the next batch's
// create calls): a stopped container serves and runs nothing, and Docker's
// remove call is no reason to hold the rollout. awaitRemovals collects them.
func (r *rollout) stopAll(ctx context.Context, cs []diff.Container) error {
	return sideBySide(cs, func(c diff.Container) error {
		if err := r.a.stopOut(ctx, r.svc.Project, r.svc.Name, c, r.svc.StopGrace); err != nil {
			return err
		}
		r.removing.Add(1)
		go func() {
			defer r.removing.Done()
			if err := r.a.removeStopped(context.WithoutCancel(ctx), c); err != nil {
				r.mu.Lock()
				r.removeErrs = append(r.removeErrs, err)
				r.mu.Unlock()
				return
			}
			r.noteRemoved(c)
			r.log.Info("removed", "container", c.Name)
		}()
		return nil
	})
}

// awaitRemovals waits for the removals stopAll left running and returns
// their errors.
func (r *rollout) awaitRemovals() error {
	r.removing.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	err := errors.Join(r.removeErrs...)
	r.removeErrs = nil
	return err
}

// sideBySide runs fn for each of cs concurrently and joins their errors on
// one line.
func sideBySide(cs []diff.Container, fn func(diff.Container) error) error {
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(c)
		}()
	}
	wg.Wait()
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return nil
}
