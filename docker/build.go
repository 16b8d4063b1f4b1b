package docker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	apibuild "github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/build"
)

// Engine builds the images of services with [service.build].
var _ build.Engine = (*Engine)(nil)

// BuildImage runs the classic builder (API 1.41 engines have no BuildKit
// without a session; docs/design.md#builds) on req's context and reports
// every output line. An error the builder sends in its stream is a
// *build.Refused.
func (d *Engine) BuildImage(ctx context.Context, req build.Request, line func(string)) error {
	args := make(map[string]*string, len(req.Args))
	for k, v := range req.Args {
		args[k] = &v
	}
	res, err := d.cli.ImageBuild(ctx, req.Context, client.ImageBuildOptions{
		Tags: []string{req.Tag}, Dockerfile: req.Dockerfile, BuildArgs: args, Labels: req.Labels,
		Remove: true, ForceRemove: true, Version: apibuild.BuilderV1,
	})
	if err != nil {
		return fmt.Errorf("build %s: %w", req.Tag, err)
	}
	defer res.Body.Close()
	return readBuild(res.Body, line)
}

// readBuild reads the builder's JSON message stream: each "stream" text is
// split into lines; an "error" ends the build as refused.
func readBuild(r io.Reader, line func(string)) error {
	dec := json.NewDecoder(bufio.NewReader(r))
	var partial string
	for {
		var m struct {
			Stream      string `json:"stream"`
			Status      string `json:"status"`
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			if partial != "" {
				line(partial)
			}
			return nil
		} else if err != nil {
			return fmt.Errorf("read build output: %w", err)
		}
		text := partial + m.Stream
		if m.Status != "" {
			text += m.Status + "\n"
		}
		parts := strings.Split(text, "\n")
		partial = parts[len(parts)-1]
		for _, p := range parts[:len(parts)-1] {
			if p = strings.TrimRight(p, "\r"); p != "" {
				line(p)
			}
		}
		if msg := m.Error; msg != "" || m.ErrorDetail != nil {
			if msg == "" {
				msg = m.ErrorDetail.Message
			}
			if partial != "" {
				line(partial)
			}
			return &build.Refused{Message: strings.TrimSpace(msg)}
		}
	}
}

// ImageLabels returns the labels of a local image.
func (d *Engine) ImageLabels(ctx context.Context, ref string) (map[string]string, bool, error) {
	res, err := d.cli.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	if res.Config == nil {
		return map[string]string{}, true, nil
	}
	return res.Config.Labels, true, nil
}

// BuiltImages lists the images built for service.
func (d *Engine) BuiltImages(ctx context.Context, service string) ([]build.Image, error) {
	res, err := d.cli.ImageList(ctx, client.ImageListOptions{
		Filters: make(client.Filters).Add("label", build.LabelService+"="+service),
	})
	if err != nil {
		return nil, fmt.Errorf("list images built for %s: %w", service, err)
	}
	out := make([]build.Image, 0, len(res.Items))
	for _, img := range res.Items {
		out = append(out, build.Image{ID: img.ID, Created: time.Unix(img.Created, 0)})
	}
	return out, nil
}

// RemoveImage removes an image and its tags; the engine refuses one a
// container uses.
func (d *Engine) RemoveImage(ctx context.Context, id string) error {
	if _, err := d.cli.ImageRemove(ctx, id, client.ImageRemoveOptions{PruneChildren: true}); err != nil {
		return fmt.Errorf("remove image %s: %w", id, err)
	}
	return nil
}
