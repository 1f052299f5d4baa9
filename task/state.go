package task

import (
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// transitions lists the Mesos states each state may move to. Updates are
// built only through (*task).setState, which refuses anything else, so a
// terminal task can never be revived by a late event.
var transitions = map[mesos.TaskState][]mesos.TaskState{
	mesos.TASK_STAGING:  {mesos.TASK_STARTING, mesos.TASK_FAILED, mesos.TASK_KILLED},
	mesos.TASK_STARTING: {mesos.TASK_RUNNING, mesos.TASK_KILLING, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_FINISHED},
	mesos.TASK_RUNNING:  {mesos.TASK_RUNNING, mesos.TASK_KILLING, mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED},
	mesos.TASK_KILLING:  {mesos.TASK_RUNNING, mesos.TASK_KILLING, mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED},
}

func isTerminal(s mesos.TaskState) bool {
	switch s {
	case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_LOST,
		mesos.TASK_ERROR, mesos.TASK_DROPPED, mesos.TASK_GONE:
		return true
	}
	return false
}

func canMove(from, to mesos.TaskState) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// HistoryEntry is one status update sent for a task.
type HistoryEntry struct {
	State   string    `json:"state"`
	Reason  string    `json:"reason,omitempty"`
	Message string    `json:"message,omitempty"`
	Healthy *bool     `json:"healthy,omitempty"`
	Time    time.Time `json:"time"`
}

// View is a read-only copy of one task for the status socket.
type View struct {
	TaskID      string
	State       string
	ContainerID string
	Pid         int // the container's init process on the host; 0 when not running
	Healthy     *bool
	Image       string
	IP          string
	ExitCode    *int
	Reason      string
	Message     string
	StartedAt   *time.Time
	FinishedAt  *time.Time
	History     []HistoryEntry
	Networks    []NetworkView // CNI attachments
	Launch      string        // a gated launch's current step; "" once released
}

// maxHistory bounds each task's status history kept for /tasks/{id}.
const maxHistory = 32
