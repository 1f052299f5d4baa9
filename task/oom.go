package task

import (
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/isolation"
)

// CgroupStats is what the task manager needs of the cgroup stats reader
// (*isolation.Reader): the last sample of a container, whose OOM counter
// outlives the cgroup removed at exit.
type CgroupStats interface {
	Last(containerID string) (isolation.Stats, bool)
	Forget(containerID string)
}

// ExitOOM decides whether the OOM killer ended a task's container: Docker's
// report (e.OOMKilled: State.OOMKilled or an "oom" event), the cgroup's
// oom_kill counter at the last sample (stats may be nil), and the exit itself
// (a SIGKILL the executor did not send: killing is true once the executor
// signalled the container). memLimit is the container's hard limit
// (launchConfig.memLimit, 0 = none). When the verdict is Killed the task ends
// TASK_FAILED with REASON_CONTAINER_LIMITATION_MEMORY and the verdict's
// message; otherwise a non-empty message (a child process was OOM-killed
// earlier) belongs after the exit's own.
func ExitOOM(stats CgroupStats, e containerd.Exit, killing bool, memLimit int64) isolation.OOMVerdict {
	ev := isolation.ExitEvidence{ExitCode: e.ExitCode, DockerOOM: e.OOMKilled, KilledByExecutor: killing, LimitBytes: memLimit}
	if stats != nil {
		if s, ok := stats.Last(e.ContainerID); ok {
			ev.Last = &s
		}
	}
	return isolation.DecideOOM(ev)
}

// LimitationFor is TaskStatus.limitation for a terminal update with reason:
// the mem resource and its limit for REASON_CONTAINER_LIMITATION_MEMORY, nil
// for any other reason.
func LimitationFor(reason mesos.TaskStatus_Reason, memLimit int64) *mesos.TaskResourceLimitation {
	if reason != mesos.REASON_CONTAINER_LIMITATION_MEMORY {
		return nil
	}
	return isolation.MemoryLimitation(memLimit)
}
