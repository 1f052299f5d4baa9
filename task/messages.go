package task

import (
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/sandbox"
)

// The loop's messages. Everything that happens to a task arrives as one of
// these on the inbox; only the loop goroutine changes a task.
type (
	shutdownMsg struct{ why string }

	// launchMsg is one step of a task's launch goroutine.
	launchMsg struct {
		taskID      string
		gen         uint64 // the task run it belongs to
		containerID string
		stage       launchStage
		info        containerd.Info    // stageStarted: the container's facts
		files       *sandbox.TaskFiles // stageStarted: the run's log files, now the loop's
		err         error              // stageFailed
		note        string             // stageStarted: said in TASK_RUNNING's message (a pull fallback)
		gated       *gated             // stageStarted: a gated run's gate and CNI results
	}
	// stepMsg: a gated launch began a step.
	stepMsg struct {
		taskID string
		gen    uint64
		step   string
	}
	exitMsg struct{ exit containerd.Exit }
	// oomWaitedMsg: a SIGKILL exit has waited oomGrace for a late OOM report.
	oomWaitedMsg struct{ exit containerd.Exit }
	// vanishedMsg: the reconcile found no container for a live task.
	vanishedMsg struct {
		containerID string
		err         error
	}
	reconcileDone struct{}
	timerMsg      struct {
		taskID string
		kind   timerKind
		gen    int
	}
	idleMsg         struct{ gen int }
	houseTick       struct{}
	reconcileNow    struct{}
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

// launchStage is how far a launch goroutine got.
type launchStage int

const (
	stageCreated launchStage = iota + 1 // the container exists (its id is known)
	stageStarted                        // it runs, and its pid (and address) are known
	stageFailed                         // the launch ended without a running container
)

// timerKind says what a task timer is for.
type timerKind int

const (
	timerEscalate timerKind = iota + 1 // the kill grace ended: SIGKILL
	timerRetry                         // SIGKILL not confirmed: send it again
	timerMax                           // max_completion_time reached
)

func (k timerKind) String() string {
	switch k {
	case timerEscalate:
		return "escalate"
	case timerRetry:
		return "retry"
	case timerMax:
		return "max"
	}
	return "unknown"
}
