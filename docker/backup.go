package docker

import (
	"context"
	"fmt"
	"io"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
)

// What volume backups need of the engine (package backup): an exec whose
// output is kept, the archive endpoints that read and write a container's
// files (volumes included) without a helper image, a container created to
// reach a volume and never started, and a volume emptied for a restore.

// ExecOutput runs cmd in a running container, writing its stdout and stderr
// to out, and returns its exit code once it ended.
func (d *Engine) ExecOutput(ctx context.Context, id string, cmd []string, out io.Writer) (int, error) {
	what := fmt.Sprintf("exec in container %s", dockerShortID(id))
	ex, err := d.cli.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	att, err := d.cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	// Closing the connection when ctx ends unblocks the copy.
	stop := context.AfterFunc(ctx, att.Close)
	_, err = stdcopy.StdCopy(out, out, att.Reader)
	stop()
	att.Close()
	if err != nil {
		return 0, fmt.Errorf("%s: read its output: %w", what, err)
	}
	res, err := d.cli.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if res.Running {
		return 0, fmt.Errorf("%s: its output ended while it still runs", what)
	}
	return res.ExitCode, nil
}

// CopyFrom returns a tar stream of path in the container, running or not,
// as the engine's archive endpoint gives it: every entry under the base name
// of path. The caller closes it.
func (d *Engine) CopyFrom(ctx context.Context, id, path string) (io.ReadCloser, error) {
	res, err := d.cli.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: path})
	if err != nil {
		return nil, fmt.Errorf("read %s from container %s: %w", path, dockerShortID(id), err)
	}
	return res.Content, nil
}

// CopyTo unpacks the tar stream content at dir in the container, running or
// not, keeping the archive's owners.
func (d *Engine) CopyTo(ctx context.Context, id, dir string, content io.Reader) error {
	_, err := d.cli.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: dir, Content: content, CopyUIDGID: true})
	if err != nil {
		return fmt.Errorf("write into %s of container %s: %w", dir, dockerShortID(id), err)
	}
	return nil
}

// CreateIdle creates, and never starts, a container of image with volumes
// mounted, labelled orca.role=role and not orca.managed (the reconciler
// never sees it): the archive endpoints reach a volume through it when no
// container of its service runs. A container left under name by a crash is
// replaced. The image must be local: nothing is pulled.
func (d *Engine) CreateIdle(ctx context.Context, name, image, role string, volumes []config.Volume) (string, error) {
	if err := d.Remove(ctx, name); err != nil {
		return "", err
	}
	var mounts []mount.Mount
	for _, v := range volumes {
		mounts = append(mounts, mount.Mount{Type: mount.TypeVolume, Source: v.Source, Target: v.Target})
	}
	res, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{Image: image, Labels: map[string]string{apply.LabelRole: role},
			// Never started, but a create needs a command when the image has none.
			Entrypoint: []string{"/nonexistent-never-started"}},
		HostConfig: &container.HostConfig{Mounts: mounts, NetworkMode: "none"},
	})
	if err != nil {
		return "", fmt.Errorf("create container %s to reach its volumes: %w", name, err)
	}
	return res.ID, nil
}

// Start starts a created or stopped container.
func (d *Engine) Start(ctx context.Context, id string) error {
	if _, err := d.cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", dockerShortID(id), err)
	}
	return nil
}

// EmptyVolume removes the named volume and creates it again, empty, with the
// same driver, options and labels. No container may use it, stopped or not.
func (d *Engine) EmptyVolume(ctx context.Context, name string) error {
	v, err := d.cli.VolumeInspect(ctx, name, client.VolumeInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect volume %s: %w", name, err)
	}
	if _, err := d.cli.VolumeRemove(ctx, name, client.VolumeRemoveOptions{}); err != nil {
		if cerrdefs.IsConflict(err) {
			return fmt.Errorf("empty volume %s: it is in use (%s); stop what uses it", name, strings.TrimSpace(err.Error()))
		}
		return fmt.Errorf("empty volume %s: %w", name, err)
	}
	_, err = d.cli.VolumeCreate(ctx, client.VolumeCreateOptions{
		Name: name, Driver: v.Volume.Driver, DriverOpts: v.Volume.Options, Labels: v.Volume.Labels,
	})
	if err != nil {
		return fmt.Errorf("create volume %s again, empty: %w", name, err)
	}
	return nil
}
