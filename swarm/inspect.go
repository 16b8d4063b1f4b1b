package swarm

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

var _ apply.ConfigInspector = (*Engine)(nil)

// InspectConfig reads the config a task actually runs: its own task spec,
// which a `docker service update` from outside changes (Swarm rolls the
// tasks to it) while the orca.* labels stay. The drift checker compares it
// with the spec in those labels, as it does a container's inspect
// (docs/guides/swarm.md#drift).
func (e *Engine) InspectConfig(ctx context.Context, id string) (diff.Live, error) {
	res, err := e.cli.TaskInspect(ctx, id, client.TaskInspectOptions{})
	if err != nil {
		return diff.Live{}, fmt.Errorf("inspect task %s: %w", id, err)
	}
	names, err := e.networkNames(ctx)
	if err != nil {
		return diff.Live{}, err
	}
	return taskLive(res.Task, names), nil
}

func (e *Engine) networkNames(ctx context.Context) (map[string]string, error) {
	res, err := e.cli.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	names := map[string]string{}
	for _, n := range res.Items {
		names[n.ID] = n.Name
	}
	return names, nil
}

// taskLive is a task's config as the drift checker reads a container's.
func taskLive(t swarm.Task, netNames map[string]string) diff.Live {
	li := diff.Live{Env: map[string]string{}, Networks: map[string][]string{}}
	cs := t.Spec.ContainerSpec
	if cs == nil {
		return li
	}
	li.Image, _, _ = strings.Cut(cs.Image, "@") // Swarm may pin the digest
	li.Command, li.Labels = cs.Args, cs.Labels
	for _, kv := range cs.Env {
		k, v, _ := strings.Cut(kv, "=")
		li.Env[k] = v
	}
	for _, m := range cs.Mounts {
		switch m.Type {
		case mount.TypeVolume:
			li.Volumes = append(li.Volumes, config.Volume{Source: m.Source, Target: m.Target})
		case mount.TypeBind:
			li.Binds = append(li.Binds, config.Mount{Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
		}
	}
	for _, n := range t.Spec.Networks {
		name := n.Target
		if v, ok := netNames[n.Target]; ok {
			name = v
		}
		li.Networks[name] = n.Aliases
	}
	if r := t.Spec.Resources; r != nil && r.Limits != nil {
		li.MemoryBytes, li.NanoCPUs = r.Limits.MemoryBytes, r.Limits.NanoCPUs
	}
	want := ""
	if spec, ok := diff.DecodeSpec(cs.Labels[apply.LabelSpec]); ok {
		want = spec.RestartPolicy
		if sameImage(cs.Image, spec.Image) {
			li.Image = spec.Image
		}
	}
	li.RestartPolicy = restartName(t.Spec.RestartPolicy, want)
	return li
}

// sameImage says whether the image reference Swarm keeps names the one the
// spec asked for: Swarm writes `nginx` as `nginx:latest`, drops
// `docker.io/library/` and pins the digest it resolved after "@", none of
// which is drift (docs/guides/swarm.md).
func sameImage(swarmRef, want string) bool {
	sName, sDigest, _ := strings.Cut(swarmRef, "@")
	wName, wDigest, _ := strings.Cut(want, "@")
	if wDigest != "" && sDigest != wDigest {
		return false
	}
	return familiarImage(sName) == familiarImage(wName)
}

// familiarImage is a reference's name in Docker Hub's short form with its
// tag, `latest` when it has none.
func familiarImage(name string) string {
	name = strings.TrimPrefix(name, "docker.io/")
	name = strings.TrimPrefix(name, "library/")
	if !strings.Contains(name[strings.LastIndexByte(name, '/')+1:], ":") {
		name += ":latest"
	}
	return name
}

// restartName maps a Swarm restart policy back to restart_policy; "any"
// is what both always and unless-stopped became, so it reads as the one
// the spec (want) names.
func restartName(p *swarm.RestartPolicy, want string) string {
	if p == nil {
		return "always"
	}
	switch p.Condition {
	case swarm.RestartPolicyConditionNone:
		return "no"
	case swarm.RestartPolicyConditionOnFailure:
		if p.MaxAttempts != nil && *p.MaxAttempts > 0 {
			return "on-failure:" + strconv.FormatUint(*p.MaxAttempts, 10)
		}
		return "on-failure"
	}
	if want == "unless-stopped" {
		return want
	}
	return "always"
}
