package task

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/health"
)

// Publisher takes status updates; the agent link implements it. Update must
// not block on the network; it returns the update's uuid, which the agent's
// ACKNOWLEDGED event names.
type Publisher interface {
	Update(mesos.TaskStatus) []byte
	Unacknowledged() int
}

// Config configures the Manager. Zero values mean the documented defaults.
type Config struct {
	Policy Policy
	// SandboxRoot is the executor's sandbox as it sees it (MESOS_SANDBOX);
	// task logs go to SandboxRoot/tasks/<task_id>/{stdout,stderr} and the
	// container's sandbox is SandboxRoot/tasks/<task_id>/sandbox.
	SandboxRoot string
	// HostSandboxRoot is the same directory as the Docker daemon sees it
	// (MESOS_DIRECTORY); task sandboxes are bind-mounted from here.
	HostSandboxRoot string
	Instance        string        // this executor process's random id
	BootID          string        // the host's boot id
	RemoveDelay     time.Duration // exit reported -> container removed; default 1m
	ShutdownGrace   time.Duration // MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD; default 5s
	IdleTimeout     time.Duration // 0: never exit while idle
	KillRetry       time.Duration // SIGKILL resend interval while unconfirmed; default 2s
	LogMaxBytes     int64         // per log file before rotation; default 10 MiB
	LogKeep         int           // rotated files kept; default 5
	// FactsTimeout bounds the inspects after a start that must give the
	// container's pid (and address); default 30s.
	FactsTimeout time.Duration
	// ReconcileInterval is how often every running task is checked against
	// Docker, for containers that vanished unseen; default 1m.
	ReconcileInterval time.Duration
	// FinishedKept and FinishedMaxAge bound the records of finished tasks
	// kept for /state and the sandbox sweep; defaults 1000 and 24h.
	FinishedKept   int
	FinishedMaxAge time.Duration
	// AckWait is how long a finished task whose updates are not all
	// acknowledged stays in the live table; the agent link keeps
	// resending them regardless. Default 10m.
	AckWait time.Duration
	// Gating runs gated launches (CNI networks, the operator's hooks); nil
	// runs none.
	Gating *Gating
	// Stats is the cgroup stats reader, whose last sample of a container
	// helps decide an OOM kill; nil when cgroup stats cannot be read.
	Stats CgroupStats
	// Health runs the tasks' health checks and generic checks; nil runs
	// none (tasks that ask for one still launch).
	Health HealthChecker
	// Remover removes finished tasks' containers; nil keeps them (tests).
	Remover Remover
	// ImageUsed, when set, is told the image of every task launched (for
	// image collection). It must not block.
	ImageUsed func(ref string)
}

// Remover removes a container once notBefore has passed; *cleanup.Remover
// implements it with retries, ownership checks and leaked-mount reports.
type Remover interface {
	Enqueue(containerID, taskID string, notBefore time.Time)
}

// HealthChecker runs health checks and generic checks; *health.Supervisor
// implements it. Reports arrive on other goroutines and are posted to the
// loop.
type HealthChecker interface {
	Start(t health.Target, spec *health.Spec, report func(health.Result))
	StartCheck(t health.Target, spec *health.CheckSpec, report func(taskID string, status mesos.CheckStatusInfo))
	Stop(taskID string)
}

// shutdownMargin is taken off the agent's shutdown grace period so that the
// terminal updates reach the agent before it destroys the executor (the
// built-in executors use the same 2 s).
const shutdownMargin = 2 * time.Second

// exitSeenWait is how long a log follower whose stream ended waits for the
// container's exit before it inspects the container to decide whether the
// stream broke instead (a daemon restart).
const exitSeenWait = 250 * time.Millisecond

// oomGrace is how long an unexplained SIGKILL exit waits for a late OOM
// report before it is reported as a plain failure.
const oomGrace = 500 * time.Millisecond

// houseInterval paces the housekeeping: evicting finished tasks whose
// acknowledgements never came, trimming old records, starting reconciles.
const houseInterval = 10 * time.Second

// ErrIdle is returned by Run when the executor has had no task for the idle
// timeout and every update is acknowledged.
var ErrIdle = errors.New("idle timeout")

// Manager owns every task. Create it with New and start its loop with Run.
//
// The loop goroutine does no file, socket or Docker I/O: each launch, log
// follower, signal and reconcile runs on a goroutine of its own and posts
// what it learns, so that a slow daemon or a hostile task costs at most its
// own goroutine.
type Manager struct {
	cfg Config
	log *logrus.Entry
	rt  Runtime
	pub Publisher

	inbox chan any
	done  chan struct{} // closed when Run returns, so late posts do not block

	// Everything below is owned by the loop goroutine.
	tasks         map[string]*task // live tasks and finished ones awaiting ACKs, by id
	byContainer   map[string]*task
	finished      *finishedTable
	nextGen       uint64
	killingCap    bool // framework has TASK_KILLING_STATE
	shuttingDown  bool
	shutdownTimer *time.Timer
	idleTimer     *time.Timer
	idleGen       int
	houseTimer    *time.Timer
	lastReconcile time.Time
	reconciling   bool
	dirty         map[string]struct{} // task ids whose views must be republished
	wg            sync.WaitGroup      // per-task goroutines

	views    viewTable
	counters Counters
}

// Counters are monotonic totals for /metrics, read with atomic loads.
type Counters struct {
	Launched  atomic.Uint64
	Killed    atomic.Uint64 // KILL requests acted on
	Vanished  atomic.Uint64 // containers found gone by a reconcile
	Relaunch  atomic.Uint64 // LAUNCHes that reused a finished task's id
	LiveTasks atomic.Int64  // tasks in the live table
	Failures  sync.Map      // reason name -> *atomic.Uint64
}

// New returns a Manager.
func New(cfg Config, rt Runtime, pub Publisher, log *logrus.Entry) *Manager {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.RemoveDelay, time.Minute)
	def(&cfg.ShutdownGrace, 5*time.Second)
	def(&cfg.KillRetry, 2*time.Second)
	def(&cfg.Policy.DefaultKillGrace, 3*time.Second)
	def(&cfg.FactsTimeout, 30*time.Second)
	def(&cfg.ReconcileInterval, time.Minute)
	def(&cfg.FinishedMaxAge, 24*time.Hour)
	def(&cfg.AckWait, 10*time.Minute)
	if cfg.FinishedKept <= 0 {
		cfg.FinishedKept = 1000
	}
	if cfg.HostSandboxRoot == "" {
		cfg.HostSandboxRoot = cfg.SandboxRoot
	}
	m := &Manager{
		cfg:         cfg,
		log:         log,
		rt:          rt,
		pub:         pub,
		inbox:       make(chan any, 1024),
		done:        make(chan struct{}),
		tasks:       map[string]*task{},
		byContainer: map[string]*task{},
		finished:    newFinishedTable(cfg.FinishedKept, cfg.FinishedMaxAge),
		dirty:       map[string]struct{}{},
	}
	m.views.init()
	return m
}

// HandleEvent passes an agent event to the loop.
func (m *Manager) HandleEvent(ev *executor.Event) { m.post(ev) }

// HandleExit passes a container exit to the loop.
func (m *Manager) HandleExit(e containerd.Exit) { m.post(exitMsg{e}) }

// UpdateRejected tells the loop that the agent refused one of a task's
// updates for good: it will never be acknowledged, so the task must not wait
// for it to leave the table.
func (m *Manager) UpdateRejected(taskID string, uuid []byte) {
	m.post(&executor.Event{Type: executor.Event_ACKNOWLEDGED,
		Acknowledged: &executor.Event_Acknowledged{TaskID: mesos.TaskID{Value: taskID}, UUID: uuid}})
}

// Reconcile asks the loop to check every running task against Docker now,
// as after the events stream was reopened.
func (m *Manager) Reconcile() { m.post(reconcileNow{}) }

// Shutdown asks the loop to kill every task and finish, as on SHUTDOWN.
func (m *Manager) Shutdown(why string) { m.post(shutdownMsg{why}) }

// SetHealth reports a health change for a task; kill asks for the task to be
// killed (consecutive failures reached).
func (m *Manager) SetHealth(taskID string, healthy, kill bool, message string) {
	m.post(healthMsg{taskID, healthy, kill, message})
}

// Counters returns the manager's totals.
func (m *Manager) Counters() *Counters { return &m.counters }

func (m *Manager) post(msg any) {
	select {
	case m.inbox <- msg:
	case <-m.done:
	}
}

// Run is the manager's loop. It returns nil once a shutdown has finished (every
// task terminal), ErrIdle after the idle timeout, or ctx's error.
func (m *Manager) Run(ctx context.Context) error {
	defer func() {
		close(m.done)
		m.wg.Wait()
	}()
	m.armIdle()
	m.houseTimer = m.after(houseInterval, houseTick{})
	m.lastReconcile = time.Now()
	for {
		select {
		case <-ctx.Done():
			m.stopAllTimers()
			return ctx.Err()
		case msg := <-m.inbox:
			finished, err := m.handle(ctx, msg)
			m.publishViews()
			if finished {
				m.stopAllTimers()
				return err
			}
		}
	}
}

func (m *Manager) handle(ctx context.Context, msg any) (bool, error) {
	switch msg := msg.(type) {
	case *executor.Event:
		m.onAgentEvent(ctx, msg)
	case launchMsg:
		m.onLaunchStep(msg)
	case exitMsg:
		m.onExit(msg.exit, false)
	case oomWaitedMsg:
		m.onExit(msg.exit, true)
	case stepMsg:
		m.onStep(msg)
	case vanishedMsg:
		m.onVanished(msg)
	case reconcileDone:
		m.reconciling = false
	case reconcileNow:
		m.startReconcile()
	case houseTick:
		m.housekeeping()
	case timerMsg:
		m.onTimer(msg)
	case healthMsg:
		m.onHealth(msg)
	case checkMsg:
		m.onCheck(msg)
	case shutdownMsg:
		m.startShutdown(msg.why)
	case shutdownTimeout:
		m.onShutdownTimeout()
	case idleMsg:
		if msg.gen == m.idleGen && m.idle() {
			if m.pub.Unacknowledged() == 0 {
				m.log.WithField("idle_timeout", m.cfg.IdleTimeout).Info("no task for the idle timeout and every update acknowledged; exiting")
				return true, ErrIdle
			}
			m.armIdle()
		}
	default:
		m.log.WithField("message", msg).Error("unknown message on the task loop; ignored")
	}
	if m.shuttingDown && m.allTerminal() {
		return true, nil
	}
	return false, nil
}

func (m *Manager) onAgentEvent(ctx context.Context, ev *executor.Event) {
	switch ev.GetType() {
	case executor.Event_SUBSCRIBED:
		sub := ev.GetSubscribed()
		if sub == nil {
			m.log.Error("SUBSCRIBED event without its payload; ignored")
			return
		}
		m.killingCap = false
		for _, c := range sub.FrameworkInfo.Capabilities {
			if c.Type == mesos.FrameworkInfo_Capability_TASK_KILLING_STATE {
				m.killingCap = true
			}
		}
		if id := sub.AgentInfo.ID; id != nil && m.cfg.Policy.AgentID == "" {
			m.cfg.Policy.AgentID = id.Value
		}
	case executor.Event_LAUNCH:
		l := ev.GetLaunch()
		if l == nil || l.Task.TaskID.Value == "" {
			m.log.Error("LAUNCH event without a task or task id; ignored")
			return
		}
		info := l.Task
		m.launch(ctx, &info)
	case executor.Event_LAUNCH_GROUP:
		lg := ev.GetLaunchGroup()
		if lg == nil {
			m.log.Error("LAUNCH_GROUP event without its payload; ignored")
			return
		}
		// The master refuses DOCKER containers in task groups, but a
		// group of plain tasks can still arrive: run each one.
		for i := range lg.TaskGroup.Tasks {
			if lg.TaskGroup.Tasks[i].TaskID.Value == "" {
				m.log.Error("LAUNCH_GROUP task without a task id; ignored")
				continue
			}
			m.launch(ctx, &lg.TaskGroup.Tasks[i])
		}
	case executor.Event_KILL:
		k := ev.GetKill()
		if k == nil || k.TaskID.Value == "" {
			m.log.Error("KILL event without a task id; ignored")
			return
		}
		m.onKill(k.TaskID.Value, k.KillPolicy)
	case executor.Event_ACKNOWLEDGED:
		if a := ev.GetAcknowledged(); a != nil {
			m.onAck(a.TaskID.Value, a.UUID)
		}
	case executor.Event_SHUTDOWN:
		m.startShutdown("the agent sent SHUTDOWN")
	case executor.Event_MESSAGE:
		// Framework messages carry nothing this executor acts on.
	default:
		m.log.WithField("event", ev.GetType().String()).Debug("ignoring an agent event")
	}
}

// onAck forgets an acknowledged update; a finished task whose updates are
// all acknowledged leaves the live table.
func (m *Manager) onAck(taskID string, uuid []byte) {
	t := m.tasks[taskID]
	if t == nil {
		return
	}
	delete(t.unacked, string(uuid))
	if t.phase == phaseTerminal && len(t.unacked) == 0 {
		m.evict(t)
	}
}

// evict moves a finished task from the live table to the bounded records.
func (m *Manager) evict(t *task) {
	if m.tasks[t.id] != t {
		return
	}
	delete(m.tasks, t.id)
	if t.containerID != "" && m.byContainer[t.containerID] == t {
		delete(m.byContainer, t.containerID)
	}
	m.counters.LiveTasks.Store(int64(len(m.tasks)))
	v := m.view(t)
	v.History = nil
	v.Pid = 0
	for _, id := range m.finished.add(record{view: v, gen: t.gen}, time.Now()) {
		m.dirty[id] = struct{}{}
	}
	m.dirty[t.id] = struct{}{}
}

// housekeeping evicts finished tasks whose acknowledgements never came
// (the agent link still resends them), trims the records and starts the
// periodic reconcile.
func (m *Manager) housekeeping() {
	now := time.Now()
	m.houseTimer = m.after(houseInterval, houseTick{})
	for _, t := range m.tasks {
		if t.phase == phaseTerminal && now.Sub(t.finishedAt) > m.cfg.AckWait {
			t.log.WithField("unacknowledged", len(t.unacked)).Warn("finished task's updates still unacknowledged; moving it to the finished records")
			m.evict(t)
		}
	}
	for _, id := range m.finished.trim(now) {
		m.dirty[id] = struct{}{}
	}
	if now.Sub(m.lastReconcile) >= m.cfg.ReconcileInterval {
		m.startReconcile()
	}
}

func (m *Manager) after(d time.Duration, msg any) *time.Timer {
	return time.AfterFunc(d, func() { m.post(msg) })
}

func (m *Manager) countFailure(r mesos.TaskStatus_Reason) {
	v, _ := m.counters.Failures.LoadOrStore(r.String(), new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

func ptr[T any](v T) *T { return &v }
