package isolation

import (
	"fmt"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// ExitEvidence is what is known of a container's end when deciding whether
// the OOM killer ended it.
type ExitEvidence struct {
	ExitCode int
	// DockerOOM: Docker's State.OOMKilled or an "oom" event for the
	// container. Docker sets both for an OOM kill of any process in the
	// container, not only its main one, and keeps the flag (moby #43564).
	DockerOOM bool
	// KilledByExecutor: the executor sent the container a signal (KILL,
	// SHUTDOWN, health or timeout kill), which explains a SIGKILL exit.
	KilledByExecutor bool
	// Last is the last sample of the container's cgroup (Reader.Last),
	// nil when none was taken: the cgroup is gone once it exits.
	Last *Stats
	// LimitBytes is the container's hard memory limit; 0 = none.
	LimitBytes int64
}

// OOMVerdict is the decision and the words for the task's status.
type OOMVerdict struct {
	// Killed: the task died of the OOM killer: report TASK_FAILED with
	// REASON_CONTAINER_LIMITATION_MEMORY (see ApplyOOM).
	Killed bool
	// ProcessesKilled is the cgroup's oom_kill count at the last sample.
	ProcessesKilled uint64
	// Message names the limit and the peak when Killed; otherwise, when
	// some process was OOM-killed but the task ended otherwise, it says so
	// (to append to the exit message), else "".
	Message string
}

// sigkillExit is how Docker reports a main process killed by SIGKILL (the OOM
// killer's signal), directly or through docker-init.
const sigkillExit = 128 + 9

// DecideOOM decides whether the OOM killer ended the task. Evidence of an OOM
// kill (Docker's flag or event, or the cgroup's oom_kill counter) is needed,
// and the main process must have died of SIGKILL that the executor did not
// send: a container whose child was OOM-killed while the main process went on
// and exited by itself did not die of it, and exit 137 alone is no proof (a
// docker kill gives the same).
func DecideOOM(ev ExitEvidence) OOMVerdict {
	var v OOMVerdict
	var peak uint64
	if ev.Last != nil {
		v.ProcessesKilled = ev.Last.OOMKills
		peak = ev.Last.MemoryPeakBytes
	}
	evidence := ev.DockerOOM || v.ProcessesKilled > 0
	switch {
	case !evidence:
		return v
	case ev.ExitCode == sigkillExit && !ev.KilledByExecutor:
		v.Killed = true
		v.Message = "container was OOM-killed: " + limitText(ev.LimitBytes)
		if peak > 0 {
			v.Message += fmt.Sprintf(", peak usage %s", mib(peak))
		}
		if v.ProcessesKilled > 0 {
			v.Message += fmt.Sprintf(" (%d process(es) killed by the OOM killer)", v.ProcessesKilled)
		}
	default:
		n := "a process"
		if v.ProcessesKilled > 1 {
			n = fmt.Sprintf("%d processes", v.ProcessesKilled)
		}
		v.Message = fmt.Sprintf("%s in the container was OOM-killed earlier (%s)", n, limitText(ev.LimitBytes))
	}
	return v
}

func limitText(limit int64) string {
	if limit <= 0 {
		return "no memory limit of its own (an enclosing or host limit was reached)"
	}
	return "memory limit " + mib(uint64(limit)) + " reached"
}

func mib(b uint64) string {
	if b%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", b>>20)
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// MemoryLimitation is TaskStatus.limitation for a memory limit: the "mem"
// resource with the limit in MiB (Mesos's unit), as the Mesos containerizer's
// memory isolator reports it. A zero limit names "mem" without a value.
func MemoryLimitation(limitBytes int64) *mesos.TaskResourceLimitation {
	r := mesos.Resource{Name: "mem", Type: mesos.SCALAR.Enum()}
	if limitBytes > 0 {
		r.Scalar = &mesos.Value_Scalar{Value: float64(limitBytes) / (1 << 20)}
	}
	return &mesos.TaskResourceLimitation{Resources: []mesos.Resource{r}}
}

// ApplyOOM sets the terminal status of an OOM-killed task: TASK_FAILED,
// REASON_CONTAINER_LIMITATION_MEMORY, SOURCE_EXECUTOR when unset, the
// verdict's message and the limitation naming mem.
func ApplyOOM(st *mesos.TaskStatus, v OOMVerdict, limitBytes int64) {
	st.State = mesos.TASK_FAILED.Enum()
	st.Reason = mesos.REASON_CONTAINER_LIMITATION_MEMORY.Enum()
	if st.Source == nil {
		st.Source = mesos.SOURCE_EXECUTOR.Enum()
	}
	msg := v.Message
	st.Message = &msg
	st.Limitation = MemoryLimitation(limitBytes)
}
