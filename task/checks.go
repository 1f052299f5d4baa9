package task

import (
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/health"
)

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
	if t == nil || t.phase != phaseRunning || t.killing() {
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
	if t == nil || t.phase != phaseRunning || t.killing() {
		return
	}
	st := msg.status
	t.checkStatus = &st
	m.setState(t, mesos.TASK_RUNNING, mesos.REASON_TASK_CHECK_STATUS_UPDATED, "")
}
