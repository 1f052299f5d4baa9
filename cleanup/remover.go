package cleanup

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/internal/backoff"
)

// RemoverAPI is the part of the Docker adapter the removal queue uses;
// *containerd.Client implements it.
type RemoverAPI interface {
	PingDaemon(ctx context.Context) error
	InspectStorage(ctx context.Context, id string) (containerd.StorageInfo, error)
	RemoveContainer(ctx context.Context, id string, force bool) error
	RemoveVolume(ctx context.Context, name string) error
}

// Defaults for the zero values of RemoverConfig.
const (
	DefaultRemoveWorkers  = 3
	DefaultQueueCapacity  = 1024
	DefaultBackoffBase    = time.Second
	DefaultBackoffMax     = 5 * time.Minute
	DefaultBackoffJitter  = 0.2
	DefaultMaxAttempts    = 10
	DefaultMaxFailingAge  = 30 * time.Minute
	DefaultStuckRetry     = 30 * time.Minute
	DefaultPausePoll      = 5 * time.Second
	DefaultDockerRootDir  = "/var/lib/docker"
	DefaultProcRoot       = "/proc"
	maxLastErrorLen       = 512
	maxStuckInStats       = 50
	defaultDrainRoundWait = 500 * time.Millisecond
)

// RemoverConfig configures a Remover. Zero values mean the documented
// defaults.
type RemoverConfig struct {
	// FrameworkID and ExecutorID are the ownership labels a container must
	// carry (containerd.LabelFramework, containerd.LabelExecutor) before
	// the queue removes it. Both are required.
	FrameworkID string
	ExecutorID  string

	// Workers is how many removals run at once. Default 3: removals are
	// slow on a busy daemon (they take its container lock and delete a
	// filesystem), and the executor's launches must not queue behind them.
	Workers int
	// Capacity bounds the queue. When it is full, the oldest entry that is
	// already failing is dropped to make room; with none failing the new
	// entry is dropped. Either way the periodic sweep finds the container
	// again. Default 1024.
	Capacity int

	// BackoffBase and BackoffMax bound the wait after a failed attempt:
	// base, doubled per failure, at most max, less a random fraction of up
	// to BackoffJitter (so executors that failed together do not retry in
	// step). Defaults 1s, 5m, 0.2.
	BackoffBase   time.Duration
	BackoffMax    time.Duration
	BackoffJitter float64
	// A removal is reported stuck after MaxAttempts failed attempts or
	// MaxFailingAge since its first failure, whichever comes first. A stuck
	// removal stays queued and is retried every StuckRetry. Defaults 10,
	// 30m, 30m.
	MaxAttempts   int
	MaxFailingAge time.Duration
	StuckRetry    time.Duration
	// PausePoll is how often a queue paused by an unreachable daemon pings
	// it. Default 5s.
	PausePoll time.Duration

	// DockerRootDir is the daemon's data root (DaemonInfo.DockerRootDir),
	// where the containerd snapshotter and the shm mounts live. Default
	// /var/lib/docker.
	DockerRootDir string
	// ProcRoot is where /proc is mounted; tests point it at a fake tree.
	ProcRoot string

	// OnHolders, when set, receives the processes found holding a
	// container's mounts after a busy removal, so that the task manager
	// can add them to the task's message. It is called from a worker and
	// must not block.
	OnHolders func(containerID, taskID string, holders []Holder)

	// Clock is the time source; nil means the wall clock.
	Clock Clock
}

// RemoverStats is a snapshot of the queue for /state and /metrics.
type RemoverStats struct {
	Depth    int  // entries queued, including stuck and in-flight ones
	InFlight int  // removals being attempted now
	Paused   bool // the daemon is unreachable; nothing is attempted
	Retries  uint64
	Removed  uint64
	Dropped  uint64 // entries dropped because the queue was full
	Refused  uint64 // containers without this executor's labels
	// OldestStuck is how long the oldest stuck removal has been failing.
	OldestStuck time.Duration
	// StuckCount counts the stuck removals; Stuck lists them,
	// longest-failing first (at most 50).
	StuckCount int
	Stuck      []StuckRemoval
}

// StuckRemoval is a removal that failed too often or for too long.
type StuckRemoval struct {
	ContainerID string
	TaskID      string
	Attempts    int
	FailingFor  time.Duration
	LastError   string
	// Holders are the processes found holding the container's mounts
	// in other mount namespaces, from the last scan.
	Holders []Holder
}

// Remover is the executor's bounded queue of container removals. Enqueue
// adds a container; Run's workers remove it once its time has come, after
// checking its ownership labels, and retry filesystem errors with backoff.
// Create it with NewRemover.
type Remover struct {
	cfg   RemoverConfig
	d     RemoverAPI
	log   *logrus.Entry
	clock Clock
	// rand returns a number in [0, 1) for the jitter; tests fix it.
	rand func() float64

	// mu guards everything that follows.
	mu      sync.Mutex
	entries map[string]*removal
	// changed is closed and replaced whenever an entry becomes ready
	// sooner than before, or the queue is unpaused, to wake idle workers.
	changed chan struct{}
	paused  bool
	probing bool // a worker is pinging the paused daemon
	retries uint64
	removed uint64
	dropped uint64
	refused uint64
}

// removal is one queued container. It is guarded by Remover.mu, except that
// the worker holding it (inflight) reads id, taskID, force and check
// without the lock: nothing else writes them while it is in flight.
type removal struct {
	id        string
	taskID    string
	notBefore time.Time // not before the task's remove delay
	retryAt   time.Time // not before the backoff after a failure
	attempts  int       // failed attempts
	firstFail time.Time
	lastErr   string
	holders   []Holder
	scanned   bool // holders looked for since the last stuck transition
	stuck     bool
	force     bool
	inflight  bool
	// check, when set, replaces the ownership check (orphans of dead
	// executors carry another executor's labels).
	check func(containerd.StorageInfo) error
}

func (e *removal) due() time.Time {
	if e.retryAt.After(e.notBefore) {
		return e.retryAt
	}
	return e.notBefore
}

// NewRemover returns a Remover; nothing is removed until Run (or Drain).
func NewRemover(cfg RemoverConfig, d RemoverAPI, log *logrus.Entry) *Remover {
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultRemoveWorkers
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = DefaultQueueCapacity
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = DefaultBackoffBase
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.BackoffMax < cfg.BackoffBase {
		cfg.BackoffMax = cfg.BackoffBase
	}
	if cfg.BackoffJitter <= 0 || cfg.BackoffJitter >= 1 {
		cfg.BackoffJitter = DefaultBackoffJitter
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.MaxFailingAge <= 0 {
		cfg.MaxFailingAge = DefaultMaxFailingAge
	}
	if cfg.StuckRetry <= 0 {
		cfg.StuckRetry = DefaultStuckRetry
	}
	if cfg.PausePoll <= 0 {
		cfg.PausePoll = DefaultPausePoll
	}
	if cfg.DockerRootDir == "" {
		cfg.DockerRootDir = DefaultDockerRootDir
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = DefaultProcRoot
	}
	if cfg.Clock == nil {
		cfg.Clock = wallClock{}
	}
	return &Remover{
		cfg:     cfg,
		d:       d,
		log:     log,
		clock:   cfg.Clock,
		rand:    rand.Float64,
		entries: map[string]*removal{},
		changed: make(chan struct{}),
	}
}

// Enqueue asks for the container's removal, not before notBefore. The task
// manager calls it once the task's terminal update is sent, with notBefore =
// now + the remove delay, so the exit is reported (and the logs stay
// readable) before anything is removed. A container already queued keeps its
// place; its notBefore moves to the later of the two.
func (r *Remover) Enqueue(containerID, taskID string, notBefore time.Time) {
	r.enqueue(&removal{id: containerID, taskID: taskID, notBefore: notBefore})
}

// enqueueOrphan queues a container of another, dead executor; check is
// repeated on the fresh inspect right before the removal.
func (r *Remover) enqueueOrphan(containerID, taskID string, check func(containerd.StorageInfo) error) {
	r.enqueue(&removal{id: containerID, taskID: taskID, notBefore: r.clock.Now(), force: true, check: check})
}

func (r *Remover) enqueue(n *removal) {
	if n.id == "" {
		return
	}
	log := r.log.WithFields(logrus.Fields{"container_id": n.id, "task_id": n.taskID})
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.entries[n.id]; ok {
		if n.notBefore.After(e.notBefore) {
			e.notBefore = n.notBefore
		}
		if e.taskID == "" && !e.inflight { // the worker reads it unlocked
			e.taskID = n.taskID
		}
		return
	}
	if len(r.entries) >= r.cfg.Capacity {
		victim := r.oldestFailingLocked()
		r.dropped++
		if victim == nil {
			log.WithField("capacity", r.cfg.Capacity).Warn("removal queue full; dropping this removal, the periodic sweep will find the container again")
			return
		}
		delete(r.entries, victim.id)
		log.WithFields(logrus.Fields{"dropped_container_id": victim.id, "dropped_task_id": victim.taskID, "capacity": r.cfg.Capacity}).
			Warn("removal queue full; dropped the oldest failing removal, the periodic sweep will find it again")
	}
	r.entries[n.id] = n
	r.wakeLocked()
}

// oldestFailingLocked returns the failing, not in-flight entry that failed
// first, or nil. r.mu must be held.
func (r *Remover) oldestFailingLocked() *removal {
	var v *removal
	for _, e := range r.entries {
		if e.inflight || e.attempts == 0 {
			continue
		}
		if v == nil || e.firstFail.Before(v.firstFail) {
			v = e
		}
	}
	return v
}

func (r *Remover) wakeLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Queued reports whether the container is in the queue.
func (r *Remover) Queued(containerID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.entries[containerID]
	return ok
}

// Run removes queued containers with the configured number of workers
// until ctx ends; then it returns nil. Entries still queued stay queued (see
// Drain).
func (r *Remover) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.worker(ctx)
		}()
	}
	wg.Wait()
	return nil
}

func (r *Remover) worker(ctx context.Context) {
	for ctx.Err() == nil {
		e, wait, changed, probe := r.next()
		if probe {
			r.probe(ctx)
			continue
		}
		if e != nil {
			r.attempt(ctx, e, false)
			continue
		}
		var timerC <-chan time.Time
		var t Timer
		if wait > 0 {
			t = r.clock.NewTimer(wait)
			timerC = t.C()
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-timerC:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// next picks the entry that has been due the longest and marks it in
// flight. Without one it returns how long until the next one is due (0:
// none is waiting) and the channel that signals a change. probe is set
// when the queue is paused and no worker is pinging the daemon yet; the
// caller is then that worker.
func (r *Remover) next() (e *removal, wait time.Duration, changed <-chan struct{}, probe bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.paused {
		if !r.probing {
			r.probing = true
			return nil, 0, r.changed, true
		}
		return nil, 0, r.changed, false
	}
	now := r.clock.Now()
	var soonest time.Time
	for _, c := range r.entries {
		if c.inflight {
			continue
		}
		d := c.due()
		if !d.After(now) {
			if e == nil || d.Before(e.due()) || d.Equal(e.due()) && c.id < e.id {
				e = c
			}
			continue
		}
		if soonest.IsZero() || d.Before(soonest) {
			soonest = d
		}
	}
	if e != nil {
		e.inflight = true
		return e, 0, nil, false
	}
	if !soonest.IsZero() {
		wait = soonest.Sub(now)
	}
	return nil, wait, r.changed, false
}

// probe pings the daemon every PausePoll until it answers or ctx ends, then
// unpauses the queue. Only one worker probes; the others sleep on changed.
func (r *Remover) probe(ctx context.Context) {
	defer func() {
		r.mu.Lock()
		r.probing = false
		r.mu.Unlock()
	}()
	for {
		if !sleep(ctx.Done(), r.clock, r.cfg.PausePoll) {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, r.cfg.PausePoll)
		err := r.d.PingDaemon(pctx)
		cancel()
		if err == nil {
			r.mu.Lock()
			r.paused = false
			r.wakeLocked()
			r.mu.Unlock()
			r.log.Info("docker daemon answers again; removal queue resumed")
			return
		}
		if ctx.Err() != nil {
			return
		}
		r.log.WithError(err).Debug("docker daemon still unreachable; removal queue stays paused")
	}
}

// attempt makes one removal attempt for e, which the caller has marked in
// flight, and files the result. force is set by Drain.
func (r *Remover) attempt(ctx context.Context, e *removal, drain bool) outcome {
	log := r.log.WithFields(logrus.Fields{"container_id": e.id, "task_id": e.taskID})
	out, err, info := r.try(ctx, e, drain, log)
	if out == outDown {
		if ctx.Err() != nil {
			// Our own shutdown, not the daemon's: leave the entry as it was.
			r.release(e, func() {})
			return out
		}
		pctx, cancel := context.WithTimeout(ctx, r.cfg.PausePoll)
		perr := r.d.PingDaemon(pctx)
		cancel()
		if perr != nil && ctx.Err() == nil && !drain {
			r.release(e, func() {
				if !r.paused {
					r.paused = true
					log.WithError(err).Warn("docker daemon unreachable; removal queue paused until it answers")
				}
			})
			return out
		}
		out = outRetry
	}
	switch out {
	case outDone:
		r.done(ctx, e, info, log)
	case outRefused:
		r.release(e, func() {
			delete(r.entries, e.id)
			r.refused++
		})
		log.WithError(err).Error("refusing to remove a container without this executor's ownership labels")
	case outRunning:
		r.release(e, func() {
			e.force = true
			e.lastErr = truncate(err.Error())
			r.wakeLocked()
		})
		log.WithError(err).Warn("container of a finished task is still running; removing it with force")
	default:
		r.failed(e, out == outBusy, info, err, log)
	}
	return out
}

// try inspects, checks ownership and removes. info is the inspect result,
// when there was one.
func (r *Remover) try(ctx context.Context, e *removal, drain bool, log *logrus.Entry) (outcome, error, containerd.StorageInfo) {
	info, err := r.d.InspectStorage(ctx, e.id)
	if err != nil {
		out := classify(err)
		if out == outRunning || out == outBusy {
			out = outRetry
		}
		return out, err, containerd.StorageInfo{}
	}
	if err := r.owned(e, info); err != nil {
		return outRefused, err, info
	}
	err = r.d.RemoveContainer(ctx, e.id, e.force || drain)
	return classify(err), err, info
}

// owned checks the ownership labels on a fresh inspect, so that a container
// id that was reused, mistyped or handed in by a bug is never removed.
func (r *Remover) owned(e *removal, info containerd.StorageInfo) error {
	if e.check != nil {
		return e.check(info)
	}
	fw, ex := info.Labels[containerd.LabelFramework], info.Labels[containerd.LabelExecutor]
	if r.cfg.FrameworkID == "" || r.cfg.ExecutorID == "" || fw != r.cfg.FrameworkID || ex != r.cfg.ExecutorID {
		return fmt.Errorf("labels framework_id=%q executor_id=%q, want %q/%q: %w",
			fw, ex, r.cfg.FrameworkID, r.cfg.ExecutorID, ErrNotOwned)
	}
	return nil
}

// release clears e's in-flight mark and applies f, under the lock.
func (r *Remover) release(e *removal, f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.inflight = false
	f()
	r.wakeLocked()
}

func (r *Remover) done(ctx context.Context, e *removal, info containerd.StorageInfo, log *logrus.Entry) {
	r.mu.Lock()
	e.inflight = false
	delete(r.entries, e.id)
	r.removed++
	attempts := e.attempts
	r.mu.Unlock()
	if attempts > 0 {
		log.WithField("failed_attempts", attempts).Info("container removed after earlier failures")
	} else {
		log.Debug("container removed")
	}
	r.removeLeftVolumes(ctx, info, log)
}

// anonVolume matches the names Docker gives anonymous volumes.
var anonVolume = regexp.MustCompile(`^[0-9a-f]{64}$`)

// removeLeftVolumes removes anonymous volumes the container removal should
// have taken along: the daemon only logs a failure to remove one
// (daemon/mounts.go), so "container gone" does not prove "volume gone".
// Without force, so a volume another container shares stays.
func (r *Remover) removeLeftVolumes(ctx context.Context, info containerd.StorageInfo, log *logrus.Entry) {
	for _, v := range info.Volumes {
		if !anonVolume.MatchString(v) {
			continue
		}
		if err := r.d.RemoveVolume(ctx, v); err != nil && !containerd.IsConflict(err) {
			log.WithError(err).WithField("volume", v).Warn("anonymous volume left behind by the container removal")
		}
	}
}

// failed files a failed attempt: backoff, holder scan on busy, and the stuck
// transition.
func (r *Remover) failed(e *removal, busy bool, info containerd.StorageInfo, err error, log *logrus.Entry) {
	now := r.clock.Now()
	r.mu.Lock()
	if e.attempts == 0 {
		e.firstFail = now
	}
	e.attempts++
	r.retries++
	e.lastErr = truncate(err.Error())
	attempts, failingFor := e.attempts, now.Sub(e.firstFail)
	becameStuck := !e.stuck && (attempts >= r.cfg.MaxAttempts || failingFor >= r.cfg.MaxFailingAge)
	if becameStuck {
		e.stuck = true
		e.scanned = false
	}
	scan := busy && !e.scanned
	r.mu.Unlock()

	var holders []Holder
	if scan {
		var serr error
		holders, serr = FindHolders(r.cfg.ProcRoot, storageNeedles(info, e.id, r.cfg.DockerRootDir))
		if serr != nil {
			log.WithError(serr).Warn("cannot scan mount namespaces for processes holding the container's mounts")
		}
	}

	var wait time.Duration
	if e.stuck {
		wait = r.jittered(r.cfg.StuckRetry)
	} else {
		wait = r.backoff(attempts)
	}
	r.mu.Lock()
	e.inflight = false
	e.retryAt = now.Add(wait)
	if scan {
		e.scanned = true
		e.holders = holders
	}
	holders = e.holders
	r.wakeLocked()
	r.mu.Unlock()

	l := log.WithError(err).WithFields(logrus.Fields{"attempt": attempts, "retry_in": wait.Round(time.Millisecond).String()})
	if len(holders) > 0 {
		l = l.WithField("holders", formatHolders(holders))
	}
	switch {
	case becameStuck:
		l.WithField("failing_for", failingFor.Round(time.Second).String()).
			Error("container removal stuck; still retrying, see holders (never unmounted from here: they are in other mount namespaces)")
	case attempts == 1 || scan && len(holders) > 0:
		l.Warn("container removal failed; retrying with backoff")
	default:
		l.Debug("container removal failed again")
	}
	if scan && len(holders) > 0 && r.cfg.OnHolders != nil {
		r.cfg.OnHolders(e.id, e.taskID, slices.Clone(holders))
	}
}

// backoff returns the wait after the n-th failed attempt (n >= 1).
func (r *Remover) backoff(n int) time.Duration {
	return backoff.Delay(n, r.cfg.BackoffBase, r.cfg.BackoffMax, r.cfg.BackoffJitter, r.rand())
}

func (r *Remover) jittered(d time.Duration) time.Duration {
	return d - time.Duration(float64(d)*r.cfg.BackoffJitter*r.rand())
}

// Drain removes everything queued now, ignoring every entry's notBefore and
// backoff and using force (a task the shutdown reported killed may still be
// running), with up to Workers removals at once. It returns nil once the
// queue is empty, or ErrDrainIncomplete (with what is left) when ctx ends.
// It works whether or not Run is running; entries Run's workers hold are
// left to them. Call it at SHUTDOWN, after the terminal updates are sent,
// on a context detached from the cancelled root with its own deadline.
func (r *Remover) Drain(ctx context.Context) error {
	sem := make(chan struct{}, r.cfg.Workers)
	for {
		batch, changed := r.takeAll()
		if len(batch) == 0 {
			if changed == nil {
				return nil
			}
			select {
			case <-ctx.Done():
				return r.drainError()
			case <-changed:
			}
			continue
		}
		var wg sync.WaitGroup
		failed := false
		var fmu sync.Mutex
		for _, e := range batch {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if out := r.attempt(ctx, e, true); out != outDone && out != outRefused && out != outRunning {
					fmu.Lock()
					failed = true
					fmu.Unlock()
				}
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return r.drainError()
		}
		if failed && !sleep(ctx.Done(), r.clock, min(r.cfg.BackoffBase, defaultDrainRoundWait)) {
			return r.drainError()
		}
	}
}

// takeAll marks every entry not in flight as in flight and returns them.
// With none to take, changed is nil if the queue is empty, else the channel
// that signals the next change.
func (r *Remover) takeAll() ([]*removal, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var batch []*removal
	for _, e := range r.entries {
		if !e.inflight {
			e.inflight = true
			batch = append(batch, e)
		}
	}
	if len(batch) == 0 && len(r.entries) > 0 {
		return nil, r.changed
	}
	return batch, nil
}

func (r *Remover) drainError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	left := make([]string, 0, len(r.entries))
	for _, e := range r.entries {
		s := e.id
		if e.taskID != "" {
			s += " (task " + e.taskID + ")"
		}
		if e.lastErr != "" {
			s += ": " + e.lastErr
		}
		left = append(left, s)
	}
	sort.Strings(left)
	if len(left) == 0 {
		return nil
	}
	return fmt.Errorf("%d left: %s: %w", len(left), strings.Join(left, "; "), ErrDrainIncomplete)
}

// Stats returns a snapshot of the queue.
func (r *Remover) Stats() RemoverStats {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	s := RemoverStats{
		Depth: len(r.entries), Paused: r.paused,
		Retries: r.retries, Removed: r.removed, Dropped: r.dropped, Refused: r.refused,
	}
	for _, e := range r.entries {
		if e.inflight {
			s.InFlight++
		}
		if !e.stuck {
			continue
		}
		s.StuckCount++
		f := now.Sub(e.firstFail)
		s.OldestStuck = max(s.OldestStuck, f)
		s.Stuck = append(s.Stuck, StuckRemoval{
			ContainerID: e.id, TaskID: e.taskID, Attempts: e.attempts, FailingFor: f,
			LastError: e.lastErr, Holders: slices.Clone(e.holders),
		})
	}
	sort.Slice(s.Stuck, func(i, j int) bool {
		if s.Stuck[i].FailingFor != s.Stuck[j].FailingFor {
			return s.Stuck[i].FailingFor > s.Stuck[j].FailingFor
		}
		return s.Stuck[i].ContainerID < s.Stuck[j].ContainerID
	})
	if len(s.Stuck) > maxStuckInStats {
		s.Stuck = s.Stuck[:maxStuckInStats]
	}
	return s
}

// Holders returns the processes last found holding the container's mounts,
// if the container is queued and a busy removal triggered a scan.
func (r *Remover) Holders(containerID string) []Holder {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.entries[containerID]; ok {
		return slices.Clone(e.holders)
	}
	return nil
}

// Collectors returns the queue's Prometheus metrics, read at scrape time.
func (r *Remover) Collectors() []prometheus.Collector {
	const ns, sub = "mesos_executor", "cleanup"
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "removal_queue_depth",
			Help: "Container removals queued, including failing and stuck ones."},
			func() float64 { return float64(r.Stats().Depth) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "removal_retries_total",
			Help: "Failed container removal attempts that were retried."},
			func() float64 { return float64(r.Stats().Retries) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "containers_removed_total",
			Help: "Containers removed by the queue (or found already gone)."},
			func() float64 { return float64(r.Stats().Removed) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "removals_dropped_total",
			Help: "Removals dropped because the queue was full; the periodic sweep finds them again."},
			func() float64 { return float64(r.Stats().Dropped) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "removals_refused_total",
			Help: "Removals refused because the container lacked this executor's ownership labels."},
			func() float64 { return float64(r.Stats().Refused) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "removals_stuck",
			Help: "Removals that failed too often or for too long and are retried slowly."},
			func() float64 { return float64(r.Stats().StuckCount) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "removal_oldest_stuck_seconds",
			Help: "How long the oldest stuck container removal has been failing."},
			func() float64 { return r.Stats().OldestStuck.Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "removal_queue_paused",
			Help: "1 while the removal queue waits for an unreachable Docker daemon."},
			func() float64 {
				if r.Stats().Paused {
					return 1
				}
				return 0
			}),
	}
}

func truncate(s string) string {
	if len(s) <= maxLastErrorLen {
		return s
	}
	return s[:maxLastErrorLen] + "..."
}
