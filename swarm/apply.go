package swarm

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

// Schedule carries out plan on the swarm: services of a project are
// created or updated in depends_on order, each wave once the previous one
// converged; removals run beside them. While a service rolls, watch gets
// the live tasks at each poll (the proxy adds new tasks and drops stopping
// ones). A rollback done by Swarm is a failed result with Swarm's reason.
func (e *Engine) Schedule(ctx context.Context, d *config.Desired, plan diff.Plan, revision string, watch func([]diff.Container)) []apply.Result {
	changes := map[string]diff.Change{}
	for _, c := range plan.Changes {
		changes[c.Key()] = c
	}
	var (
		mu      sync.Mutex
		results []apply.Result
		wg      sync.WaitGroup
	)
	record := func(r apply.Result) {
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
	}
	for _, c := range plan.Changes {
		if c.Action == diff.ActionRemove {
			wg.Go(func() { record(e.run(ctx, d, c, revision, watch)) })
		}
	}
	for _, p := range d.Projects {
		wg.Go(func() {
			for _, wave := range p.StartOrder() {
				var ww sync.WaitGroup
				for _, s := range wave {
					c, ok := changes[s.Key()]
					if !ok || c.Action == diff.ActionNone || c.Action == diff.ActionRemove {
						continue
					}
					ww.Go(func() { record(e.run(ctx, d, c, revision, watch)) })
				}
				ww.Wait()
			}
		})
	}
	wg.Wait()
	return results
}

func (e *Engine) run(ctx context.Context, d *config.Desired, c diff.Change, revision string, watch func([]diff.Container)) apply.Result {
	start := time.Now()
	r := apply.Result{Project: c.Project, Service: c.Service, Action: c.Action}
	log := e.log.With("service", c.Key(), "action", c.Action)
	log.Info("applying on swarm", "replicas", c.Replicas, "live", c.Live)
	var err error
	if c.Action == diff.ActionRemove {
		err = e.remove(ctx, c)
		r.Removed = []string{ServiceName(c.Project, c.Service)}
	} else {
		err = e.converge(ctx, d, c, revision, watch)
		r.Started = []string{ServiceName(c.Project, c.Service)}
	}
	r.Duration = time.Since(start)
	if err != nil {
		r.Error = err.Error()
		log.Error("failed", "error", err, "duration", r.Duration)
	} else {
		log.Info("done", "duration", r.Duration)
	}
	return r
}

func (e *Engine) remove(ctx context.Context, c diff.Change) error {
	name := ServiceName(c.Project, c.Service)
	if _, err := e.cli.ServiceRemove(ctx, name, client.ServiceRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove swarm service %s: %w", name, err)
	}
	return nil
}

// converge creates or updates the service and waits until its tasks run
// the desired spec, Swarm rolled it back, or timeout_secs passed (then it
// asks Swarm for the rollback itself).
func (e *Engine) converge(ctx context.Context, d *config.Desired, c diff.Change, revision string, watch func([]diff.Container)) error {
	s := c.Desired
	for _, n := range s.Spec.Networks {
		if err := e.EnsureNetwork(ctx, n); err != nil {
			return err
		}
	}
	spec, err := serviceSpec(specInput{svc: s, secrets: d.Secrets, revision: revision, node: apply.NodeName(e.node, d)})
	if err != nil {
		return err
	}
	auth, err := e.encodedAuth(d, s.Spec.Image)
	if err != nil {
		return err
	}
	name := spec.Name
	cur, err := e.cli.ServiceInspect(ctx, name, client.ServiceInspectOptions{})
	var prevStart *time.Time
	switch {
	case cerrdefs.IsNotFound(err):
		if _, err := e.cli.ServiceCreate(ctx, client.ServiceCreateOptions{Spec: spec, EncodedRegistryAuth: auth}); err != nil {
			return fmt.Errorf("create swarm service %s: %w", name, err)
		}
	case err != nil:
		return fmt.Errorf("inspect swarm service %s: %w", name, err)
	default:
		if us := cur.Service.UpdateStatus; us != nil {
			prevStart = us.StartedAt
		}
		spec.TaskTemplate.ForceUpdate = cur.Service.Spec.TaskTemplate.ForceUpdate
		if c.Reason == "redeploy" || forced(c) {
			spec.TaskTemplate.ForceUpdate++
		}
		if _, err := e.cli.ServiceUpdate(ctx, cur.Service.ID, client.ServiceUpdateOptions{Version: cur.Service.Version,
			Spec: spec, EncodedRegistryAuth: auth}); err != nil {
			return fmt.Errorf("update swarm service %s: %w", name, err)
		}
	}
	return e.await(ctx, name, s, prevStart, watch)
}

func forced(c diff.Change) bool {
	for _, ct := range c.Containers {
		if ct.Replace {
			return true
		}
	}
	return false
}

// errRolledBack marks a rollout Swarm rolled back.
var errRolledBack = errors.New("swarm rolled the update back")

// await polls the service until its tasks converged on s. Swarm's
// UpdateStatus of an update started after prevStart tells a rollback.
func (e *Engine) await(ctx context.Context, name string, s *diff.Service, prevStart *time.Time, watch func([]diff.Container)) error {
	timeout := s.Deploy.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(e.poll)
	defer tick.Stop()
	for {
		live, err := e.List(ctx)
		if err == nil && watch != nil {
			watch(live)
		}
		res, ierr := e.cli.ServiceInspect(ctx, name, client.ServiceInspectOptions{})
		if ierr != nil {
			return fmt.Errorf("inspect swarm service %s: %w", name, ierr)
		}
		us := res.Service.UpdateStatus
		ours := us != nil && us.StartedAt != nil && (prevStart == nil || !us.StartedAt.Equal(*prevStart))
		if ours {
			switch us.State {
			case swarm.UpdateStateRollbackStarted, swarm.UpdateStateRollbackCompleted, swarm.UpdateStateRollbackPaused, swarm.UpdateStatePaused:
				// Once Swarm starts rolling back, the update has failed: the
				// rollout is Failed now, while Swarm restores the old tasks
				// (docs/guides/swarm.md).
				return fmt.Errorf("%w: %s (%s)", errRolledBack, us.Message, us.State)
			}
		}
		if err == nil && converged(live, s) && (!ours || us.State == swarm.UpdateStateCompleted) {
			return nil
		}
		if time.Now().After(deadline) {
			return e.timedOut(ctx, res.Service, s, timeout, live)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("swarm service %s: %w", name, ctx.Err())
		case <-tick.C:
		}
	}
}

// timedOut asks Swarm to roll back an update still running after
// timeout_secs (a first create has nothing to go back to) and says why.
func (e *Engine) timedOut(ctx context.Context, svc swarm.Service, s *diff.Service, timeout time.Duration, live []diff.Container) error {
	why := fmt.Sprintf("not ready within timeout_secs (%v)", timeout)
	for _, c := range live {
		if c.Project == s.Project && c.Service == s.Name && c.Hash == s.Hash && c.State != "running" {
			why += "; task " + c.Name + ": " + c.Status
			break
		}
	}
	if us := svc.UpdateStatus; us != nil && us.Message != "" {
		why += "; " + us.Message
	}
	if svc.PreviousSpec != nil {
		if _, err := e.cli.ServiceUpdate(ctx, svc.ID, client.ServiceUpdateOptions{Version: svc.Version, Rollback: "previous"}); err != nil {
			why += "; rollback: " + err.Error()
		} else {
			why += "; rolled back"
		}
	}
	return errors.New(why)
}

// converged: exactly s.Replicas tasks run, all of the desired spec.
func converged(live []diff.Container, s *diff.Service) bool {
	n := 0
	for _, c := range live {
		if c.Project != s.Project || c.Service != s.Name {
			continue
		}
		if c.Hash != s.Hash || c.State != "running" {
			return false
		}
		n++
	}
	return n == s.Replicas
}

// encodedAuth is the X-Registry-Auth value of image's credentials, which
// Swarm hands to the workers that pull it ("" when there are none).
func (e *Engine) encodedAuth(d *config.Desired, image string) (string, error) {
	a, err := e.creds.For(image, d.Cluster.Registries)
	if err != nil {
		return "", fmt.Errorf("registry credentials of %s: %w", image, err)
	}
	if a.Empty() {
		return "", nil
	}
	buf, err := json.Marshal(registry.AuthConfig{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken, ServerAddress: a.ServerAddress})
	if err != nil {
		return "", fmt.Errorf("encode registry credentials: %w", err)
	}
	return base64.URLEncoding.EncodeToString(buf), nil
}
