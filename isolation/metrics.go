package isolation

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"sync"
)

// TaskRef names a running task's container, for the collector.
type TaskRef struct {
	TaskID      string
	ContainerID string
}

// Collector exports every running task's cgroup stats as
// mesos_executor_task_* with a task_id label, read at scrape time through the
// Reader's cache. It also logs, once per increase, an OOM kill inside a
// container that keeps running (a child process killed): counted and logged,
// not reported as the task's death.
type Collector struct {
	r     *Reader
	tasks func() []TaskRef
	log   *logrus.Entry

	mu      sync.Mutex
	oomSeen map[string]uint64 // container id -> oom_kill count already logged
}

// NewCollector exports the stats of the tasks that tasks lists.
func NewCollector(r *Reader, tasks func() []TaskRef, log *logrus.Entry) *Collector {
	return &Collector{r: r, tasks: tasks, log: log, oomSeen: map[string]uint64{}}
}

func desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("mesos_executor_task_"+name, help, []string{"task_id"}, nil)
}

var (
	cpuUserDesc      = desc("cpu_user_seconds_total", "CPU time in user mode of the task's container, from its cgroup.")
	cpuSystemDesc    = desc("cpu_system_seconds_total", "CPU time in kernel mode of the task's container, from its cgroup.")
	cpuPeriodsDesc   = desc("cpu_periods_total", "CFS enforcement periods of the task's container (with a CPU quota).")
	cpuThrottledDesc = desc("cpu_throttled_periods_total", "CFS periods in which the task's container was throttled.")
	cpuThrotSecDesc  = desc("cpu_throttled_seconds_total", "Time the task's container was throttled by its CPU quota.")
	memDesc          = desc("memory_bytes", "Memory charged to the task's container now.")
	memPeakDesc      = desc("memory_peak_bytes", "Highest memory charged to the task's container.")
	memCacheDesc     = desc("memory_cache_bytes", "Page cache charged to the task's container.")
	memRSSDesc       = desc("memory_rss_bytes", "Anonymous memory (RSS) of the task's container.")
	memLimitDesc     = desc("memory_limit_bytes", "Hard memory limit of the task's container (absent when unlimited).")
	pidsDesc         = desc("pids", "Processes and threads in the task's container.")
	pidsLimitDesc    = desc("pids_limit", "Pids limit of the task's container (absent when unlimited).")
	oomKillsDesc     = desc("oom_kills_total", "Processes of the task's container killed by the OOM killer.")
)

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cpuUserDesc, cpuSystemDesc, cpuPeriodsDesc, cpuThrottledDesc, cpuThrotSecDesc,
		memDesc, memPeakDesc, memCacheDesc, memRSSDesc, memLimitDesc, pidsDesc, pidsLimitDesc, oomKillsDesc} {
		ch <- d
	}
}

// Collect reads the listed tasks' stats (cached for the reader's TTL).
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	refs := c.tasks()
	stats := c.Stats(refs)
	for _, t := range refs {
		s, ok := stats[t.ContainerID]
		if !ok {
			continue
		}
		counter := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, t.TaskID)
		}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, t.TaskID)
		}
		counter(cpuUserDesc, s.CPUUserSeconds)
		counter(cpuSystemDesc, s.CPUSystemSeconds)
		counter(cpuPeriodsDesc, float64(s.CPUPeriods))
		counter(cpuThrottledDesc, float64(s.CPUThrottledPeriods))
		counter(cpuThrotSecDesc, s.CPUThrottledSeconds)
		gauge(memDesc, float64(s.MemoryBytes))
		gauge(memPeakDesc, float64(s.MemoryPeakBytes))
		gauge(memCacheDesc, float64(s.MemoryCacheBytes))
		gauge(memRSSDesc, float64(s.MemoryRSSBytes))
		if s.MemoryLimitBytes > 0 {
			gauge(memLimitDesc, float64(s.MemoryLimitBytes))
		}
		gauge(pidsDesc, float64(s.Pids))
		if s.PidsLimit > 0 {
			gauge(pidsLimitDesc, float64(s.PidsLimit))
		}
		counter(oomKillsDesc, float64(s.OOMKills))
	}
}

// Stats reads the stats of every task in refs (all running tasks: GET /state
// and the scrape use it) through the cache, keyed by container id, and logs
// new OOM kills in them.
func (c *Collector) Stats(refs []TaskRef) map[string]Stats {
	ids := make([]string, 0, len(refs))
	for _, t := range refs {
		ids = append(ids, t.ContainerID)
	}
	stats := c.r.ReadMany(ids)
	for _, t := range refs {
		if s, ok := stats[t.ContainerID]; ok {
			c.noteOOM(t, s)
		}
	}
	c.prune(ids)
	return stats
}

// Reader is the collector's stats reader.
func (c *Collector) Reader() *Reader { return c.r }

func (c *Collector) noteOOM(t TaskRef, s Stats) {
	c.mu.Lock()
	prev := c.oomSeen[t.ContainerID]
	if s.OOMKills > prev {
		c.oomSeen[t.ContainerID] = s.OOMKills
	}
	c.mu.Unlock()
	if s.OOMKills > prev && c.log != nil {
		c.log.WithFields(logrus.Fields{"task_id": t.TaskID, "container_id": t.ContainerID, "oom_kills": s.OOMKills,
			"memory_limit_bytes": s.MemoryLimitBytes, "memory_peak_bytes": s.MemoryPeakBytes}).
			Warn("the OOM killer killed a process in the task's container")
	}
}

// prune forgets OOM counts of containers no longer listed.
func (c *Collector) prune(ids []string) {
	want := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		want[id] = struct{}{}
	}
	c.mu.Lock()
	for id := range c.oomSeen {
		if _, ok := want[id]; !ok {
			delete(c.oomSeen, id)
		}
	}
	c.mu.Unlock()
}
