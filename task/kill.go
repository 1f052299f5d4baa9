package task

import (
	"context"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
)

func (m *Manager) onKill(id string, override *mesos.KillPolicy) {
	t := m.tasks[id]
	if t == nil {
		if _, done := m.finished.get(id); done {
			// Finished and acknowledged: the agent has its terminal
			// update, and a second one would be dropped as invalid.
			m.log.WithField("task_id", id).Info("KILL for a finished task; nothing to do")
			return
		}
		// The agent knows a task this executor never saw (its LAUNCH
		// was lost in a broken stream): report it killed, once, as the
		// default executor does, instead of aborting like the others.
		m.log.WithField("task_id", id).Warn("KILL for an unknown task; reporting it killed")
		m.nextGen++
		t = &task{id: id, gen: m.nextGen, info: &mesos.TaskInfo{TaskID: mesos.TaskID{Value: id}},
			log: m.log.WithField("task_id", id), state: mesos.TASK_STAGING, phase: phaseLaunching}
		m.tasks[id] = t
		m.counters.LiveTasks.Store(int64(len(m.tasks)))
		m.terminate(t, mesos.TASK_KILLED, 0, "kill requested for a task this executor does not know (its launch never arrived)")
		return
	}
	if t.phase == phaseTerminal {
		return
	}
	grace := t.cfg.killGrace
	if override != nil && override.GracePeriod != nil {
		// An override may only shorten the grace (as the command executor).
		grace = min(grace, time.Duration(max(override.GracePeriod.Nanoseconds, 0)))
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
	m.touch(t)
	deadline := time.Now().Add(max(grace, 0))
	if t.killing() {
		if deadline.Before(t.kill.deadline) {
			t.kill.deadline = deadline
			t.log.WithField("grace", grace).Info("kill grace shortened")
			if t.started() {
				m.armKillTimer(t, time.Until(deadline), timerEscalate)
			}
		}
		return
	}
	t.kill = &killState{cause: cause, deadline: deadline}
	m.stopChecks(t)
	t.log.WithFields(logrus.Fields{"grace": grace, "cause": cause.String()}).Info("killing task")
	if m.killingCap && cause != causeMaxCompletion {
		m.setState(t, mesos.TASK_KILLING, 0, "")
	}
	if !t.started() {
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
	left := time.Until(t.kill.deadline)
	if left <= 0 {
		m.sendSignal(t, "SIGKILL")
		m.armKillTimer(t, m.cfg.KillRetry, timerRetry)
		return
	}
	sig := t.stopSignal
	if sig == "" {
		sig = "SIGTERM"
	}
	m.sendSignal(t, sig)
	m.armKillTimer(t, left, timerEscalate)
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

func (m *Manager) armKillTimer(t *task, d time.Duration, kind timerKind) {
	if t.killTimer != nil {
		t.killTimer.Stop()
	}
	t.timerGen++
	t.killTimer = m.after(d, timerMsg{taskID: t.id, kind: kind, gen: t.timerGen})
}

func (m *Manager) onTimer(msg timerMsg) {
	t := m.tasks[msg.taskID]
	if t == nil {
		return
	}
	switch msg.kind {
	case timerMax:
		if t.phase != phaseTerminal {
			t.log.WithField("max_completion_time", t.cfg.maxCompletion).Info("max_completion_time reached")
			m.kill(t, 0, causeMaxCompletion)
		}
	case timerEscalate, timerRetry:
		if msg.gen != t.timerGen || t.phase == phaseTerminal || !t.started() {
			return
		}
		if msg.kind == timerRetry {
			// Docker did not confirm the exit: keep at it rather than
			// report a task dead that may still run.
			t.log.Warn("container exit not confirmed after SIGKILL; sending SIGKILL again")
		}
		m.sendSignal(t, "SIGKILL")
		m.armKillTimer(t, m.cfg.KillRetry, timerRetry)
	}
}
