package task

import (
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
)

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

func (m *Manager) allTerminal() bool { return m.liveCount() == 0 }

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
	for _, tm := range []*time.Timer{m.shutdownTimer, m.houseTimer} {
		if tm != nil {
			tm.Stop()
		}
	}
	for _, t := range m.tasks {
		// Run waits for the log followers; a live container's stream
		// would otherwise hold it until the container exits.
		t.release()
		m.closeFiles(t.files)
		t.files = nil
	}
}
