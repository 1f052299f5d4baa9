package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/health"
	"github.com/mdx-executor/mdx/sandbox"
)

// Publisher takes status updates; the agent link implements it. Update must
// not block on the network.
type Publisher interface {
	Update(mesos.TaskStatus) []byte
	Unacknowledged() int
}

// Config configures the Manager. Zero values mean the documented defaults.
type Config struct {
	Policy Policy
	// SandboxRoot is the executor's sandbox as it sees it (MESOS_SANDBOX);
	// task logs go to SandboxRoot/tasks/<task_id>/{stdout,stderr}.
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
	// Health runs the tasks' health checks and generic checks; nil runs
	// none (tasks that ask for one still launch).
	Health HealthChecker
	// Remover removes finished tasks' containers; nil keeps them (tests).
	Remover Remover
	// ImageUsed, when set, is told the image of every task launched (for
	// image collection).
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

// ErrIdle is returned by Run when the executor has had no task for the idle
// timeout and every update is acknowledged.
var ErrIdle = errors.New("idle timeout")

type killCause int

const (
	causeFramework killCause = iota + 1
	causeShutdown
	causeMaxCompletion
	causeHealth
)

// task is one task's state. It is owned by the Manager's loop goroutine.
type task struct {
	id     string
	info   *mesos.TaskInfo
	cfg    launchConfig
	log    *logrus.Entry
	state  mesos.TaskState
	phase  phase
	reason string
	msg    string

	containerID string
	started     bool // the container was started
	ip          string
	pid         int
	stopSignal  string
	healthy     *bool
	checkStatus *mesos.CheckStatusInfo // carried on every update once set
	healthWhy   string                 // the failing probe's message when a health kill started
	exitCode    *int
	startedAt   time.Time
	finishedAt  time.Time
	history     []HistoryEntry

	cancelLaunch context.CancelFunc
	cancelLogs   context.CancelFunc
	logsDone     chan struct{}
	exitSeen     chan struct{}    // closed by the loop when the container's exit is known
	pendingExit  *containerd.Exit // an exit seen before the start was confirmed
	exiting      bool             // waiting for the log stream to drain
	oomKilled    bool             // an exit report said OOM (it may come late)
	oomWaited    bool             // waited once for a late OOM report

	killing      bool
	killCause    killCause
	killDeadline time.Time
	killTimer    *time.Timer
	timerGen     int
	maxTimer     *time.Timer
	removeQueued bool
}

// release stops the task's timers and cancels its launch and log follower.
func (t *task) release() {
	for _, tm := range []*time.Timer{t.killTimer, t.maxTimer} {
		if tm != nil {
			tm.Stop()
		}
	}
	if t.cancelLaunch != nil {
		t.cancelLaunch()
	}
	if t.cancelLogs != nil {
		t.cancelLogs()
	}
}

// Manager owns every task. Create it with New and start its loop with Run.
type Manager struct {
	cfg Config
	log *logrus.Entry
	rt  Runtime
	pub Publisher

	inbox chan any
	done  chan struct{} // closed when Run returns, so late posts do not block

	// Everything below is owned by the loop goroutine.
	tasks         map[string]*task
	byContainer   map[string]*task
	killingCap    bool // framework has TASK_KILLING_STATE
	shuttingDown  bool
	shutdownTimer *time.Timer
	idleTimer     *time.Timer
	idleGen       int
	wg            sync.WaitGroup // per-task goroutines

	snapshot atomic.Pointer[[]View]
	counters Counters
}

// Counters are monotonic totals for /metrics, read with atomic loads.
type Counters struct {
	Launched atomic.Uint64
	Killed   atomic.Uint64 // KILL requests acted on
	Failures sync.Map      // reason name -> *atomic.Uint64
}

// New returns a Manager.
func New(cfg Config, rt Runtime, pub Publisher, log *logrus.Entry) *Manager {
	if cfg.RemoveDelay == 0 {
		cfg.RemoveDelay = time.Minute
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = 5 * time.Second
	}
	if cfg.KillRetry == 0 {
		cfg.KillRetry = 2 * time.Second
	}
	if cfg.Policy.DefaultKillGrace == 0 {
		cfg.Policy.DefaultKillGrace = 3 * time.Second
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
	}
	empty := []View{}
	m.snapshot.Store(&empty)
	return m
}

// Messages posted to the loop.
type (
	shutdownMsg struct{ why string }
	launchMsg   struct {
		taskID      string
		containerID string
		stage       string // "created", "started" or "failed"
		info        containerd.Info
		err         error
	}
	exitMsg    struct{ exit containerd.Exit }
	drainedMsg struct{ exit containerd.Exit }
	timerMsg   struct {
		taskID string
		kind   string // "escalate", "retry", "max", "remove"
		gen    int
	}
	idleMsg         struct{ gen int }
	shutdownTimeout struct{}
	healthMsg       struct {
		taskID  string
		healthy bool
		kill    bool
		message string
	}
	checkMsg struct {
		taskID string
		status mesos.CheckStatusInfo
	}
)

// HandleEvent passes an agent event to the loop.
func (m *Manager) HandleEvent(ev *executor.Event) { m.post(ev) }

// HandleExit passes a container exit to the loop.
func (m *Manager) HandleExit(e containerd.Exit) { m.post(exitMsg{e}) }

// Shutdown asks the loop to kill every task and finish, as on SHUTDOWN.
func (m *Manager) Shutdown(why string) { m.post(shutdownMsg{why}) }

// SetHealth reports a health change for a task; kill asks for the task to be
// killed (consecutive failures reached).
func (m *Manager) SetHealth(taskID string, healthy, kill bool, message string) {
	m.post(healthMsg{taskID, healthy, kill, message})
}

// Snapshot returns a copy of every task, for the status socket.
func (m *Manager) Snapshot() []View { return *m.snapshot.Load() }

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
	for {
		select {
		case <-ctx.Done():
			m.stopAllTimers()
			return ctx.Err()
		case msg := <-m.inbox:
			finished, err := m.handle(ctx, msg)
			m.publishSnapshot()
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
	case drainedMsg:
		m.onExit(msg.exit, true)
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
	}
	if m.shuttingDown && m.allTerminal() {
		return true, nil
	}
	return false, nil
}

func (m *Manager) onAgentEvent(ctx context.Context, ev *executor.Event) {
	switch ev.GetType() {
	case executor.Event_SUBSCRIBED:
		fi := ev.GetSubscribed().FrameworkInfo
		m.killingCap = false
		for _, c := range fi.Capabilities {
			if c.Type == mesos.FrameworkInfo_Capability_TASK_KILLING_STATE {
				m.killingCap = true
			}
		}
		if id := ev.GetSubscribed().AgentInfo.ID; id != nil && m.cfg.Policy.AgentID == "" {
			m.cfg.Policy.AgentID = id.Value
		}
	case executor.Event_LAUNCH:
		info := ev.GetLaunch().Task
		m.launch(ctx, &info)
	case executor.Event_LAUNCH_GROUP:
		// The master refuses DOCKER containers in task groups, but a
		// group of plain tasks can still arrive: run each one.
		for i := range ev.GetLaunchGroup().TaskGroup.Tasks {
			m.launch(ctx, &ev.GetLaunchGroup().TaskGroup.Tasks[i])
		}
	case executor.Event_KILL:
		k := ev.GetKill()
		m.onKill(k.TaskID.Value, k.KillPolicy)
	case executor.Event_SHUTDOWN:
		m.startShutdown("the agent sent SHUTDOWN")
	case executor.Event_ACKNOWLEDGED, executor.Event_MESSAGE:
		// The agent link owns acknowledgements; framework messages
		// carry nothing this executor acts on.
	default:
		m.log.WithField("event", ev.GetType().String()).Debug("ignoring an agent event")
	}
}

func (m *Manager) launch(ctx context.Context, info *mesos.TaskInfo) {
	id := info.TaskID.Value
	log := m.log.WithField("task_id", id)
	if old, ok := m.tasks[id]; ok {
		// Never disturb the running task; the agent already has its
		// updates.
		log.WithField("state", old.state.String()).Warn("duplicate LAUNCH for a known task id; ignored")
		return
	}
	t := &task{id: id, info: info, log: log, state: mesos.TASK_STAGING, phase: phaseLaunching}
	m.tasks[id] = t
	m.counters.Launched.Add(1)
	m.disarmIdle()

	if m.shuttingDown {
		m.terminate(t, mesos.TASK_KILLED, mesos.REASON_TASK_KILLED_DURING_LAUNCH, "the executor is shutting down")
		return
	}
	hostDir, err := sandbox.TaskDir(m.cfg.HostSandboxRoot, id)
	if err != nil {
		m.terminate(t, mesos.TASK_FAILED, mesos.REASON_TASK_INVALID, fmt.Sprintf("invalid task id: %v", err))
		return
	}
	cfg, err := parseTask(info, m.cfg.Policy, hostDir)
	if err != nil {
		log.WithError(err).Warn("refusing an invalid task")
		m.terminate(t, mesos.TASK_FAILED, mesos.REASON_TASK_INVALID, err.Error())
		return
	}
	t.cfg = cfg
	dir, _ := sandbox.TaskDir(m.cfg.SandboxRoot, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		m.terminate(t, mesos.TASK_FAILED, mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Sprintf("create the task sandbox: %v", err))
		return
	}
	m.decorate(t, hostDir)
	if cfg.check != nil {
		// Mesos carries check_status on every update of a checked task,
		// with only its type until the first result.
		cs := cfg.check.InitialStatus()
		t.checkStatus = &cs
	}
	m.setState(t, mesos.TASK_STARTING, 0, "")
	if cfg.maxCompletion > 0 {
		// Mesos counts max_completion_time from the launch.
		t.maxTimer = m.after(cfg.maxCompletion, timerMsg{taskID: id, kind: "max"})
	}

	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	t.cancelLaunch = cancel
	spec := t.cfg.spec
	if m.cfg.ImageUsed != nil {
		m.cfg.ImageUsed(spec.Image)
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer cancel()
		m.runLaunch(lctx, id, spec)
	}()
}

// decorate adds what the executor puts on every container: ownership labels,
// name, Mesos environment and the sandbox mount.
func (m *Manager) decorate(t *task, hostDir string) {
	s := &t.cfg.spec
	p := m.cfg.Policy
	s.Name = containerd.ContainerName(p.FrameworkID, p.ExecutorID, t.id)
	s.Labels = map[string]string{
		containerd.LabelFramework:   p.FrameworkID,
		containerd.LabelExecutor:    p.ExecutorID,
		containerd.LabelAgent:       p.AgentID,
		containerd.LabelTask:        t.id,
		containerd.LabelInstance:    m.cfg.Instance,
		containerd.LabelPID:         strconv.Itoa(os.Getpid()),
		containerd.LabelBootID:      m.cfg.BootID,
		containerd.LabelCreatedUnix: strconv.FormatInt(time.Now().Unix(), 10),
	}
	// The executor's own variables come last so that a task cannot
	// spoof them; the executor's environment (and its auth token) is never
	// passed on.
	s.Env = append(s.Env,
		"MESOS_TASK_ID="+t.id,
		"MESOS_SANDBOX="+containerd.SandboxMountPoint,
		"MESOS_EXECUTOR_ID="+p.ExecutorID,
		"MESOS_FRAMEWORK_ID="+p.FrameworkID,
		"MESOS_CONTAINER_NAME="+s.Name,
	)
	s.Mounts = append([]containerd.Mount{{HostPath: hostDir, ContainerPath: containerd.SandboxMountPoint}}, s.Mounts...)
}

// runLaunch pulls, creates and starts one container, posting each step. It
// posts "created" before calling Start so that the loop knows the container
// before Docker can report its exit.
func (m *Manager) runLaunch(ctx context.Context, id string, spec containerd.Spec) {
	fail := func(cid string, err error) {
		m.post(launchMsg{taskID: id, containerID: cid, stage: "failed", err: err})
	}
	if err := m.rt.EnsureImage(ctx, spec.Image, spec.ForcePull); err != nil {
		fail("", err)
		return
	}
	// Create and Start are never abandoned half-way: a cancelled request
	// does not stop Docker from creating the container, and the executor
	// would never learn its id. A KILL is noticed between the calls
	// instead. The adapter bounds each call with its own timeout.
	dctx := context.WithoutCancel(ctx)
	cid, err := m.rt.Create(dctx, spec)
	if err != nil {
		if !containerd.IsConflict(err) {
			// A timed-out create may still have happened; the name is
			// this task's own, so remove by name. (A conflict means the
			// name belongs to another container: leave it alone.)
			m.removeByName(spec.Name)
		}
		fail("", err)
		return
	}
	m.post(launchMsg{taskID: id, containerID: cid, stage: "created"})
	if ctx.Err() != nil {
		fail(cid, fmt.Errorf("launch cancelled before start: %w", ctx.Err()))
		return
	}
	if err := m.rt.Start(dctx, cid); err != nil {
		fail(cid, err)
		return
	}
	// The container runs now: a KILL from here on must not cost the
	// inspect that gives its stop signal and address.
	info, err := m.rt.Inspect(dctx, cid)
	if err != nil {
		// The container runs; only its address is unknown.
		m.log.WithField("task_id", id).WithField("container_id", cid).WithError(err).Warn("inspect after start failed")
	}
	m.post(launchMsg{taskID: id, containerID: cid, stage: "started", info: info})
}

// removeByName removes a container the executor may have created without
// learning its id.
func (m *Manager) removeByName(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.rt.Remove(ctx, name); err != nil {
		m.log.WithField("container_name", name).WithError(err).Warn("could not remove a container whose create failed")
	}
}

func (m *Manager) onLaunchStep(msg launchMsg) {
	t := m.tasks[msg.taskID]
	if t == nil {
		return
	}
	if msg.containerID != "" && t.containerID == "" {
		t.containerID = msg.containerID
		m.byContainer[msg.containerID] = t
		t.log = t.log.WithField("container_id", msg.containerID)
	}
	switch msg.stage {
	case "created":
	case "failed":
		t.cancelLaunch = nil
		if t.phase == phaseTerminal {
			m.queueRemoval(t, 0)
			return
		}
		switch {
		case t.killing && t.killCause == causeMaxCompletion:
			// The framework did not ask for this kill: the task ran out
			// of time before its container started.
			m.terminate(t, mesos.TASK_FAILED, mesos.REASON_MAX_COMPLETION_TIME_REACHED,
				fmt.Sprintf("max_completion_time of %s reached before the container started", t.cfg.maxCompletion))
		case t.killing:
			m.terminate(t, mesos.TASK_KILLED, mesos.REASON_TASK_KILLED_DURING_LAUNCH, "killed before the container started")
		default:
			t.log.WithError(msg.err).Warn("container launch failed")
			m.terminate(t, mesos.TASK_FAILED, mesos.REASON_CONTAINER_LAUNCH_FAILED, msg.err.Error())
		}
		if t.containerID != "" {
			m.queueRemoval(t, 0)
		}
	case "started":
		t.cancelLaunch = nil
		t.started = true
		t.startedAt = time.Now()
		if len(msg.info.IPs) > 0 {
			t.ip = msg.info.IPs[0]
		}
		t.stopSignal = msg.info.StopSignal
		t.pid = msg.info.Pid
		if t.phase == phaseTerminal {
			// Terminal already (the shutdown deadline passed): make
			// sure the container does not live on.
			m.queueRemoval(t, 0)
			return
		}
		m.followLogs(t)
		t.phase = phaseRunning
		if t.killing {
			// A kill started while the container was starting: a
			// RUNNING now would tell the framework the task came back
			// after TASK_KILLING.
			m.signal(t)
		} else {
			m.setState(t, mesos.TASK_RUNNING, 0, "")
			t.log.WithField("ip", t.ip).Info("task running")
			m.startChecks(t)
		}
		if e := t.pendingExit; e != nil {
			t.pendingExit = nil
			m.onExit(*e, false)
		}
	}
}

func (m *Manager) followLogs(t *task) {
	dir, err := sandbox.TaskDir(m.cfg.SandboxRoot, t.id)
	if err != nil {
		return
	}
	stdout, err1 := sandbox.OpenRotating(dir+"/stdout", m.cfg.LogMaxBytes, m.cfg.LogKeep)
	stderr, err2 := sandbox.OpenRotating(dir+"/stderr", m.cfg.LogMaxBytes, m.cfg.LogKeep)
	if err := errors.Join(err1, err2); err != nil {
		t.log.WithError(err).Warn("cannot open the task's log files; its output is not captured")
		closeAll(stdout, stderr)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.cancelLogs = cancel
	t.logsDone = make(chan struct{})
	t.exitSeen = make(chan struct{})
	done, exited, cid, log := t.logsDone, t.exitSeen, t.containerID, t.log
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(done)
		defer closeAll(stdout, stderr)
		m.copyLogs(ctx, cid, exited, stdout, stderr, log)
	}()
}

// copyLogs follows a container's output until the container has exited or
// ctx ends. A stream that breaks while the container still runs (the Docker
// daemon restarted or hiccuped) is reopened from where it broke, so the
// sandbox files keep filling.
func (m *Manager) copyLogs(ctx context.Context, cid string, exited <-chan struct{}, stdout, stderr io.Writer, log *logrus.Entry) {
	var since time.Time
	backoff := 100 * time.Millisecond
	for {
		err := m.rt.Logs(ctx, cid, since, stdout, stderr)
		ended := time.Now()
		// A stream normally ends because the container exited, and the
		// loop learns that from the die event about when the stream
		// ends. Wait a little for it rather than inspect at once: an
		// inspect right after an exit waits for Docker's container lock
		// (tens of ms), which would delay the exit's report.
		select {
		case <-exited:
			return
		case <-ctx.Done():
			return
		case <-time.After(exitSeenWait):
		}
		ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
		info, ierr := m.rt.Inspect(ictx, cid)
		cancel()
		if ierr == nil && !info.Running {
			return // the normal end: the container exited
		}
		if ctx.Err() != nil {
			return
		}
		log.WithError(errors.Join(err, ierr)).WithField("retry_in", backoff).Warn("task log stream broke while the container runs; reopening")
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
		if since.IsZero() || ierr == nil {
			since = ended
		}
	}
}

func closeAll(fs ...*sandbox.RotatingFile) {
	for _, f := range fs {
		if f != nil {
			_ = f.Close()
		}
	}
}

func (m *Manager) onExit(e containerd.Exit, drained bool) {
	t := m.byContainer[e.ContainerID]
	if t == nil || t.phase == phaseTerminal {
		return // not ours, or a repeated report
	}
	if e.OOMKilled {
		t.oomKilled = true
	}
	if !t.started {
		t.pendingExit = &e
		return
	}
	if !drained {
		if t.exiting {
			return // a repeated report; an OOM flag on it is kept above
		}
		t.exiting = true
		if t.exitSeen != nil {
			close(t.exitSeen) // the log follower need not inspect
		}
		// Report the exit after the log stream has drained (bounded), so
		// that a framework reading the sandbox on FINISHED sees all output.
		done := t.logsDone
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if done != nil {
				select {
				case <-done:
				case <-time.After(2 * time.Second):
				case <-m.done:
					return
				}
			}
			m.post(drainedMsg{e})
		}()
		return
	}
	e.OOMKilled = e.OOMKilled || t.oomKilled
	if e.ExitCode == 137 && !e.OOMKilled && !t.killing && !t.oomWaited {
		// Killed by SIGKILL and not by this executor: most likely the
		// OOM killer, whose report from Docker can trail the exit. Give
		// it a moment before calling it a plain failure.
		t.oomWaited = true
		m.after(oomGrace, drainedMsg{e})
		return
	}
	code := e.ExitCode
	t.exitCode = &code
	state, reason, msg := m.exitStatus(t, e)
	t.log.WithFields(logrus.Fields{"exit_code": code, "oom_killed": e.OOMKilled, "state": state.String()}).Info("container exited")
	m.terminate(t, state, reason, msg)
}

// exitStatus maps a container exit to the Mesos terminal state, as the
// built-in executors do, with the reason they omit.
func (m *Manager) exitStatus(t *task, e containerd.Exit) (mesos.TaskState, mesos.TaskStatus_Reason, string) {
	desc := describeExit(e.ExitCode)
	switch {
	case t.killing && t.killCause == causeMaxCompletion:
		return mesos.TASK_FAILED, mesos.REASON_MAX_COMPLETION_TIME_REACHED,
			fmt.Sprintf("max_completion_time of %s reached; container %s", t.cfg.maxCompletion, desc)
	case t.killing && t.killCause == causeHealth:
		return mesos.TASK_KILLED, 0, fmt.Sprintf("task failed its health check and was killed (%s); container %s", t.healthWhy, desc)
	case t.killing:
		return mesos.TASK_KILLED, 0, "task killed; container " + desc
	case e.OOMKilled:
		return mesos.TASK_FAILED, mesos.REASON_CONTAINER_LIMITATION_MEMORY,
			fmt.Sprintf("container was OOM-killed: memory limit %d MiB reached (%s)", t.cfg.memLimit>>20, desc)
	case e.ExitCode == 0:
		return mesos.TASK_FINISHED, 0, "container " + desc
	default:
		msg := "container " + desc
		if e.Error != "" {
			msg += ": " + e.Error
		}
		return mesos.TASK_FAILED, 0, msg
	}
}

func describeExit(code int) string {
	if code > 128 && code < 128+65 {
		sig := syscall.Signal(code - 128)
		return fmt.Sprintf("exited with status %d (killed by signal %d, %s)", code, code-128, unix.SignalName(sig))
	}
	return fmt.Sprintf("exited with status %d", code)
}

func (m *Manager) onKill(id string, override *mesos.KillPolicy) {
	t := m.tasks[id]
	if t == nil {
		// The agent knows a task this executor never saw (its LAUNCH
		// was lost in a broken stream): report it killed, as the
		// default executor does, instead of aborting like the others.
		m.log.WithField("task_id", id).Warn("KILL for an unknown task; reporting it killed")
		m.pub.Update(mesos.TaskStatus{
			TaskID:  mesos.TaskID{Value: id},
			State:   mesos.TASK_KILLED.Enum(),
			Message: ptr("kill requested for a task this executor does not know (its launch never arrived)"),
		})
		return
	}
	if t.phase == phaseTerminal {
		return
	}
	grace := t.cfg.killGrace
	if override != nil && override.GracePeriod != nil {
		// An override may only shorten the grace (as the command executor).
		grace = min(grace, time.Duration(override.GracePeriod.Nanoseconds))
	}
	m.counters.Killed.Add(1)
	m.kill(t, grace, causeFramework)
}

// kill starts (or shortens) a task's kill: the image's stop signal now,
// SIGKILL from the executor's own timer at the deadline.
func (m *Manager) kill(t *task, grace time.Duration, cause killCause) {
	if t.phase == phaseTerminal {
		return
	}
	deadline := time.Now().Add(max(grace, 0))
	if t.killing {
		if deadline.Before(t.killDeadline) {
			t.killDeadline = deadline
			t.log.WithField("grace", grace).Info("kill grace shortened")
			if t.started {
				m.armKillTimer(t, time.Until(deadline), "escalate")
			}
		}
		return
	}
	t.killing, t.killCause, t.killDeadline = true, cause, deadline
	m.stopChecks(t)
	t.log.WithFields(logrus.Fields{"grace": grace, "cause": cause}).Info("killing task")
	if m.killingCap && cause != causeMaxCompletion {
		m.setState(t, mesos.TASK_KILLING, 0, "")
	}
	if !t.started {
		if t.cancelLaunch != nil {
			t.cancelLaunch()
		}
		return
	}
	m.signal(t)
}

// signal sends the stop signal (or SIGKILL if the grace is spent) and arms
// the escalation timer.
func (m *Manager) signal(t *task) {
	left := time.Until(t.killDeadline)
	if left <= 0 {
		m.sendSignal(t, "SIGKILL")
		m.armKillTimer(t, m.cfg.KillRetry, "retry")
		return
	}
	sig := t.stopSignal
	if sig == "" {
		sig = "SIGTERM"
	}
	m.sendSignal(t, sig)
	m.armKillTimer(t, left, "escalate")
}

func (m *Manager) sendSignal(t *task, sig string) {
	cid, log := t.containerID, t.log
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.rt.Kill(ctx, cid, sig); err != nil {
			log.WithError(err).WithField("signal", sig).Warn("signalling the container failed; will retry")
		}
	}()
}

func (m *Manager) armKillTimer(t *task, d time.Duration, kind string) {
	if t.killTimer != nil {
		t.killTimer.Stop()
	}
	t.timerGen++
	t.killTimer = m.after(d, timerMsg{taskID: t.id, kind: kind, gen: t.timerGen})
}

func (m *Manager) after(d time.Duration, msg any) *time.Timer {
	return time.AfterFunc(d, func() { m.post(msg) })
}

func (m *Manager) onTimer(msg timerMsg) {
	t := m.tasks[msg.taskID]
	if t == nil {
		return
	}
	switch msg.kind {
	case "max":
		if t.phase != phaseTerminal {
			t.log.WithField("max_completion_time", t.cfg.maxCompletion).Info("max_completion_time reached")
			m.kill(t, 0, causeMaxCompletion)
		}
	case "escalate", "retry":
		if msg.gen != t.timerGen || t.phase == phaseTerminal || !t.started {
			return
		}
		if msg.kind == "retry" {
			// Docker did not confirm the exit: keep at it rather than
			// report a task dead that may still run.
			t.log.Warn("container exit not confirmed after SIGKILL; sending SIGKILL again")
		}
		m.sendSignal(t, "SIGKILL")
		m.armKillTimer(t, m.cfg.KillRetry, "retry")
	}
}

// terminate sends a task's terminal update and releases what it holds except
// the container, which is removed after RemoveDelay.
func (m *Manager) terminate(t *task, state mesos.TaskState, reason mesos.TaskStatus_Reason, msg string) {
	if t.phase == phaseTerminal {
		return
	}
	if t.killCause == causeHealth {
		f := false
		t.healthy = &f
	}
	m.setState(t, state, reason, msg)
	t.phase = phaseTerminal
	t.finishedAt = time.Now()
	m.stopChecks(t)
	if reason != 0 {
		m.countFailure(reason)
	} else if state == mesos.TASK_FAILED {
		m.countFailure(mesos.REASON_COMMAND_EXECUTOR_FAILED)
	}
	t.release()
	if t.containerID != "" {
		// Exit first, remove later: the terminal update is queued
		// above, and the container (its logs, its exit state) stays for
		// RemoveDelay for an operator to look at. At shutdown the
		// executor drains the queue without waiting.
		m.queueRemoval(t, m.cfg.RemoveDelay)
	}
	m.armIdle()
}

func (m *Manager) countFailure(r mesos.TaskStatus_Reason) {
	v, _ := m.counters.Failures.LoadOrStore(r.String(), new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

// setState builds and publishes one status update, enforcing the state
// machine.
func (m *Manager) setState(t *task, s mesos.TaskState, reason mesos.TaskStatus_Reason, msg string) {
	if !canMove(t.state, s) {
		t.log.WithFields(logrus.Fields{"from": t.state.String(), "to": s.String()}).Error("refusing an invalid task state transition")
		return
	}
	t.state, t.msg = s, msg
	t.reason = ""
	st := mesos.TaskStatus{TaskID: t.info.TaskID, State: s.Enum(), Healthy: t.healthy}
	if t.checkStatus != nil {
		cs := *t.checkStatus
		st.CheckStatus = &cs
	}
	if msg != "" {
		st.Message = ptr(msg)
	}
	if reason != 0 {
		st.Reason = reason.Enum()
		t.reason = reason.String()
	}
	if t.ip != "" {
		ip := t.ip
		st.ContainerStatus = &mesos.ContainerStatus{NetworkInfos: []mesos.NetworkInfo{{
			IPAddresses: []mesos.NetworkInfo_IPAddress{{IPAddress: &ip}},
		}}}
	}
	m.pub.Update(st)
	h := HistoryEntry{State: s.String(), Reason: t.reason, Message: msg, Healthy: t.healthy, Time: time.Now()}
	if len(t.history) >= maxHistory {
		// Snapshots share the backing array, so drop the oldest by
		// copying, never in place.
		t.history = append([]HistoryEntry(nil), t.history[1:]...)
	}
	t.history = append(t.history, h)
}

// startChecks starts the task's health check and generic check; the
// health delay and grace count from here, right after RUNNING was sent.
func (m *Manager) startChecks(t *task) {
	hc := m.cfg.Health
	if hc == nil || (t.cfg.health == nil && t.cfg.check == nil) {
		return
	}
	net := t.cfg.spec.Network
	tg := health.Target{TaskID: t.id, ContainerID: t.containerID, Pid: t.pid, HostNetwork: net == "host"}
	if net != "host" && net != "none" {
		tg.IP = t.ip
	}
	if t.cfg.health != nil {
		hc.Start(tg, t.cfg.health, func(r health.Result) {
			m.post(healthMsg{taskID: r.TaskID, healthy: r.Healthy, kill: r.Kill, message: r.Message})
		})
	}
	if t.cfg.check != nil {
		hc.StartCheck(tg, t.cfg.check, func(id string, st mesos.CheckStatusInfo) {
			m.post(checkMsg{taskID: id, status: st})
		})
	}
}

func (m *Manager) stopChecks(t *task) {
	if m.cfg.Health != nil && (t.cfg.health != nil || t.cfg.check != nil) {
		m.cfg.Health.Stop(t.id)
	}
}

// onHealth acts on a health report. The checker reports only what deserves
// an update (changes, or every failure when configured), so every report of
// a running task becomes one.
func (m *Manager) onHealth(msg healthMsg) {
	t := m.tasks[msg.taskID]
	if t == nil || t.phase != phaseRunning || t.killing {
		return // a report that raced the task's end
	}
	h := msg.healthy
	t.healthy = &h
	if msg.kill {
		t.log.WithField("message", msg.message).Warn("task failed its health check; killing it")
		t.healthWhy = msg.message
		m.kill(t, t.cfg.killGrace, causeHealth)
		return
	}
	m.setState(t, mesos.TASK_RUNNING, mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED, msg.message)
}

// onCheck records a generic check's new result; a check never kills.
func (m *Manager) onCheck(msg checkMsg) {
	t := m.tasks[msg.taskID]
	if t == nil || t.phase != phaseRunning || t.killing {
		return
	}
	st := msg.status
	t.checkStatus = &st
	m.setState(t, mesos.TASK_RUNNING, mesos.REASON_TASK_CHECK_STATUS_UPDATED, "")
}

func (m *Manager) startShutdown(why string) {
	if m.shuttingDown {
		return
	}
	m.shuttingDown = true
	grace := max(m.cfg.ShutdownGrace-shutdownMargin, 0)
	if m.cfg.ShutdownGrace <= shutdownMargin {
		grace = m.cfg.ShutdownGrace / 2
	}
	m.log.WithFields(logrus.Fields{"reason": why, "kill_grace": grace, "tasks": m.liveCount()}).Info("shutting down: killing every task")
	for _, t := range m.tasks {
		if t.phase != phaseTerminal {
			m.kill(t, min(t.cfg.killGrace, grace), causeShutdown)
		}
	}
	// Docker may never confirm some exits; the agent destroys the executor
	// at the end of its grace period, so report before then regardless.
	m.shutdownTimer = m.after(max(m.cfg.ShutdownGrace-shutdownMargin/2, grace+time.Second), shutdownTimeout{})
}

func (m *Manager) onShutdownTimeout() {
	for _, t := range m.tasks {
		if t.phase != phaseTerminal {
			t.log.Error("container exit not confirmed by the shutdown deadline; reporting the task killed")
			m.terminate(t, mesos.TASK_KILLED, 0, "killed at executor shutdown; Docker did not confirm the container's exit in time")
		}
	}
}

// queueRemoval hands the task's container to the Remover, once.
func (m *Manager) queueRemoval(t *task, after time.Duration) {
	if t.containerID == "" || t.removeQueued || m.cfg.Remover == nil {
		return
	}
	t.removeQueued = true
	m.cfg.Remover.Enqueue(t.containerID, t.id, time.Now().Add(after))
}

// FinishedTasks returns when each finished task ended, for the sandbox
// retention sweep. It reads the snapshot, so any goroutine may call it.
func (m *Manager) FinishedTasks() map[string]time.Time {
	out := map[string]time.Time{}
	for _, v := range m.Snapshot() {
		if v.FinishedAt != nil {
			out[v.TaskID] = *v.FinishedAt
		}
	}
	return out
}

func (m *Manager) allTerminal() bool {
	for _, t := range m.tasks {
		if t.phase != phaseTerminal {
			return false
		}
	}
	return true
}

func (m *Manager) liveCount() int {
	n := 0
	for _, t := range m.tasks {
		if t.phase != phaseTerminal {
			n++
		}
	}
	return n
}

func (m *Manager) idle() bool { return !m.shuttingDown && m.liveCount() == 0 }

func (m *Manager) armIdle() {
	if m.cfg.IdleTimeout <= 0 || !m.idle() {
		return
	}
	m.disarmIdle()
	m.idleTimer = m.after(m.cfg.IdleTimeout, idleMsg{gen: m.idleGen})
}

func (m *Manager) disarmIdle() {
	m.idleGen++
	if m.idleTimer != nil {
		m.idleTimer.Stop()
		m.idleTimer = nil
	}
}

func (m *Manager) stopAllTimers() {
	m.disarmIdle()
	if m.shutdownTimer != nil {
		m.shutdownTimer.Stop()
	}
	for _, t := range m.tasks {
		// Run waits for the log followers; a live container's stream
		// would otherwise hold it until the container exits.
		t.release()
	}
}

func (m *Manager) publishSnapshot() {
	views := make([]View, 0, len(m.tasks))
	for _, t := range m.tasks {
		v := View{
			TaskID: t.id, State: t.state.String(), ContainerID: t.containerID, Healthy: t.healthy,
			Image: t.cfg.spec.Image, IP: t.ip, ExitCode: t.exitCode, Reason: t.reason, Message: t.msg,
			// Appends never touch the first len(history) entries, so
			// the view can share them.
			History: t.history[:len(t.history):len(t.history)],
		}
		if t.phase == phaseRunning {
			v.Pid = t.pid
		}
		if !t.startedAt.IsZero() {
			s := t.startedAt
			v.StartedAt = &s
		}
		if !t.finishedAt.IsZero() {
			f := t.finishedAt
			v.FinishedAt = &f
		}
		views = append(views, v)
	}
	sort.Slice(views, func(i, j int) bool { return strings.Compare(views[i].TaskID, views[j].TaskID) < 0 })
	m.snapshot.Store(&views)
}

func ptr[T any](v T) *T { return &v }
