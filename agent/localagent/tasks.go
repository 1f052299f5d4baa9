package localagent

import (
	"sort"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/sirupsen/logrus"
)

// isTerminal mirrors protobuf::isTerminalState.
func isTerminal(s mesos.TaskState) bool {
	switch s {
	case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_LOST,
		mesos.TASK_ERROR, mesos.TASK_DROPPED, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}

// lostStateLocked is the state the agent reports for a task that never
// reached the executor: TASK_DROPPED for partition-aware frameworks,
// TASK_LOST otherwise. a.mu must be held.
func (a *Agent) lostStateLocked() mesos.TaskState {
	for _, c := range a.opts.Capabilities {
		if c == mesos.FrameworkInfo_Capability_PARTITION_AWARE {
			return mesos.TASK_DROPPED
		}
	}
	return mesos.TASK_LOST
}

// statusUpdateLocked applies an update to the agent's task state the way
// Slave::statusUpdate and Executor::updateTaskState do, records it, and
// reports whether the agent acknowledges it to the executor. a.mu must be
// held.
func (a *Agent) statusUpdateLocked(u Update) (ack bool) {
	ack = a.applyLocked(&u)
	if u.Status.GetSource() == mesos.SOURCE_AGENT {
		// Agent-generated updates go to the master only (pid is UPID()).
		ack = false
	}
	u.Acked = ack && !a.withholdAcks
	a.log.WithFields(logrus.Fields{
		"task_id":   u.Status.TaskID.Value,
		"state":     u.Status.GetState().String(),
		"duplicate": u.Duplicate,
		"ack":       u.Acked,
	}).Debug("status update")
	a.updates = append(a.updates, u)
	close(a.updated)
	a.updated = make(chan struct{})
	return u.Acked
}

// applyLocked updates task state and reports whether the agent would ACK.
// a.mu must be held.
func (a *Agent) applyLocked(u *Update) bool {
	st := &u.Status
	key := string(st.UUID)
	u.Duplicate = a.seen[key]
	a.seen[key] = true

	// An update naming another agent is ignored, without an ACK
	// (S:6003-6018).
	if st.AgentID != nil && st.AgentID.Value != a.opts.AgentID {
		return false
	}
	t := a.tasks[st.TaskID.Value]
	if t == nil {
		// Forwarded to the master, but the ACK path cannot find the
		// executor of an unknown task, so the executor never gets one.
		return false
	}
	state := st.GetState()
	terminal := isTerminal(state)
	switch {
	case t.terminated:
		// "Task is already terminated": dropped, but ACKed so that the
		// executor stops retrying.
	case t.queued && !terminal:
		// "Cannot send non-terminal update for queued task": same.
	default:
		if t.queued {
			a.dequeueLocked(st.TaskID.Value)
		}
		// A duplicate uuid still passes through here (the status update
		// manager drops it later and ACKs again), as in the agent.
		t.state = state
		t.terminated = terminal
	}
	return true
}

// dequeueLocked removes a task from the LAUNCH queue. a.mu must be held.
func (a *Agent) dequeueLocked(id string) {
	t := a.tasks[id]
	t.queued = false
	for i, q := range a.queue {
		if q == id {
			a.queue = append(a.queue[:i], a.queue[i+1:]...)
			return
		}
	}
}

// agentUpdateLocked records an update the agent generates itself
// (source SOURCE_AGENT). a.mu must be held.
func (a *Agent) agentUpdateLocked(taskID string, state mesos.TaskState, reason mesos.TaskStatus_Reason, msg string) {
	id := uuid.New()
	now := time.Now()
	ts := float64(now.UnixNano()) / 1e9
	a.statusUpdateLocked(Update{
		Status: mesos.TaskStatus{
			TaskID:     mesos.TaskID{Value: taskID},
			State:      state.Enum(),
			Source:     mesos.SOURCE_AGENT.Enum(),
			Reason:     reason.Enum(),
			Message:    proto.String(msg),
			AgentID:    &mesos.AgentID{Value: a.opts.AgentID},
			ExecutorID: &mesos.ExecutorID{Value: a.opts.ExecutorID},
			Timestamp:  &ts,
			UUID:       id[:],
		},
		UUID:     id[:],
		Received: now,
	})
}

// subscribedLocked does what Slave::subscribe does for a RUNNING or
// REGISTERING executor once s is its new stream: replay the executor's
// unacknowledged updates, fail the launched tasks it does not know, send
// SUBSCRIBED, then the queued LAUNCHes. replayRaw holds the updates' bytes as
// received, in the order of sub.UnacknowledgedUpdates. a.mu must be held.
func (a *Agent) subscribedLocked(s *stream, sub *executor.Call_Subscribe, replayRaw [][]byte, contentType string) {
	if a.stream != nil {
		// Closing the earlier connection ends its response cleanly.
		a.stream.end(false)
	}
	a.stream = s
	a.registering = false

	now := time.Now()
	var acks []executor.Event_Acknowledged
	for i, cu := range sub.UnacknowledgedUpdates {
		u := Update{
			Status:      cu.Status,
			UUID:        cu.Status.UUID,
			Received:    now,
			ContentType: contentType,
			Replayed:    true,
		}
		if i < len(replayRaw) {
			u.Raw = replayRaw[i]
		}
		if a.statusUpdateLocked(u) {
			acks = append(acks, executor.Event_Acknowledged{TaskID: cu.Status.TaskID, UUID: cu.Status.UUID})
		}
	}

	known := make(map[string]bool, len(sub.UnacknowledgedTasks))
	for _, t := range sub.UnacknowledgedTasks {
		known[t.TaskID.Value] = true
	}
	var lost []string
	for id, t := range a.tasks {
		// A launched task still STAGING that the executor does not report
		// never reached it: its LAUNCH was lost, e.g. in a restart.
		if !t.queued && t.state == mesos.TASK_STAGING && !known[id] {
			lost = append(lost, id)
		}
	}
	sort.Strings(lost)
	for _, id := range lost {
		a.agentUpdateLocked(id, a.lostStateLocked(), mesos.REASON_AGENT_RESTARTED,
			"Task launched during agent restart")
	}

	a.sendLocked(a.subscribedEventLocked())
	for _, id := range a.queue {
		a.launchLocked(id)
	}
	a.queue = nil
	for i := range acks {
		a.sendLocked(&executor.Event{Type: executor.Event_ACKNOWLEDGED, Acknowledged: &acks[i]})
	}

	a.subscribeCount++
	a.lastSubscribe = sub
	if a.subscribeCount == 1 {
		close(a.subscribed)
	}
	a.maybeRecoveredLocked()
}

// subscribedEventLocked builds SUBSCRIBED. a.mu must be held.
func (a *Agent) subscribedEventLocked() *executor.Event {
	caps := make([]mesos.FrameworkInfo_Capability, 0, len(a.opts.Capabilities))
	for _, c := range a.opts.Capabilities {
		caps = append(caps, mesos.FrameworkInfo_Capability{Type: c})
	}
	fwID := mesos.FrameworkID{Value: a.opts.FrameworkID}
	agentID := mesos.AgentID{Value: a.opts.AgentID}
	var port *int32
	if _, p, ok := splitPort(a.addr); ok {
		port = proto.Int32(p)
	}
	return &executor.Event{
		Type: executor.Event_SUBSCRIBED,
		Subscribed: &executor.Event_Subscribed{
			ExecutorInfo: mesos.ExecutorInfo{
				Type:        mesos.ExecutorInfo_CUSTOM,
				ExecutorID:  mesos.ExecutorID{Value: a.opts.ExecutorID},
				FrameworkID: &fwID,
				Name:        proto.String(a.opts.ExecutorID),
			},
			FrameworkInfo: mesos.FrameworkInfo{
				User:         currentUser(),
				Name:         "localagent",
				ID:           &fwID,
				Capabilities: caps,
				Checkpoint:   proto.Bool(a.opts.Checkpoint),
			},
			AgentInfo: mesos.AgentInfo{
				Hostname: Hostname,
				Port:     port,
				ID:       &agentID,
			},
			ContainerID: &mesos.ContainerID{Value: ContainerID},
		},
	}
}
