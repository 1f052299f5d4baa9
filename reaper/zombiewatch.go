package reaper

import (
	"context"
	"io"
	"maps"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

// Defaults for the zero values of WatchConfig.
const (
	DefaultWatchInterval   = 30 * time.Second
	DefaultZombieThreshold = 10
)

// WatchConfig configures a ZombieWatch. Zero values mean the documented
// defaults.
type WatchConfig struct {
	// Interval between two scans of /proc. Default DefaultWatchInterval.
	Interval time.Duration
	// Threshold: a task with more zombies than this gets a warning in the
	// log, once each time it goes above. Default DefaultZombieThreshold.
	Threshold int
	// ProcRoot is the proc filesystem to read. Default DefaultProcRoot.
	ProcRoot string
}

// ZombieWatch counts the zombies in every task's container at an interval
// (see CountZombies) and warns when a task has too many.
type ZombieWatch struct {
	cfg  WatchConfig
	log  *logrus.Entry
	pids func() map[string]int

	// mu guards everything that follows.
	mu     sync.Mutex
	counts map[string]int
	// above holds the tasks that were over the threshold at the last scan,
	// so that a task is warned about once per crossing, not every scan.
	above map[string]bool
	// failing is set after a failed scan, so that a persistent failure is
	// logged once.
	failing bool
}

// NewZombieWatch returns a watch over the tasks that pids reports: it is
// called once per scan and returns each running task's container init pid
// (its State.Pid on the host), keyed by task id. A nil log discards.
func NewZombieWatch(cfg WatchConfig, log *logrus.Entry, pids func() map[string]int) *ZombieWatch {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultWatchInterval
	}
	if cfg.Threshold <= 0 {
		cfg.Threshold = DefaultZombieThreshold
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = DefaultProcRoot
	}
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = logrus.NewEntry(l)
	}
	return &ZombieWatch{
		cfg:    cfg,
		log:    log,
		pids:   pids,
		counts: map[string]int{},
		above:  map[string]bool{},
	}
}

// Run scans at once and then every Interval until ctx ends; it returns nil
// then.
func (w *ZombieWatch) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			w.scan()
			timer.Reset(w.cfg.Interval)
		}
	}
}

// Counts returns the zombie count of each task at the last scan. Tasks that
// were not running then, or whose PID namespace could not be read, are
// absent.
func (w *ZombieWatch) Counts() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.counts)
}

// scan counts once, stores the counts and logs the crossings.
func (w *ZombieWatch) scan() {
	counts, err := CountZombies(w.cfg.ProcRoot, w.pids())
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if !w.failing {
			w.log.WithError(err).Warn("cannot count zombie processes in task containers")
		}
		w.failing = true
		return
	}
	w.failing = false
	w.counts = counts
	for id, n := range counts {
		switch {
		case n > w.cfg.Threshold && !w.above[id]:
			w.above[id] = true
			w.log.WithFields(logrus.Fields{"task_id": id, "zombies": n, "threshold": w.cfg.Threshold}).
				Warn("zombie processes are piling up in the task's container: its PID 1 does not reap its children (docker.init=false?)")
		case n <= w.cfg.Threshold && w.above[id]:
			delete(w.above, id)
			w.log.WithFields(logrus.Fields{"task_id": id, "zombies": n, "threshold": w.cfg.Threshold}).
				Info("zombie processes in the task's container are back under the threshold")
		}
	}
	for id := range w.above {
		if _, ok := counts[id]; !ok {
			delete(w.above, id)
		}
	}
}

var (
	taskZombiesDesc = prometheus.NewDesc(metricsNamespace+"_task_zombies",
		"Zombie processes in a running task's container at the last scan.", []string{"task_id"}, nil)
	zombiesDesc = prometheus.NewDesc(metricsNamespace+"_zombies",
		"Zombie processes in all running task containers at the last scan.", nil, nil)
)

// Collectors returns the watch's Prometheus metrics, read at scrape time from
// the last scan: mesos_executor_zombies (all tasks) and
// mesos_executor_task_zombies{task_id}, one series per running task only, so
// series go away with their tasks.
func (w *ZombieWatch) Collectors() []prometheus.Collector {
	return []prometheus.Collector{zombieCollector{w}}
}

type zombieCollector struct{ w *ZombieWatch }

func (c zombieCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- taskZombiesDesc
	ch <- zombiesDesc
}

func (c zombieCollector) Collect(ch chan<- prometheus.Metric) {
	total := 0
	for id, n := range c.w.Counts() {
		total += n
		ch <- prometheus.MustNewConstMetric(taskZombiesDesc, prometheus.GaugeValue, float64(n), id)
	}
	ch <- prometheus.MustNewConstMetric(zombiesDesc, prometheus.GaugeValue, float64(total))
}
