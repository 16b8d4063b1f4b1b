package swarm

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/swarm"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/routing"
)

// specInput is what a service spec is made of besides the desired service.
type specInput struct {
	svc      *diff.Service
	secrets  config.SecretValues
	revision string
	node     string
}

// serviceSpec turns a desired service into its Swarm service spec
// (docs/guides/swarm.md#how-a-service-maps): env and command with secrets
// resolved, orca's labels on the service and on its tasks' containers, the
// strategy as the update config, the readiness probe as the healthcheck.
func serviceSpec(in specInput) (swarm.ServiceSpec, error) {
	s, spec := in.svc, in.svc.Spec
	env, cmd, err := resolve(in)
	if err != nil {
		return swarm.ServiceSpec{}, err
	}
	labels := map[string]string{}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	for k, v := range map[string]string{
		apply.LabelManaged: "true", apply.LabelProject: s.Project, apply.LabelService: s.Name,
		apply.LabelHash: s.Hash, apply.LabelRevision: in.revision, apply.LabelRole: routing.RoleStable,
		apply.LabelNode: in.node, apply.LabelSpec: spec.Encode(),
	} {
		labels[k] = v
	}
	cs := &swarm.ContainerSpec{Image: spec.Image, Labels: labels, Args: cmd, Env: env,
		Mounts: mounts(spec), Healthcheck: healthcheck(s.Readiness)}
	if s.StopGrace > 0 {
		g := s.StopGrace
		cs.StopGracePeriod = &g
	}
	replicas := uint64(s.Replicas)
	out := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: ServiceName(s.Project, s.Name), Labels: labels},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: cs, RestartPolicy: restartPolicy(spec.RestartPolicy),
			Resources: resources(spec), Placement: placement(s.Placement), Networks: networks(spec)},
		Mode:           swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		UpdateConfig:   updateConfig(s.Service, false),
		RollbackConfig: updateConfig(s.Service, true),
	}
	if s.Port > 0 {
		// Host-mode ports, one per task, that the proxy routes to
		// (docs/guides/swarm.md#routing): the routing mesh would hide the
		// tasks behind one port, so the proxy could not drain each.
		out.EndpointSpec = &swarm.EndpointSpec{Ports: []swarm.PortConfig{{
			Protocol: "tcp", TargetPort: uint32(s.Port), PublishMode: swarm.PortConfigPublishModeHost}}}
	}
	return out, nil
}

func resolve(in specInput) (env, cmd []string, err error) {
	lookup := func(name string) (string, error) {
		if in.secrets == nil {
			return "", fmt.Errorf("${secrets.%s}: the secrets of this checkout were not resolved", name)
		}
		return in.secrets.Value(in.svc.Project, name)
	}
	spec := in.svc.Spec
	for _, k := range slices.Sorted(mapKeys(spec.Env)) {
		v, err := config.Expand(spec.Env[k], lookup)
		if err != nil {
			return nil, nil, fmt.Errorf("env %s: %w", k, err)
		}
		env = append(env, k+"="+v)
	}
	for i, a := range spec.Command {
		v, err := config.Expand(a, lookup)
		if err != nil {
			return nil, nil, fmt.Errorf("command argument %d: %w", i+1, err)
		}
		cmd = append(cmd, v)
	}
	return env, cmd, nil
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func mounts(spec diff.Spec) []mount.Mount {
	var out []mount.Mount
	for _, v := range spec.Volumes {
		out = append(out, mount.Mount{Type: mount.TypeVolume, Source: v.Source, Target: v.Target})
	}
	// Only absolute host paths reach here: `./` mounts are refused on
	// Swarm (config.checkSwarm).
	for _, m := range spec.Mounts {
		out = append(out, mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	return out
}

// healthcheck is the readiness probe as the task's healthcheck, in the exec
// form: an image FROM scratch has no shell for CMD-SHELL. Without a probe
// the image's HEALTHCHECK stands.
func healthcheck(p *config.Probe) *container.HealthConfig {
	if p == nil || len(p.Command) == 0 {
		return nil
	}
	return &container.HealthConfig{Test: append([]string{"CMD"}, p.Command...), Interval: p.Interval,
		Timeout: p.Timeout, Retries: max(p.FailureThreshold, 1), StartPeriod: p.InitialDelay}
}

func restartPolicy(p string) *swarm.RestartPolicy {
	switch {
	case p == "no":
		return &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionNone}
	case strings.HasPrefix(p, "on-failure"):
		rp := &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionOnFailure}
		if _, n, ok := strings.Cut(p, ":"); ok {
			if v, err := strconv.ParseUint(n, 10, 64); err == nil {
				rp.MaxAttempts = &v
			}
		}
		return rp
	}
	// always and unless-stopped: Swarm has no stopped-by-hand state.
	return &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny}
}

func resources(spec diff.Spec) *swarm.ResourceRequirements {
	if spec.MemoryBytes == 0 && spec.NanoCPUs == 0 {
		return nil
	}
	return &swarm.ResourceRequirements{
		Limits:       &swarm.Limit{MemoryBytes: spec.MemoryBytes, NanoCPUs: spec.NanoCPUs},
		Reservations: &swarm.Resources{MemoryBytes: spec.MemoryBytes, NanoCPUs: spec.NanoCPUs},
	}
}

func placement(p *config.Placement) *swarm.Placement {
	if p == nil {
		return nil
	}
	var cons []string
	if p.Node != "" {
		cons = append(cons, "node.hostname == "+p.Node)
	}
	for _, k := range slices.Sorted(mapKeys(p.Labels)) {
		cons = append(cons, fmt.Sprintf("node.labels.%s == %s", k, p.Labels[k]))
	}
	return &swarm.Placement{Constraints: cons}
}

func networks(spec diff.Spec) []swarm.NetworkAttachmentConfig {
	out := make([]swarm.NetworkAttachmentConfig, 0, len(spec.Networks))
	for _, n := range spec.Networks {
		out = append(out, swarm.NetworkAttachmentConfig{Target: n, Aliases: spec.Aliases})
	}
	return out
}

// updateConfig is the strategy as Swarm's update (and rollback) config:
// rolling starts max_surge new tasks before stopping old ones and rolls
// back on failure; recreate stops all old tasks first. Monitor is how long
// a new task must keep running to count: min_ready_secs, plus the
// readiness probe's first chance to fail.
func updateConfig(s *config.Service, rollback bool) *swarm.UpdateConfig {
	monitor := s.Deploy.MinReady
	if p := s.Readiness; p != nil {
		monitor += p.InitialDelay + p.Interval*time.Duration(max(p.FailureThreshold, 1))
	}
	uc := &swarm.UpdateConfig{Parallelism: uint64(max(s.Deploy.MaxSurge, 1)), Order: swarm.UpdateOrderStartFirst,
		FailureAction: swarm.UpdateFailureActionRollback, Monitor: max(monitor, time.Second)}
	if s.Deploy.Strategy == config.StrategyRecreate {
		uc.Parallelism, uc.Order = 0, swarm.UpdateOrderStopFirst
	}
	if rollback {
		uc.FailureAction = swarm.UpdateFailureActionPause
	}
	return uc
}
