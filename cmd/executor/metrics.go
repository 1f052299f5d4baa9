package main

import (
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mdx-executor/mdx/agent"
	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/task"
)

const metricsNamespace = "mesos_executor"

// metrics registers the executor's Prometheus metrics. Values owned by other
// packages are read at scrape time (GaugeFunc, a Collector) instead of being
// copied, so there is one owner for each number.
type metrics struct {
	ackRTT     *prometheus.HistogramVec
	dockerCall *prometheus.HistogramVec
	dockerErrs *prometheus.CounterVec
}

// newDockerMetrics registers the Docker API call metrics, which must exist
// before the Docker client is created.
func newDockerMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		dockerCall: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace,
			Name:      "docker_api_call_seconds",
			Help:      "Latency of Docker Engine API calls until the response headers, by call.",
			Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"call"}),
		dockerErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Name:      "docker_api_call_errors_total",
			Help:      "Docker Engine API calls that failed at the transport level, by call.",
		}, []string{"call"}),
	}
	reg.MustRegister(m.dockerCall, m.dockerErrs)
	return m
}

func (m *metrics) observeDocker(call string, d time.Duration, err error) {
	m.dockerCall.WithLabelValues(call).Observe(d.Seconds())
	if err != nil {
		m.dockerErrs.WithLabelValues(call).Inc()
	}
}

func (m *metrics) register(reg *prometheus.Registry, mgr *task.Manager, link *agent.Client, dc *containerd.Client) {
	m.ackRTT = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace,
		Name:      "status_update_ack_seconds",
		Help:      "Time from a status update's creation to the agent's acknowledgement.",
		Buckets:   []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"state"})
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.ackRTT,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "task_launches_total", Help: "Tasks launched (LAUNCH events accepted).",
		}, func() float64 { return float64(mgr.Counters().Launched.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "task_kills_total", Help: "KILL requests acted on.",
		}, func() float64 { return float64(mgr.Counters().Killed.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "unacknowledged_updates", Help: "Status updates the agent has not acknowledged yet.",
		}, func() float64 { return float64(link.Unacknowledged()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "agent_reconnects_total", Help: "Times the agent's event stream was lost after a successful SUBSCRIBE.",
		}, func() float64 { return float64(link.Stats().Reconnects) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "agent_connected", Help: "1 while subscribed to the agent.",
		}, func() float64 {
			if link.Stats().Connected {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "docker_events_reconnects_total", Help: "Times the Docker events stream was reopened.",
		}, func() float64 { return float64(dc.StreamReconnects()) }),
		&taskCollector{mgr: mgr},
		loopLatencyCollector{mgr.LoopLatency()},
		&pullCollector{pulls: dc.Pulls},
	)
	reg.MustRegister(linkCollectors(link)...)
}

// linkCollectors are the agent link's failure counters.
func linkCollectors(link *agent.Client) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "updates_rejected_total",
			Help: "Status updates the agent refused for good (400 or another 4xx that is not retried); they are never acknowledged.",
		}, func() float64 { return float64(link.Stats().RejectedUpdates) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "agent_events_dropped_total",
			Help: "Events from the agent dropped because their payload or a required id was missing.",
		}, func() float64 { return float64(link.Stats().DroppedEvents) }),
	}
}

func (m *metrics) observeAck(_ string, state mesos.TaskState, rtt time.Duration) {
	m.ackRTT.WithLabelValues(state.String()).Observe(rtt.Seconds())
}

// taskCollector reports tasks by state and failures by reason from the
// manager's snapshot and counters at scrape time.
type taskCollector struct{ mgr *task.Manager }

var (
	tasksDesc = prometheus.NewDesc(metricsNamespace+"_tasks", "Tasks by Mesos state.", []string{"state"}, nil)
	failsDesc = prometheus.NewDesc(metricsNamespace+"_task_failures_total", "Tasks that ended TASK_FAILED or with a reason, by Mesos reason.", []string{"reason"}, nil)
)

func (c *taskCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- tasksDesc
	ch <- failsDesc
}

func (c *taskCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{}
	for _, v := range c.mgr.Snapshot() {
		counts[v.State]++
	}
	for _, s := range []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLING,
		mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED} {
		ch <- prometheus.MustNewConstMetric(tasksDesc, prometheus.GaugeValue, float64(counts[s.String()]), s.String())
	}
	c.mgr.Counters().Failures.Range(func(k, v any) bool {
		ch <- prometheus.MustNewConstMetric(failsDesc, prometheus.CounterValue, float64(v.(interface{ Load() uint64 }).Load()), k.(string))
		return true
	})
}

// loopLatencyCollector reports the task loop's latency histogram, which
// the manager keeps (sampled by every container exit), at scrape time.
type loopLatencyCollector struct{ h *task.LoopLatency }

var loopLatencyDesc = prometheus.NewDesc(metricsNamespace+"_task_loop_latency_seconds",
	"Time from the Docker exit watcher handing a container exit over to the task loop handling it: the queueing delay in front of the loop, sampled by every exit.", nil, nil)

func (c loopLatencyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- loopLatencyDesc }

func (c loopLatencyCollector) Collect(ch chan<- prometheus.Metric) {
	count, sum, buckets := c.h.Snapshot()
	ch <- prometheus.MustNewConstHistogram(loopLatencyDesc, count, sum, buckets)
}

// pullCollector reports the image pulls in flight from the Docker client's
// snapshot at scrape time. Series exist only while their pull does, so the
// image label's cardinality is bounded by the pulls in flight.
type pullCollector struct {
	pulls func() []containerd.PullInfo
	now   func() time.Time
}

var (
	pullsDesc      = prometheus.NewDesc(metricsNamespace+"_image_pulls_in_progress", "Image pulls in flight (one per image, shared by its waiting tasks).", nil, nil)
	pullDoneDesc   = prometheus.NewDesc(metricsNamespace+"_image_pull_downloaded_bytes", "Bytes downloaded so far by a pull in flight, summed over its layers.", []string{"image"}, nil)
	pullTotalDesc  = prometheus.NewDesc(metricsNamespace+"_image_pull_size_bytes", "Bytes a pull in flight has to download, as far as the daemon knows yet.", []string{"image"}, nil)
	pullWaitDesc   = prometheus.NewDesc(metricsNamespace+"_image_pull_waiting_tasks", "Callers waiting for a pull in flight.", []string{"image"}, nil)
	pullElapsedDsc = prometheus.NewDesc(metricsNamespace+"_image_pull_elapsed_seconds", "Time since a pull in flight started.", []string{"image"}, nil)
)

func (c *pullCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pullsDesc
	ch <- pullDoneDesc
	ch <- pullTotalDesc
	ch <- pullWaitDesc
	ch <- pullElapsedDsc
}

func (c *pullCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	if c.now != nil {
		now = c.now()
	}
	pulls := c.pulls()
	ch <- prometheus.MustNewConstMetric(pullsDesc, prometheus.GaugeValue, float64(len(pulls)))
	for _, p := range pulls {
		ch <- prometheus.MustNewConstMetric(pullDoneDesc, prometheus.GaugeValue, float64(p.BytesDone), p.Image)
		ch <- prometheus.MustNewConstMetric(pullTotalDesc, prometheus.GaugeValue, float64(p.BytesTotal), p.Image)
		ch <- prometheus.MustNewConstMetric(pullWaitDesc, prometheus.GaugeValue, float64(p.Waiters), p.Image)
		ch <- prometheus.MustNewConstMetric(pullElapsedDsc, prometheus.GaugeValue, now.Sub(p.StartedAt).Seconds(), p.Image)
	}
}
