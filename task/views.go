package task

import (
	"sort"
	"sync"
	"time"
)

// viewTable is what the status socket reads: one View per task id, live or
// finished, updated by the loop only for the tasks a message changed, so that
// the cost of a message does not grow with the number of tasks.
type viewTable struct {
	mu    sync.RWMutex
	byID  map[string]View
	count int
	// loop is the loop latency histogram; it lives here, beside the other
	// numbers the status socket reads, and is safe for any goroutine.
	loop LoopLatency
}

func (v *viewTable) init() { v.byID = map[string]View{} }

// publishViews republishes the views of the tasks changed since the last
// call: the live task if the id has one, else its finished record, else
// nothing.
func (m *Manager) publishViews() {
	if len(m.dirty) == 0 {
		return
	}
	m.views.mu.Lock()
	for id := range m.dirty {
		if t := m.tasks[id]; t != nil {
			m.views.byID[id] = m.view(t)
		} else if r, ok := m.finished.get(id); ok {
			m.views.byID[id] = r.view
		} else {
			delete(m.views.byID, id)
		}
	}
	m.views.count = len(m.views.byID)
	m.views.mu.Unlock()
	clear(m.dirty)
}

// touch marks a task's view for republishing.
func (m *Manager) touch(t *task) { m.dirty[t.id] = struct{}{} }

// view builds the read-only copy of a task.
func (m *Manager) view(t *task) View {
	v := View{
		TaskID: t.id, State: t.state.String(), ContainerID: t.containerID, Healthy: t.healthy,
		Image: t.cfg.spec.Image, IP: t.ip, ExitCode: t.exitCode, Reason: t.reason, Message: t.msg,
		// Appends never touch the first len(history) entries, so the view
		// can share them.
		History: t.history[:len(t.history):len(t.history)],
	}
	if t.started() {
		v.Pid = t.pid
	}
	v.Launch = t.launchStep
	if t.gated != nil {
		for _, r := range t.gated.results {
			v.Networks = append(v.Networks, NetworkView{Name: r.Network, IfName: r.IfName, IPs: r.Addrs()})
		}
	}
	if !t.startedAt.IsZero() {
		s := t.startedAt
		v.StartedAt = &s
	}
	if !t.finishedAt.IsZero() {
		f := t.finishedAt
		v.FinishedAt = &f
	}
	return v
}

// Snapshot returns a copy of every task, live and recently finished, sorted
// by task id, for the status socket. Any goroutine may call it.
func (m *Manager) Snapshot() []View {
	m.views.mu.RLock()
	out := make([]View, 0, len(m.views.byID))
	for _, v := range m.views.byID {
		out = append(out, v)
	}
	m.views.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].TaskID < out[j].TaskID })
	return out
}

// TaskView returns one task's view.
func (m *Manager) TaskView(id string) (View, bool) {
	m.views.mu.RLock()
	defer m.views.mu.RUnlock()
	v, ok := m.views.byID[id]
	return v, ok
}

// FinishedTasks returns when each finished task ended, for the sandbox
// retention sweep. Any goroutine may call it.
func (m *Manager) FinishedTasks() map[string]time.Time {
	m.views.mu.RLock()
	defer m.views.mu.RUnlock()
	out := map[string]time.Time{}
	for id, v := range m.views.byID {
		if v.FinishedAt != nil {
			out[id] = *v.FinishedAt
		}
	}
	return out
}
