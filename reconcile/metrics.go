package reconcile

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the loop's Prometheus series (docs/reference/metrics.md).
type Metrics struct {
	reconcileTotal    *prometheus.CounterVec
	reconcileDuration prometheus.Histogram
	lastSuccessTime   prometheus.Gauge
	servicesGauge     *prometheus.GaugeVec
	rolloutsTotal     *prometheus.CounterVec
	commitToReadyHist prometheus.Histogram
	driftedServices   prometheus.Gauge
}

// NewMetrics creates the series and registers them on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reconcileTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orca_sync_reconcile_total", Help: "Syncs by result.",
		}, []string{"result"}),
		reconcileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "orca_sync_reconcile_duration_seconds", Help: "Duration of a sync, fetch to record.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		lastSuccessTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orca_sync_last_success_timestamp_seconds", Help: "Unix time of the last successful sync.",
		}),
		servicesGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orca_sync_services", Help: "Services by sync and health state.",
		}, []string{"sync", "health"}),
		rolloutsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orca_sync_rollouts_total", Help: "Service changes applied, by strategy and result.",
		}, []string{"strategy", "result"}),
		commitToReadyHist: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "orca_sync_commit_to_ready_seconds", Help: "From a commit (or the webhook announcing it) to all of its services ready.",
			Buckets: []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800},
		}),
		driftedServices: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orca_sync_drifted_services", Help: "Services with drift findings at the last check.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.driftedServices)
		reg.MustRegister(m.reconcileTotal, m.reconcileDuration, m.lastSuccessTime, m.servicesGauge, m.rolloutsTotal, m.commitToReadyHist)
	}
	return m
}

func (m *Metrics) reconciled(result string, d time.Duration) {
	m.reconcileTotal.WithLabelValues(result).Inc()
	m.reconcileDuration.Observe(d.Seconds())
}

func (m *Metrics) lastSuccess(t time.Time) { m.lastSuccessTime.Set(float64(t.Unix())) }

func (m *Metrics) commitToReady(d time.Duration) { m.commitToReadyHist.Observe(d.Seconds()) }

func (m *Metrics) rollout(strategy string, failed bool) {
	result := "succeeded"
	if failed {
		result = "failed"
	}
	m.rolloutsTotal.WithLabelValues(strategy, result).Inc()
}

func (m *Metrics) services(ss []ServiceStatus) {
	m.servicesGauge.Reset()
	for _, s := range ss {
		m.servicesGauge.WithLabelValues(s.Sync, s.Health).Inc()
	}
}

func (m *Metrics) drifted(n int) { m.driftedServices.Set(float64(n)) }
