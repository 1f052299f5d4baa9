package health

import "github.com/prometheus/client_golang/prometheus"

// metricsNamespace matches the executor's other metrics (cmd/executor).
const metricsNamespace = "mesos_executor"

// Values of the "kind" label.
const (
	kindHealth = "health" // TaskInfo.health_check and health.* labels
	kindCheck  = "check"  // TaskInfo.check
)

type metrics struct {
	latency  *prometheus.HistogramVec
	failures *prometheus.CounterVec
	inFlight prometheus.Gauge
	waiting  prometheus.Gauge
}

func newMetrics() *metrics {
	return &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace,
			Subsystem: "health",
			Name:      "probe_duration_seconds",
			Help:      "Time one probe took, from its start to its result, by kind (health, check) and type (http, tcp, cmd). Time spent waiting for a probe slot is not included.",
			Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"kind", "type"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Subsystem: "health",
			Name:      "probe_failures_total",
			Help:      "Probes that failed, by kind and type: for health checks every failed probe (grace period included); for generic checks the probes that produced no result (timeout, error).",
		}, []string{"kind", "type"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace,
			Subsystem: "health",
			Name:      "probes_in_flight",
			Help:      "Probes running now; at most Options.MaxConcurrent.",
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace,
			Subsystem: "health",
			Name:      "probes_waiting",
			Help:      "Probes due but waiting for a slot because MaxConcurrent probes are running.",
		}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.latency, m.failures, m.inFlight, m.waiting}
}
