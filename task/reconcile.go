package task

import (
	"context"
	"fmt"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/containerd"
)

// startReconcile checks every started task's container against Docker on a
// goroutine of its own: a container that vanished while the events stream
// was down (or was removed behind the executor's back) would otherwise keep
// its task RUNNING for ever. One reconcile runs at a time.
func (m *Manager) startReconcile() {
	m.lastReconcile = time.Now()
	if m.reconciling {
		return
	}
	var cids []string
	for _, t := range m.tasks {
		if t.phase == phaseRunning && t.containerID != "" {
			cids = append(cids, t.containerID)
		}
	}
	if len(cids) == 0 {
		return
	}
	m.reconciling = true
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer m.post(reconcileDone{})
		for _, cid := range cids {
			select {
			case <-m.done:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			info, err := m.rt.Inspect(ctx, cid)
			cancel()
			switch {
			case err != nil && containerd.IsNotFound(err):
				m.post(vanishedMsg{containerID: cid, err: err})
			case err != nil:
				// A busy daemon: the next reconcile tries again.
			case !info.Running:
				// The exit was missed (the events stream was down):
				// report it as the events stream would have.
				m.post(exitMsg{containerd.Exit{ContainerID: cid, TaskID: info.Labels[containerd.LabelTask],
					ExitCode: info.ExitCode, OOMKilled: info.OOMKilled, FinishedAt: info.FinishedAt, Error: info.Error}})
			}
		}
	}()
}

// onVanished ends a task whose container no longer exists, once.
func (m *Manager) onVanished(msg vanishedMsg) {
	t := m.byContainer[msg.containerID]
	if t == nil || t.phase == phaseTerminal {
		return
	}
	m.counters.Vanished.Add(1)
	t.log.WithError(msg.err).Error("the task's container disappeared (removed outside the executor); failing the task")
	if t.killing() {
		m.terminate(t, mesos.TASK_KILLED, 0, "task killed; its container disappeared before its exit was seen")
		return
	}
	m.terminate(t, mesos.TASK_FAILED, mesos.REASON_EXECUTOR_TERMINATED,
		fmt.Sprintf("the container %s disappeared while the task ran (removed outside the executor); its exit status is unknown", shortID(msg.containerID)))
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
