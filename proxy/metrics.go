package proxy

import (
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the proxy's Prometheus series.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight *prometheus.GaugeVec
	retries  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orca_proxy_requests_total", Help: "Requests the proxy answered, by service, role and status code.",
		}, []string{"project", "service", "role", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "orca_proxy_request_duration_seconds", Help: "Time to the end of each proxied response.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"project", "service", "role"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orca_proxy_requests_in_flight", Help: "Requests being proxied now.",
		}, []string{"project", "service"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orca_proxy_retries_total",
			Help: "Requests sent to a second target because the connection to the first could not be made.",
		}, []string{"project", "service"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.inflight, m.retries)
	}
	return m
}

// serviceMetrics are one service's series and in-memory figures; the hot path
// reaches them through the Service, without a label lookup per request.
type serviceMetrics struct {
	m                *metrics
	project, service string
	inflight         prometheus.Gauge
	retries          prometheus.Counter
	roles            sync.Map // role -> *roleMetrics
}

func (m *metrics) forService(project, service string) *serviceMetrics {
	return &serviceMetrics{m: m, project: project, service: service,
		inflight: m.inflight.WithLabelValues(project, service), retries: m.retries.WithLabelValues(project, service)}
}

func (sm *serviceMetrics) role(role string) *roleMetrics {
	if r, ok := sm.roles.Load(role); ok {
		return r.(*roleMetrics)
	}
	r, _ := sm.roles.LoadOrStore(role, &roleMetrics{sm: sm, role: role,
		duration: sm.m.duration.WithLabelValues(sm.project, sm.service, role)})
	return r.(*roleMetrics)
}

// roleMetrics counts one role's requests.
type roleMetrics struct {
	sm       *serviceMetrics
	role     string
	duration prometheus.Observer
	codes    [600]atomic.Pointer[counterBox]
	stats    roleCounters
}

type counterBox struct{ c prometheus.Counter }

// observe counts a request in the Prometheus series and in the figures
// the canary analysis reads.
func (rm *roleMetrics) observe(code int, d time.Duration) { rm.record(code, d, false) }

// record is observe for a request that may have been pinned by a sticky
// cookie: Prometheus counts all traffic, the figures only the split's
// assignments (see pinned).
func (rm *roleMetrics) record(code int, d time.Duration, pinned bool) {
	if code < 100 || code >= 600 {
		code = 599
	}
	b := rm.codes[code].Load()
	if b == nil {
		b = &counterBox{rm.sm.m.requests.WithLabelValues(rm.sm.project, rm.sm.service, rm.role, strconv.Itoa(code))}
		rm.codes[code].Store(b)
	}
	b.c.Inc()
	rm.duration.Observe(d.Seconds())
	if !pinned {
		rm.stats.observe(code, d)
	}
}

// Latency buckets of the in-memory figures: bucket i holds durations up to
// statsBase·statsFactor^i, about 10% resolution from 0.1 ms to a minute.
const (
	statsBuckets = 140
	statsBase    = 100 * time.Microsecond
	statsFactor  = 1.1
)

type roleCounters struct {
	requests, errors atomic.Uint64
	buckets          [statsBuckets]atomic.Uint64
}

func bucketOf(d time.Duration) int {
	if d <= statsBase {
		return 0
	}
	i := int(math.Ceil(math.Log(float64(d)/float64(statsBase)) / math.Log(statsFactor)))
	return min(i, statsBuckets-1)
}

func bucketBound(i int) time.Duration {
	return time.Duration(float64(statsBase) * math.Pow(statsFactor, float64(i)))
}

func (c *roleCounters) observe(code int, d time.Duration) {
	c.requests.Add(1)
	if code >= 500 {
		c.errors.Add(1)
	}
	c.buckets[bucketOf(d)].Add(1)
}

// RoleStats are the proxy's own figures for one role of a service, counted
// since the role was first routed. Take two and call Since for a window.
type RoleStats struct {
	Requests uint64
	// Errors are 5xx answers, the proxy's own 502/503/504 included.
	Errors  uint64
	buckets [statsBuckets]uint64
}

// ErrorRate is Errors/Requests, 0 without requests.
func (s RoleStats) ErrorRate() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.Errors) / float64(s.Requests)
}

// P95 is the 95th percentile latency (upper bound of its ~10% bucket).
func (s RoleStats) P95() time.Duration { return s.Quantile(0.95) }

// Quantile returns the q-quantile latency, 0 without requests.
func (s RoleStats) Quantile(q float64) time.Duration {
	var total uint64
	for _, n := range s.buckets {
		total += n
	}
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, n := range s.buckets {
		seen += n
		if seen >= want {
			return bucketBound(i)
		}
	}
	return bucketBound(statsBuckets - 1)
}

// Since returns the figures of the requests between earlier and s.
func (s RoleStats) Since(earlier RoleStats) RoleStats {
	out := RoleStats{Requests: s.Requests - earlier.Requests, Errors: s.Errors - earlier.Errors}
	for i := range s.buckets {
		out.buckets[i] = s.buckets[i] - earlier.buckets[i]
	}
	return out
}

func (c *roleCounters) snapshot() RoleStats {
	s := RoleStats{Requests: c.requests.Load(), Errors: c.errors.Load()}
	for i := range c.buckets {
		s.buckets[i] = c.buckets[i].Load()
	}
	return s
}

func (sm *serviceMetrics) stats() map[string]RoleStats {
	out := map[string]RoleStats{}
	sm.roles.Range(func(k, v any) bool {
		out[k.(string)] = v.(*roleMetrics).stats.snapshot()
		return true
	})
	return out
}
