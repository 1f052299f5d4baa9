package task

import (
	"fmt"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/mdx-executor/mdx/containerd"
)

// onExit handles a container's exit. The terminal update goes out as soon
// as the exit is known (afterOOMWait false is the report from the exit
// watcher); afterOOMWait true is the same exit coming back after oomGrace.
//
// The update does not wait for the task's log stream to end: Docker ends
// that stream only after its cleanup (network teardown, unmounts), about
// 20 ms after the die event here and far more on a busy host, and everything
// the container wrote is already in Docker's log by its exit. The follower
// finishes the sandbox copy from there on its own (see terminate).
func (m *Manager) onExit(e containerd.Exit, afterOOMWait bool) {
	if !afterOOMWait {
		m.observeExitLatency(e)
		e.Sent = time.Time{} // a replayed pendingExit is not a second sample
	}
	t := m.byContainer[e.ContainerID]
	if t == nil || t.phase == phaseTerminal {
		return // not ours, or a repeated report
	}
	m.touch(t)
	if e.OOMKilled {
		t.oom = oomReported
	}
	if !t.started() {
		t.pendingExit = &e
		return
	}
	if !afterOOMWait {
		switch {
		case t.phase != phaseExiting:
			if err := t.enter(phaseExiting); err != nil {
				t.log.WithError(err).Error("exit out of order")
				return
			}
			if t.exitSeen != nil {
				close(t.exitSeen) // the log follower need not inspect
			}
		case !e.OOMKilled:
			return // a repeated report while the exit waits for oomGrace
		default:
			// The late OOM report a SIGKILL exit is waiting for: no need
			// to wait out oomGrace; the timer's message finds the task
			// terminal.
		}
	}
	e.OOMKilled = e.OOMKilled || t.oom == oomReported
	if e.ExitCode == 137 && !e.OOMKilled && !t.killing() && t.oom == oomUnknown {
		// Killed by SIGKILL and not by this executor: most likely the
		// OOM killer, whose report from Docker can trail the exit. Give
		// it a moment before calling it a plain failure.
		t.oom = oomWaited
		m.after(oomGrace, oomWaitedMsg{e})
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
	// Docker's oom report, the cgroup's oom_kill counter and the exit
	// itself decide together.
	v := ExitOOM(m.cfg.Stats, e, t.killing(), t.cfg.memLimit)
	note := ""
	if !v.Killed && v.Message != "" {
		note = "; " + v.Message
	}
	switch {
	case t.killing() && t.kill.cause == causeMaxCompletion:
		return mesos.TASK_FAILED, mesos.REASON_MAX_COMPLETION_TIME_REACHED,
			fmt.Sprintf("max_completion_time of %s reached; container %s", t.cfg.maxCompletion, desc)
	case t.killing() && t.kill.cause == causeHealth:
		return mesos.TASK_KILLED, 0, fmt.Sprintf("task failed its health check and was killed (%s); container %s", t.healthWhy, desc)
	case t.killing():
		return mesos.TASK_KILLED, 0, "task killed; container " + desc
	case v.Killed:
		return mesos.TASK_FAILED, mesos.REASON_CONTAINER_LIMITATION_MEMORY, v.Message + " (" + desc + ")"
	case e.ExitCode == 0:
		return mesos.TASK_FINISHED, 0, "container " + desc + note
	default:
		msg := "container " + desc
		if e.Error != "" {
			msg += ": " + e.Error
		}
		return mesos.TASK_FAILED, 0, msg + note
	}
}

func describeExit(code int) string {
	if code > 128 && code < 128+65 {
		sig := syscall.Signal(code - 128)
		return fmt.Sprintf("exited with status %d (killed by signal %d, %s)", code, code-128, unix.SignalName(sig))
	}
	return fmt.Sprintf("exited with status %d", code)
}

// terminate sends a task's terminal update and releases what it holds except
// the container, which is removed after RemoveDelay.
func (m *Manager) terminate(t *task, state mesos.TaskState, reason mesos.TaskStatus_Reason, msg string) {
	if t.phase == phaseTerminal {
		return
	}
	if t.killing() && t.kill.cause == causeHealth {
		f := false
		t.healthy = &f
	}
	m.setState(t, state, reason, msg)
	// An exited container's output is all in Docker's log: let the
	// follower finish copying it into the sandbox (its stream ends by
	// itself) instead of cutting the copy short, for at most logDrainMax.
	// A task that ends any other way (vanished, failed launch) stops its
	// follower now.
	lingering := t.phase == phaseExiting && t.cancelLogs != nil
	cancelLogs := t.cancelLogs
	if lingering {
		t.cancelLogs = nil
	}
	t.phase = phaseTerminal // every phase may end
	t.finishedAt = time.Now()
	m.stopChecks(t)
	if reason != 0 {
		m.countFailure(reason)
	} else if state == mesos.TASK_FAILED {
		m.countFailure(mesos.REASON_COMMAND_EXECUTOR_FAILED)
	}
	t.release()
	if lingering {
		// Kept, so that a shutdown (stopAllTimers) still cuts it short.
		t.cancelLogs = cancelLogs
		time.AfterFunc(logDrainMax, cancelLogs)
	}
	if m.cfg.Stats != nil && t.containerID != "" {
		m.cfg.Stats.Forget(t.containerID)
	}
	m.closeFiles(t.files)
	t.files = nil
	// CNI DEL and the poststop hooks, after the exit is reported.
	m.closeGate(t)
	if t.containerID != "" {
		// Exit first, remove later: the terminal update is queued
		// above, and the container (its logs, its exit state) stays for
		// RemoveDelay for an operator to look at. At shutdown the
		// executor drains the queue without waiting.
		m.queueRemoval(t, m.cfg.RemoveDelay)
	}
	m.armIdle()
}

// setState builds and publishes one status update, enforcing the Mesos state
// machine.
func (m *Manager) setState(t *task, s mesos.TaskState, reason mesos.TaskStatus_Reason, msg string) {
	if !canMove(t.state, s) {
		t.log.WithFields(logrus.Fields{"from": t.state.String(), "to": s.String()}).Error("refusing an invalid task state transition")
		return
	}
	m.touch(t)
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
		st.Limitation = LimitationFor(reason, t.cfg.memLimit)
	}
	if nis := t.networkInfos(); len(nis) > 0 {
		st.ContainerStatus = &mesos.ContainerStatus{NetworkInfos: nis}
	}
	if uuid := m.pub.Update(st); len(uuid) > 0 {
		if t.unacked == nil {
			t.unacked = map[string]struct{}{}
		}
		t.unacked[string(uuid)] = struct{}{}
	}
	h := HistoryEntry{State: s.String(), Reason: t.reason, Message: msg, Healthy: t.healthy, Time: time.Now()}
	if len(t.history) >= maxHistory {
		// Views share the backing array, so drop the oldest by copying,
		// never in place.
		t.history = append([]HistoryEntry(nil), t.history[1:]...)
	}
	t.history = append(t.history, h)
}

// queueRemoval hands the task's container to the Remover, once.
func (m *Manager) queueRemoval(t *task, after time.Duration) {
	if t.containerID == "" || t.removeQueued || m.cfg.Remover == nil {
		return
	}
	t.removeQueued = true
	m.cfg.Remover.Enqueue(t.containerID, t.id, time.Now().Add(after))
}
