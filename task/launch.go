package task

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/cni"
	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/gate"
	"github.com/mdx-executor/mdx/policy"
	"github.com/mdx-executor/mdx/sandbox"
)

// launch starts a run of a task: validation and the first updates on the
// loop, everything that touches a file or Docker on the run's own goroutine.
func (m *Manager) launch(ctx context.Context, info *mesos.TaskInfo) {
	id := info.TaskID.Value
	log := m.log.WithField("task_id", id)
	if old, ok := m.tasks[id]; ok {
		if old.phase != phaseTerminal {
			// Never disturb the live task; the agent already has its
			// updates.
			log.WithField("state", old.state.String()).Warn("duplicate LAUNCH for a live task id; ignored")
			return
		}
		// Mesos lets a framework reuse the id of a terminal task: this is
		// a new run, with its own states, container and sandbox.
		m.evict(old)
	}
	if _, ok := m.finished.get(id); ok {
		m.finished.remove(id)
		m.counters.Relaunch.Add(1)
		log.Info("LAUNCH reuses the id of a finished task: starting a new run")
	}
	m.nextGen++
	t := &task{id: id, gen: m.nextGen, info: info, log: log, state: mesos.TASK_STAGING, phase: phaseLaunching}
	m.tasks[id] = t
	m.counters.LiveTasks.Store(int64(len(m.tasks)))
	m.touch(t)
	m.counters.Launched.Add(1)
	m.disarmIdle()

	if m.shuttingDown {
		m.terminate(t, mesos.TASK_KILLED, mesos.REASON_TASK_KILLED_DURING_LAUNCH, "the executor is shutting down")
		return
	}
	taskDir, err := sandbox.TaskDir(m.cfg.HostSandboxRoot, id)
	if err != nil {
		m.terminate(t, mesos.TASK_FAILED, mesos.REASON_TASK_INVALID, fmt.Sprintf("invalid task id: %v", err))
		return
	}
	hostDir := sandbox.ContainerDir(taskDir)
	cfg, err := parseTask(info, m.cfg.Policy, hostDir)
	if err != nil {
		log.WithError(err).Warn("refusing an invalid task")
		m.terminate(t, mesos.TASK_FAILED, mesos.REASON_TASK_INVALID, err.Error())
		return
	}
	t.cfg = cfg
	m.decorate(t, hostDir)
	if cfg.check != nil {
		// Mesos carries check_status on every update of a checked task,
		// with only its type until the first result.
		cs := cfg.check.InitialStatus()
		t.checkStatus = &cs
	}
	m.setState(t, mesos.TASK_STARTING, 0, "launching a container from image "+cfg.spec.Image+" (pulled first when absent or forced)")
	if cfg.maxCompletion > 0 {
		// Mesos counts max_completion_time from the launch.
		t.maxTimer = m.after(cfg.maxCompletion, timerMsg{taskID: id, kind: timerMax})
	}
	if m.cfg.ImageUsed != nil {
		m.cfg.ImageUsed(cfg.spec.Image)
	}

	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	t.cancelLaunch = cancel
	job := launchJob{id: id, gen: t.gen, spec: t.cfg.spec, volumes: relativeVolumes(t.cfg.spec.Mounts, hostDir),
		needIP: needsIP(t.cfg.spec.Network), networks: cfg.networks, cniArgs: cfg.cniArgs, cniPorts: cfg.cniPorts,
		labels: taskLabels(info)}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer cancel()
		m.runLaunch(lctx, job)
	}()
}

// decorate adds what the executor puts on every container: ownership labels,
// name, Mesos environment and the sandbox mount.
func (m *Manager) decorate(t *task, hostDir string) {
	s := &t.cfg.spec
	p := m.cfg.Policy
	// The run number keeps a relaunched task id's container apart from
	// the earlier run's, which waits for its delayed removal.
	s.Name = containerd.RunContainerName(p.FrameworkID, p.ExecutorID, t.id, t.gen)
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

// relativeVolumes returns the volume host paths inside the container's
// sandbox, relative to it: the directories the launch creates there.
func relativeVolumes(mounts []containerd.Mount, hostDir string) []string {
	var out []string
	for _, mt := range mounts {
		if mt.HostPath != hostDir && policy.Inside(mt.HostPath, hostDir) {
			rel, err := filepath.Rel(hostDir, mt.HostPath)
			if err == nil {
				out = append(out, rel)
			}
		}
	}
	return out
}

// needsIP says whether a container on this Docker network must have an
// address before it counts as running.
func needsIP(network string) bool { return network != "host" && network != "none" }

// launchJob is what a launch goroutine works from: copies, never the task.
type launchJob struct {
	id       string
	gen      uint64
	spec     containerd.Spec
	volumes  []string
	needIP   bool
	networks []string
	cniArgs  map[string]string
	cniPorts []cni.PortMapping
	labels   map[string]string
}

// runLaunch prepares the run's files, pulls, creates and starts one
// container and learns its facts, posting each step. It posts stageCreated
// before calling Start so that the loop knows the container before Docker
// can report its exit.
func (m *Manager) runLaunch(ctx context.Context, j launchJob) {
	var files *sandbox.TaskFiles
	var gt *gate.Gate
	fail := func(cid string, err error) {
		if files != nil {
			_ = files.Close()
		}
		if gt != nil {
			_ = gt.Cleanup()
		}
		m.post(launchMsg{taskID: j.id, gen: j.gen, containerID: cid, stage: stageFailed, err: err})
	}
	// The log files exist and are open before any container can touch
	// the task's directory.
	files, err := sandbox.PrepareTask(m.cfg.SandboxRoot, j.id, m.cfg.LogMaxBytes, m.cfg.LogKeep, j.volumes)
	if err != nil {
		files = nil
		fail("", fmt.Errorf("prepare the task sandbox: %w", err))
		return
	}
	img, err := m.rt.EnsureImageFor(ctx, j.id, j.spec.Image, j.spec.ForcePull)
	if err != nil {
		fail("", fmt.Errorf("image %s: %w", j.spec.Image, err))
		return
	}
	if gt, err = m.prepareGate(ctx, &j); err != nil {
		fail("", err)
		return
	}
	// Create and Start are never abandoned half-way: a cancelled request
	// does not stop Docker from creating the container, and the executor
	// would never learn its id. A KILL is noticed between the calls
	// instead. The adapter bounds each call with its own timeout.
	dctx := context.WithoutCancel(ctx)
	cid, err := m.rt.Create(dctx, j.spec)
	if err != nil {
		if !containerd.IsConflict(err) {
			// A timed-out create may still have happened; the name is
			// this task's own, so remove by name. (A conflict means the
			// name belongs to another container: leave it alone.)
			m.removeByName(j.spec.Name)
		}
		fail("", err)
		return
	}
	m.post(launchMsg{taskID: j.id, gen: j.gen, containerID: cid, stage: stageCreated})
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
	info, err := m.facts(dctx, cid, j.needIP)
	if err != nil {
		fail(cid, err)
		return
	}
	var gd *gated
	if gt != nil {
		// The container runs the gate: CNI ADD and the operator's hooks
		// now, the task's own command only after the release. A KILL
		// cancels ctx.
		if gd, err = m.openGate(ctx, j, gt, cid, info, files); err != nil {
			fail(cid, err)
			return
		}
	}
	m.post(launchMsg{taskID: j.id, gen: j.gen, containerID: cid, stage: stageStarted, info: info, files: files, note: img.Message(), gated: gd})
}

// facts inspects a started container until Docker reports its pid (and, on
// a network that gives one, its address), retrying a busy daemon within
// FactsTimeout. RUNNING never goes out without them: health checks and
// frameworks depend on them.
func (m *Manager) facts(ctx context.Context, cid string, needIP bool) (containerd.Info, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.FactsTimeout)
	defer cancel()
	delay := 50 * time.Millisecond
	var lastErr error
	for {
		info, err := m.rt.Inspect(ctx, cid)
		switch {
		case err != nil && containerd.IsNotFound(err):
			return info, fmt.Errorf("the container disappeared right after its start: %w", err)
		case err != nil:
			lastErr = err
		case !info.Running && info.Pid == 0:
			// It already exited: the exit event reports it; the
			// facts are whatever Docker has.
			return info, nil
		case info.Pid == 0:
			lastErr = errors.New("docker reports no pid for the running container")
		case needIP && len(info.IPs) == 0:
			lastErr = errors.New("docker reports no IP address for the container on its network")
		default:
			return info, nil
		}
		select {
		case <-ctx.Done():
			return info, fmt.Errorf("container started, but its facts are unknown after %s: %w", m.cfg.FactsTimeout, lastErr)
		case <-m.done:
			return info, fmt.Errorf("the executor stopped while learning the container's facts: %w", lastErr)
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
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
	if t == nil || t.gen != msg.gen {
		// A step of a run that has left the table: make sure what it
		// made does not live on.
		m.closeFiles(msg.files)
		if msg.gated != nil {
			m.closeGate(&task{gated: msg.gated, log: m.log.WithField("task_id", msg.taskID)})
		}
		if msg.containerID != "" && m.cfg.Remover != nil {
			m.cfg.Remover.Enqueue(msg.containerID, msg.taskID, time.Now())
		}
		return
	}
	m.touch(t)
	if msg.containerID != "" && t.containerID == "" {
		t.containerID = msg.containerID
		m.byContainer[msg.containerID] = t
		t.log = t.log.WithField("container_id", msg.containerID)
	}
	switch msg.stage {
	case stageCreated:
	case stageFailed:
		t.cancelLaunch = nil
		if t.phase == phaseTerminal {
			m.queueRemoval(t, 0)
			return
		}
		switch {
		case t.killing() && t.kill.cause == causeMaxCompletion:
			// The framework did not ask for this kill: the task ran out
			// of time before its container started.
			m.terminate(t, mesos.TASK_FAILED, mesos.REASON_MAX_COMPLETION_TIME_REACHED,
				fmt.Sprintf("max_completion_time of %s reached before the container started", t.cfg.maxCompletion))
		case t.killing():
			m.terminate(t, mesos.TASK_KILLED, mesos.REASON_TASK_KILLED_DURING_LAUNCH, "killed before the container started")
		default:
			t.log.WithError(msg.err).Warn("container launch failed")
			m.terminate(t, mesos.TASK_FAILED, mesos.REASON_CONTAINER_LAUNCH_FAILED, msg.err.Error())
		}
		if t.containerID != "" {
			m.queueRemoval(t, 0)
		}
	case stageStarted:
		t.cancelLaunch = nil
		t.gated = msg.gated
		if t.phase == phaseTerminal {
			// Terminal already (the shutdown deadline passed): make
			// sure the container does not live on.
			m.closeFiles(msg.files)
			m.closeGate(t)
			m.queueRemoval(t, 0)
			return
		}
		if err := t.enter(phaseRunning); err != nil {
			t.log.WithError(err).Error("launch step out of order")
			m.closeFiles(msg.files)
			return
		}
		t.startedAt = time.Now()
		t.launchStep = ""
		if len(msg.info.IPs) > 0 {
			t.dockerIP = msg.info.IPs[0]
			t.ip = t.dockerIP
		}
		if t.ip == "" && t.gated != nil {
			for _, r := range t.gated.results {
				if a := r.Addrs(); len(a) > 0 {
					t.ip = a[0]
					break
				}
			}
		}
		t.stopSignal = msg.info.StopSignal
		t.pid = msg.info.Pid
		t.files = msg.files
		m.followLogs(t)
		if t.killing() {
			// A kill started while the container was starting: a
			// RUNNING now would tell the framework the task came back
			// after TASK_KILLING.
			m.signal(t)
		} else {
			m.setState(t, mesos.TASK_RUNNING, 0, msg.note)
			t.log.WithField("ip", t.ip).Info("task running")
			m.startChecks(t)
		}
		if e := t.pendingExit; e != nil {
			t.pendingExit = nil
			m.onExit(*e, false)
		}
	}
}

// onStep records a gated launch's current step, for /state.
func (m *Manager) onStep(msg stepMsg) {
	if t := m.tasks[msg.taskID]; t != nil && t.gen == msg.gen && t.phase == phaseLaunching {
		t.launchStep = msg.step
		m.touch(t)
	}
}

// closeFiles closes a run's files off the loop.
func (m *Manager) closeFiles(f *sandbox.TaskFiles) {
	if f == nil {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		_ = f.Close()
	}()
}
