package cleanup

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/containerd"
)

// SweeperAPI is the part of the Docker adapter the sweep uses;
// *containerd.Client implements it.
type SweeperAPI interface {
	List(ctx context.Context, labels map[string]string, all bool) ([]containerd.Summary, error)
}

// TaskHistory is what the sandbox sweep needs from the task manager.
type TaskHistory interface {
	// FinishedTasks returns when each terminal task the manager knows of
	// finished. It must be safe to call from another goroutine.
	FinishedTasks() map[string]time.Time
}

// Defaults for the zero values of SweeperConfig.
const (
	DefaultSweepInterval    = 5 * time.Minute
	DefaultSweepDelay       = time.Minute
	DefaultCreatedGrace     = 5 * time.Minute
	DefaultRemoveDelay      = time.Minute
	DefaultSandboxRetention = 24 * time.Hour
)

// SweeperConfig configures a Sweeper. Zero values mean the documented
// defaults.
type SweeperConfig struct {
	// FrameworkID, ExecutorID and Instance identify this executor's own
	// containers (containerd.LabelFramework, LabelExecutor, LabelInstance).
	FrameworkID string
	ExecutorID  string
	Instance    string

	// Interval between sweeps; default 5m. The first sweep runs after
	// InitialDelay, default 1m (the start-up sweep of earlier instances
	// has just run).
	Interval     time.Duration
	InitialDelay time.Duration
	// CreatedGrace is how long a created, never started container is left
	// alone: the executor's own create-then-start window. Default 5m.
	CreatedGrace time.Duration
	// RemoveDelay is the notBefore the sweep gives a container it queues,
	// so that a container that has only just exited keeps its exit record
	// and logs until the task manager has reported it. Use the executor's
	// remove delay; default 1m.
	RemoveDelay time.Duration

	// SandboxRoot is the executor's sandbox ($MESOS_SANDBOX); task
	// directories are SandboxRoot/tasks/<task_id>. "" turns the sandbox
	// sweep off.
	SandboxRoot string
	// SandboxRetention is how long a finished task's directory (its logs)
	// is kept; default 24h.
	SandboxRetention time.Duration
	// Tasks, when set, gives the finish time of the manager's tasks. Task
	// directories it does not know are judged by their newest mtime.
	Tasks TaskHistory

	// RemoveOrphans queues containers of other executors that are proven
	// dead for removal (with force). Off by default: they are only
	// reported. Containers of an earlier instance of this same executor are
	// always queued, as at start.
	RemoveOrphans bool
	// OrphanLabels narrows the orphan scan to containers that also carry
	// these labels (e.g. one framework id); nil scans every container with
	// the project's labels.
	OrphanLabels map[string]string
	// ProcRoot is where /proc is mounted; default /proc.
	ProcRoot string

	// Clock is the time source; nil means the wall clock.
	Clock Clock
}

// Orphan is a container whose executor is gone.
type Orphan struct {
	ContainerID string
	Name        string
	TaskID      string
	FrameworkID string
	ExecutorID  string
	Instance    string
	State       string
	Created     time.Time
	// Reason says why its executor is considered dead.
	Reason string
	// Queued is set when the sweep queued it for removal.
	Queued bool
}

// SweepReport is what one sweep did.
type SweepReport struct {
	// Requeued lists the containers of this executor that the sweep
	// queued because the queue had lost them.
	Requeued []string
	// Sandboxes lists the task ids whose sandbox directories were removed.
	Sandboxes []string
	// Orphans lists the containers of dead executors seen.
	Orphans []Orphan
	// LiveInstances lists other live instances of this same executor
	// (same framework and executor ids) whose containers were left alone.
	LiveInstances []LiveInstance
}

// SweeperStats is a snapshot for /state and /metrics.
type SweeperStats struct {
	Sweeps           uint64
	LastSweep        time.Time
	Requeued         uint64
	SandboxesRemoved uint64
	// Orphans are those of the last sweep.
	Orphans []Orphan
	// LiveInstances are the other live instances of this executor the
	// last sweep saw.
	LiveInstances []LiveInstance
	LastError     string
}

// Sweeper periodically finds what the removal queue lost, removes old task
// sandboxes, and reports (optionally removes) containers of dead executors.
// Create it with NewSweeper.
type Sweeper struct {
	cfg   SweeperConfig
	d     SweeperAPI
	rm    *Remover
	log   *logrus.Entry
	clock Clock
	live  Liveness

	// mu guards everything that follows.
	mu       sync.Mutex
	stats    SweeperStats
	reported map[string]bool // orphans already logged
	// liveReported holds the other live instances already logged.
	liveReported map[string]bool
}

// NewSweeper returns a Sweeper that queues removals on rm.
func NewSweeper(cfg SweeperConfig, d SweeperAPI, rm *Remover, log *logrus.Entry) *Sweeper {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultSweepInterval
	}
	if cfg.InitialDelay <= 0 {
		cfg.InitialDelay = DefaultSweepDelay
	}
	if cfg.CreatedGrace <= 0 {
		cfg.CreatedGrace = DefaultCreatedGrace
	}
	if cfg.RemoveDelay <= 0 {
		cfg.RemoveDelay = DefaultRemoveDelay
	}
	if cfg.SandboxRetention <= 0 {
		cfg.SandboxRetention = DefaultSandboxRetention
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = DefaultProcRoot
	}
	if cfg.Clock == nil {
		cfg.Clock = wallClock{}
	}
	return &Sweeper{
		cfg: cfg, d: d, rm: rm, log: log, clock: cfg.Clock,
		live:         Liveness{ProcRoot: cfg.ProcRoot, Instance: cfg.Instance},
		reported:     map[string]bool{},
		liveReported: map[string]bool{},
	}
}

// Run sweeps after InitialDelay and then every Interval until ctx ends; then
// it returns nil. A failed sweep is logged and the next one runs on time.
func (s *Sweeper) Run(ctx context.Context) error {
	return runEvery(ctx, s.clock, s.cfg.InitialDelay, s.cfg.Interval, func(ctx context.Context) error {
		_, err := s.Sweep(ctx)
		return err
	}, s.log, "cleanup sweep")
}

// Sweep runs one sweep now.
func (s *Sweeper) Sweep(ctx context.Context) (SweepReport, error) {
	var rep SweepReport
	var errs []error
	now := s.clock.Now()

	mine, err := s.d.List(ctx, map[string]string{
		containerd.LabelFramework: s.cfg.FrameworkID,
		containerd.LabelExecutor:  s.cfg.ExecutorID,
	}, true)
	if err != nil {
		errs = append(errs, fmt.Errorf("list own containers: %w", err))
	} else {
		rep.Requeued = s.requeue(mine, now)
		if s.cfg.SandboxRoot != "" {
			var serr error
			rep.Sandboxes, serr = s.sweepSandboxes(mine, now)
			errs = append(errs, serr)
		}
	}

	orphans, live, err := s.orphans(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	rep.Orphans, rep.LiveInstances = orphans, live

	err = errors.Join(errs...)
	s.mu.Lock()
	s.stats.Sweeps++
	s.stats.LastSweep = now
	s.stats.Requeued += uint64(len(rep.Requeued))
	s.stats.SandboxesRemoved += uint64(len(rep.Sandboxes))
	s.stats.Orphans = orphans
	s.stats.LiveInstances = live
	s.stats.LastError = ""
	if err != nil {
		s.stats.LastError = err.Error()
	}
	s.mu.Unlock()
	return rep, err
}

// requeue queues this instance's containers that are finished (exited,
// dead) or were created and never started within the grace, unless queued.
func (s *Sweeper) requeue(list []containerd.Summary, now time.Time) []string {
	var out []string
	for _, c := range list {
		if c.Labels[containerd.LabelInstance] != s.cfg.Instance {
			continue // an earlier instance's: see orphans
		}
		switch c.State {
		case "exited", "dead":
		case "created":
			if now.Sub(createdAt(c.Labels, c.Created)) < s.cfg.CreatedGrace {
				continue // maybe mid-launch
			}
		default:
			continue
		}
		if s.rm.Queued(c.ID) {
			continue
		}
		task := c.Labels[containerd.LabelTask]
		s.log.WithFields(logrus.Fields{"container_id": c.ID, "task_id": task, "state": c.State}).
			Info("sweep found a finished container the removal queue did not hold; queued it")
		s.rm.Enqueue(c.ID, task, now.Add(s.cfg.RemoveDelay))
		out = append(out, c.ID)
	}
	return out
}

// orphans finds containers of dead executors, logs each once, and queues
// those it may remove. It also returns the other live instances of this
// same executor, whose containers it leaves alone.
func (s *Sweeper) orphans(ctx context.Context) ([]Orphan, []LiveInstance, error) {
	labels := map[string]string{containerd.LabelFramework: ""}
	maps.Copy(labels, s.cfg.OrphanLabels)
	list, err := s.d.List(ctx, labels, true)
	if err != nil {
		return nil, nil, fmt.Errorf("list containers of other executors: %w", err)
	}
	var out []Orphan
	seen := map[string]bool{}
	siblings := liveInstances{}
	for _, c := range list {
		fw, ex, inst := c.Labels[containerd.LabelFramework], c.Labels[containerd.LabelExecutor], c.Labels[containerd.LabelInstance]
		if ex == "" || fw == s.cfg.FrameworkID && ex == s.cfg.ExecutorID && inst == s.cfg.Instance {
			continue
		}
		ownEarlier := fw == s.cfg.FrameworkID && ex == s.cfg.ExecutorID
		dead, why := instanceVerdict(s.live, c)
		if !dead {
			if ownEarlier {
				siblings.add(c, why)
			}
			continue
		}
		o := orphanFrom(c, why)
		if s.cfg.RemoveOrphans || ownEarlier {
			s.rm.enqueueOrphan(c.ID, o.TaskID, s.orphanCheck)
			o.Queued = true
		}
		seen[c.ID] = true
		out = append(out, o)
	}
	s.mu.Lock()
	for _, o := range out {
		if s.reported[o.ContainerID] {
			continue
		}
		s.reported[o.ContainerID] = true
		l := s.log.WithFields(logrus.Fields{
			"container_id": o.ContainerID, "task_id": o.TaskID, "owner_framework_id": o.FrameworkID,
			"owner_executor_id": o.ExecutorID, "owner_instance": o.Instance, "state": o.State, "reason": o.Reason,
		})
		if o.Queued {
			l.Warn("container of a dead executor found; queued for removal")
		} else {
			l.Warn("container of a dead executor found; reported only (removing orphans is off)")
		}
	}
	for id := range s.reported {
		if !seen[id] {
			delete(s.reported, id)
		}
	}
	live := siblings.list()
	for _, li := range live {
		if s.liveReported[li.Instance] {
			continue
		}
		s.liveReported[li.Instance] = true
		s.log.WithFields(logrus.Fields{
			"other_instance": li.Instance, "other_pid": li.PID, "containers": li.Containers, "reason": li.Why,
		}).Warn("another live instance of this executor shares the Docker daemon; its containers are left alone")
	}
	for inst := range s.liveReported {
		if siblings[inst] == nil {
			delete(s.liveReported, inst)
		}
	}
	s.mu.Unlock()
	return out, live, nil
}

// orphanCheck is repeated on the inspect right before an orphan's removal:
// the labels must still be there and the executor still dead.
func (s *Sweeper) orphanCheck(info containerd.StorageInfo) error {
	return checkOrphan(s.live, info)
}

func checkOrphan(l Liveness, info containerd.StorageInfo) error {
	if info.Labels[containerd.LabelFramework] == "" || info.Labels[containerd.LabelExecutor] == "" {
		return fmt.Errorf("no ownership labels: %w", ErrNotOwned)
	}
	if dead, why := instanceVerdict(l, containerd.Summary{ID: info.ID, Labels: info.Labels, Created: info.Created}); !dead {
		return fmt.Errorf("its executor is not proven dead (%s): %w", why, ErrNotOwned)
	}
	return nil
}

func orphanFrom(c containerd.Summary, why string) Orphan {
	o := Orphan{
		ContainerID: c.ID,
		TaskID:      c.Labels[containerd.LabelTask],
		FrameworkID: c.Labels[containerd.LabelFramework],
		ExecutorID:  c.Labels[containerd.LabelExecutor],
		Instance:    c.Labels[containerd.LabelInstance],
		State:       c.State,
		Created:     createdAt(c.Labels, c.Created),
		Reason:      why,
	}
	if len(c.Names) > 0 {
		o.Name = c.Names[0]
	}
	return o
}

// sweepSandboxes removes task directories of tasks finished more than the
// retention ago. A directory is kept while any container of this executor
// is labelled with its task (it is bind-mounted there, and the task is live
// or its removal pending). Finish times come from the task manager when it
// knows the task; otherwise the newest mtime of the directory and the files
// in it stands in (the log files are written to while the task runs).
func (s *Sweeper) sweepSandboxes(mine []containerd.Summary, now time.Time) ([]string, error) {
	dir := filepath.Join(s.cfg.SandboxRoot, "tasks")
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("sandbox sweep: %w", err)
	}
	withContainer := make(map[string]bool, len(mine))
	for _, c := range mine {
		withContainer[c.Labels[containerd.LabelTask]] = true
	}
	var finished map[string]time.Time
	if s.cfg.Tasks != nil {
		finished = s.cfg.Tasks.FinishedTasks()
	}
	var removed []string
	var errs []error
	for _, ent := range ents {
		// Symlinks are not followed: a task directory is always a real one.
		if !ent.IsDir() || withContainer[ent.Name()] {
			continue
		}
		id, path := ent.Name(), filepath.Join(dir, ent.Name())
		since, known := finished[id]
		if !known {
			since = newestMtime(path)
			if since.IsZero() {
				continue
			}
		}
		if now.Sub(since) < s.cfg.SandboxRetention {
			continue
		}
		if err := os.RemoveAll(path); err != nil {
			errs = append(errs, fmt.Errorf("remove sandbox of task %s: %w", id, err))
			continue
		}
		s.log.WithFields(logrus.Fields{"task_id": id, "finished_ago": now.Sub(since).Round(time.Minute).String()}).
			Info("removed the sandbox directory of a task finished longer ago than the retention")
		removed = append(removed, id)
	}
	sort.Strings(removed)
	return removed, errors.Join(errs...)
}

func newestMtime(dir string) time.Time {
	fi, err := os.Lstat(dir)
	if err != nil {
		return time.Time{}
	}
	newest := fi.ModTime()
	ents, err := os.ReadDir(dir)
	if err != nil {
		return newest
	}
	for _, e := range ents {
		if i, err := e.Info(); err == nil && i.ModTime().After(newest) {
			newest = i.ModTime()
		}
	}
	return newest
}

// Stats returns a snapshot.
func (s *Sweeper) Stats() SweeperStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Orphans = slices.Clone(st.Orphans)
	st.LiveInstances = slices.Clone(st.LiveInstances)
	return st
}

// Collectors returns the sweep's Prometheus metrics, read at scrape time.
func (s *Sweeper) Collectors() []prometheus.Collector {
	const ns, sub = "mesos_executor", "cleanup"
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "sweeps_total",
			Help: "Periodic cleanup sweeps run."},
			func() float64 { return float64(s.Stats().Sweeps) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "sweep_requeued_total",
			Help: "Finished containers the sweep found outside the removal queue and queued."},
			func() float64 { return float64(s.Stats().Requeued) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "sandboxes_removed_total",
			Help: "Task sandbox directories removed after the retention period."},
			func() float64 { return float64(s.Stats().SandboxesRemoved) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "orphan_containers",
			Help: "Containers of dead executors seen by the last sweep."},
			func() float64 { return float64(len(s.Stats().Orphans)) }),
	}
}
