package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/reconcile"
)

// TestStatusProgressingUntilReady: while serve waits for a new container's
// readiness probe (here held back by initial_delay_secs), status reports the
// service Progressing with no ready replica; Synced comes only once the
// probe could have passed. A CI job polling status for Synced must not go on
// before the service is ready.
func TestStatusProgressingUntilReady(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("progress")
	const delay = 5 * time.Second
	web := webApp(imageV1, 1)
	web.Readiness.InitialDelaySecs = int(delay / time.Second)
	repo, _ := newServedRepo(t)
	repo.WriteFile("cluster.toml", clusterWithWebhook)
	repo.WriteFile("services/"+p+"/service.toml", web.String())
	repo.Commit("web with a slow readiness")
	repo.Push()
	d := startServe(t, env, repo.FileURL())

	var progressing bool
	var synced reconcile.ServiceStatus
	var syncedAt time.Time
	env.waitFor(t, 90*time.Second, func() (bool, string) {
		s := serviceOf(d.status(), p, "web")
		switch s.Sync {
		case reconcile.SyncProgressing:
			progressing = true
			if s.Ready != 0 {
				t.Errorf("Progressing with ready %d: the container has not passed readiness", s.Ready)
			}
		case reconcile.SyncSynced:
			if s.Ready == 1 {
				synced, syncedAt = s, time.Now()
				return true, ""
			}
		}
		return false, fmt.Sprintf("status %+v", s)
	})
	cs := env.mustContainers(t, p, "web")
	if len(cs) != 1 {
		t.Fatalf("containers: %s", describe(cs))
	}
	started, err := time.Parse(time.RFC3339Nano, env.inspect(t, cs[0].ID).State.StartedAt)
	if err != nil {
		t.Fatal(err)
	}
	if early := started.Add(delay).Sub(syncedAt); early > 0 {
		t.Fatalf("status said %s, ready %d, %v before the readiness probe's initial delay was over", synced.Sync, synced.Ready, early)
	}
	if !progressing {
		t.Fatalf("status never said Progressing during the %v readiness wait", delay)
	}
}
