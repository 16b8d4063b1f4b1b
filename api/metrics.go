package api

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Webhook results, the values of orca_sync_webhooks_total{result}.
const (
	webhookAccepted     = "accepted"
	webhookIgnored      = "ignored"
	webhookDuplicate    = "duplicate"
	webhookUnauthorized = "unauthorized"
	webhookTooLarge     = "too_large"
	webhookForbidden    = "forbidden"
	webhookBadRequest   = "bad_request"
	webhookFailed       = "failed"
)

// newWebhookCounter registers orca_sync_webhooks_total on reg, or reuses the
// one a previous Server registered there.
func newWebhookCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orca_sync_webhooks_total",
		Help: "Webhook deliveries received, by result.",
	}, []string{"result"})
	if err := reg.Register(c); err != nil {
		are := prometheus.AlreadyRegisteredError{}
		if !errors.As(err, &are) {
			return nil, fmt.Errorf("api: register webhook counter: %w", err)
		}
		existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
		if !ok {
			return nil, fmt.Errorf("api: register webhook counter: %w", err)
		}
		c = existing
	}
	for _, r := range []string{
		webhookAccepted, webhookIgnored, webhookDuplicate, webhookUnauthorized,
		webhookTooLarge, webhookForbidden, webhookBadRequest, webhookFailed,
	} {
		c.WithLabelValues(r) // export every result from the start, at 0
	}
	return c, nil
}

// nodeGatherer adds node="<this host's node>" to every orca_* series as
// /metrics serves it, so that series scraped from several hosts of one
// repository stay apart (docs/reference/metrics.md). The node is asked at
// every scrape: it may come from cluster.toml, which a commit changes.
type nodeGatherer struct {
	inner prometheus.Gatherer
	node  func() string
}

var _ prometheus.Gatherer = nodeGatherer{}

func (g nodeGatherer) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := g.inner.Gather()
	node := ""
	if g.node != nil {
		node = g.node()
	}
	if node == "" {
		return mfs, err
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "orca_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			name, value := "node", node
			m.Label = append(m.Label, &dto.LabelPair{Name: &name, Value: &value})
			sort.Slice(m.Label, func(i, j int) bool { return m.Label[i].GetName() < m.Label[j].GetName() })
		}
	}
	return mfs, err
}
