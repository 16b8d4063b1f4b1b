package api

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
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
		webhookTooLarge, webhookForbidden, webhookBadRequest,
	} {
		c.WithLabelValues(r) // export every result from the start, at 0
	}
	return c, nil
}
