package e2e

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/containerd"
)

// TestHappyPath runs one task to completion and checks every update the
// executor sends on the way, the address it reports and the task's output.
func TestHappyPath(t *testing.T) {
	t.Parallel()
	h := start(t, config{})

	// The sleep keeps the container up while the executor inspects it after
	// the start: a container that has already exited has no address.
	const id = "hello"
	h.launch(id, args("echo", "hi", "--", "stderr", "oops", "--", "sleep", "2s"))
	running := h.waitState(id, mesos.TASK_RUNNING)

	ip := reportedIP(running)
	if parsed := net.ParseIP(ip); parsed == nil || parsed.IsLoopback() || parsed.IsUnspecified() {
		t.Errorf("RUNNING container_status IP = %q, want the container's address on the bridge", ip)
	}
	// Cross-check with Docker: the address is the container's own.
	if cs := h.taskContainers(id); len(cs) != 1 {
		t.Errorf("task %s has %d containers, want 1", id, len(cs))
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
		info, err := h.docker.Inspect(ctx, cs[0].ID)
		cancel()
		switch {
		case err != nil:
			t.Errorf("inspect the task's container: %v", err)
		case !slices.Contains(info.IPs, ip):
			t.Errorf("reported IP %q, Docker says the container has %v", ip, info.IPs)
		case cs[0].Labels[containerd.LabelExecutor] != h.ex || cs[0].Labels[containerd.LabelTask] != id:
			t.Errorf("container labels %v, want executor %s and task %s", cs[0].Labels, h.ex, id)
		}
	}

	finished := h.waitState(id, mesos.TASK_FINISHED)
	if !strings.Contains(finished.GetMessage(), "status 0") {
		t.Errorf("FINISHED message %q, want it to name exit status 0", finished.GetMessage())
	}
	// FINISHED is sent once the output has been copied, so it is complete.
	for name, want := range map[string]string{"stdout": "hi\n", "stderr": "oops\n"} {
		if got := h.taskFile(id, name); got != want {
			t.Errorf("sandbox tasks/%s/%s = %q, want %q", id, name, got, want)
		}
	}

	h.wantStates(id, mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FINISHED)
	now := time.Now()
	for i, u := range h.la.Updates() {
		st := u.Status
		desc := fmt.Sprintf("update %d (%s)", i, st.GetState())
		if st.GetSource() != mesos.SOURCE_EXECUTOR {
			t.Errorf("%s: source %s, want SOURCE_EXECUTOR", desc, st.GetSource())
		}
		if len(st.UUID) != 16 {
			t.Errorf("%s: uuid of %d bytes, want 16", desc, len(st.UUID))
		}
		if st.GetExecutorID().GetValue() != h.ex {
			t.Errorf("%s: executor_id %q, want %q", desc, st.GetExecutorID().GetValue(), h.ex)
		}
		if st.Timestamp == nil {
			t.Errorf("%s: no timestamp", desc)
		} else if ts := time.Unix(0, int64(st.GetTimestamp()*1e9)); ts.Before(h.started.Add(-time.Second)) || ts.After(now.Add(time.Second)) {
			t.Errorf("%s: timestamp %v, want between the test's start %v and now %v", desc, ts, h.started, now)
		}
		if !u.Acked {
			t.Errorf("%s: the agent did not acknowledge it", desc)
		}
		if u.Duplicate {
			t.Errorf("%s: re-sent although it was acknowledged", desc)
		}
	}
}

// reportedIP returns container_status.network_infos[0].ip_addresses[0].
func reportedIP(st mesos.TaskStatus) string {
	nis := st.GetContainerStatus().GetNetworkInfos()
	if len(nis) == 0 || len(nis[0].IPAddresses) == 0 {
		return ""
	}
	return nis[0].IPAddresses[0].GetIPAddress()
}

// TestManyTasks runs 50 tasks in one executor, kills one without disturbing
// the others, then shuts the executor down.
func TestManyTasks(t *testing.T) {
	t.Parallel()
	h := start(t, config{})

	const n = 50
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("many-%02d", i)
		ti := h.task(ids[i], args("sleep", "1h"))
		ti.Resources = resources(0.01, 32)
		h.la.Launch(ti)
	}
	for _, id := range ids {
		h.waitState(id, mesos.TASK_RUNNING)
	}

	victim := ids[17]
	h.la.Kill(victim, nil)
	h.waitState(victim, mesos.TASK_KILLED)
	for _, id := range ids {
		if id == victim {
			continue
		}
		if s, _ := h.la.TaskState(id); s != mesos.TASK_RUNNING {
			t.Errorf("task %s is %s after another task was killed, want TASK_RUNNING; its updates: %s", id, s, h.history(id))
		}
	}
	if running := runningContainers(settled(func() []containerd.Summary { return h.containers(nil) }, n-1)); running != n-1 {
		t.Errorf("%d containers running after one of %d tasks was killed, want %d", running, n, n-1)
	}

	h.la.Shutdown()
	for _, id := range ids {
		h.waitState(id, mesos.TASK_KILLED)
	}
	h.requireExit0()
	if left := h.containers(nil); len(left) != 0 {
		t.Errorf("%d containers left after the executor exited, want none", len(left))
	}
	for _, id := range ids {
		if s, _ := h.la.TaskState(id); s != mesos.TASK_KILLED {
			t.Errorf("task %s ended %s, want TASK_KILLED", id, s)
		}
	}
}

// settled lists containers until at most want of them are running, for up
// to 10 s. A terminal update follows Docker's die event, which comes a few
// milliseconds before Docker's own state leaves "running".
func settled(list func() []containerd.Summary, want int) []containerd.Summary {
	cs := list()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && runningContainers(cs) > want; {
		time.Sleep(100 * time.Millisecond)
		cs = list()
	}
	return cs
}

func runningContainers(cs []containerd.Summary) int {
	n := 0
	for _, c := range cs {
		if c.State == "running" {
			n++
		}
	}
	return n
}

// resources returns cpus and mem (MB) scalars.
func resources(cpus, memMB float64) []mesos.Resource {
	return []mesos.Resource{
		{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: cpus}},
		{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: memMB}},
	}
}

// TestKillGraceful kills a task that exits on SIGTERM, with a long grace: the
// task must end at once with its own exit status, not the SIGKILL's; with
// TASK_KILLING_STATE a TASK_KILLING comes first.
func TestKillGraceful(t *testing.T) {
	t.Parallel()
	h := start(t, config{caps: []mesos.FrameworkInfo_Capability_Type{mesos.FrameworkInfo_Capability_TASK_KILLING_STATE}})

	const id = "graceful"
	// "ready" is printed once the SIGTERM handler is installed.
	h.launch(id, map[string]string{
		"docker.args": jsonArray([]string{"echo", "ready", "--", "sleep", "1h"}),
		"kill.grace":  "30s",
	})
	h.waitState(id, mesos.TASK_RUNNING)
	h.waitOutput(id, "ready\n")

	h.la.Kill(id, nil)
	h.waitState(id, mesos.TASK_KILLING)
	// A SIGKILL would come only after the 30s grace and give status 137.
	killed := h.waitState(id, mesos.TASK_KILLED)
	if msg := killed.GetMessage(); !strings.Contains(msg, "status 0") {
		t.Errorf("KILLED message %q, want exit status 0: the task exits on SIGTERM without SIGKILL", msg)
	}
	h.wantStates(id, mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLING, mesos.TASK_KILLED)
	h.waitOutput(id, "got SIGTERM")
}

// TestKillEscalation kills a task that ignores SIGTERM: after kill.grace the
// executor sends SIGKILL. Without TASK_KILLING_STATE there is no
// TASK_KILLING.
func TestKillEscalation(t *testing.T) {
	t.Parallel()
	h := start(t, config{})

	const id = "stubborn"
	h.launch(id, map[string]string{
		"docker.args": jsonArray([]string{"echo", "ready", "--", "stubborn", "1h"}),
		"kill.grace":  "500ms",
	})
	h.waitState(id, mesos.TASK_RUNNING)
	h.waitOutput(id, "ready\n")

	h.la.Kill(id, nil)
	killed := h.waitState(id, mesos.TASK_KILLED)
	msg := killed.GetMessage()
	if !strings.Contains(msg, "status 137") || !strings.Contains(msg, "signal 9") {
		t.Errorf("KILLED message %q, want exit status 137 and signal 9 (SIGKILL after the grace)", msg)
	}
	h.wantStates(id, mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLED)
	// The stop signal came first.
	if out := h.taskFile(id, "stdout"); !strings.Contains(out, "ignoring SIGTERM") {
		t.Errorf("stdout %q, want %q: SIGTERM before SIGKILL", out, "ignoring SIGTERM")
	}
}

// TestMaxCompletionTime fails a task that outlives max_completion_time.
func TestMaxCompletionTime(t *testing.T) {
	t.Parallel()
	h := start(t, config{})

	const id = "too-long"
	ti := h.task(id, args("sleep", "1h"))
	ti.MaxCompletionTime = &mesos.DurationInfo{Nanoseconds: int64(time.Second)}
	h.la.Launch(ti)
	failed := h.waitState(id, mesos.TASK_FAILED)
	if r := failed.GetReason(); r != mesos.REASON_MAX_COMPLETION_TIME_REACHED {
		t.Errorf("FAILED reason %s (%q), want REASON_MAX_COMPLETION_TIME_REACHED", r, failed.GetMessage())
	}
	// On a loaded host the second may run out before the container starts;
	// the outcome must be the same.
	if got := h.states(id); !slices.Equal(got, []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FAILED}) &&
		!slices.Equal(got, []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_FAILED}) {
		t.Errorf("executor updates %v, want STARTING, (RUNNING,) FAILED", got)
	}
}

// TestMaxCompletionTimeDuringLaunch gives a task less time than any
// container takes to start: the deadline passes during the launch, and the
// task still fails for its max_completion_time, not as killed, and leaves no
// container running.
func TestMaxCompletionTimeDuringLaunch(t *testing.T) {
	t.Parallel()
	h := start(t, config{})

	const id = "no-time"
	ti := h.task(id, args("sleep", "1h"))
	ti.MaxCompletionTime = &mesos.DurationInfo{Nanoseconds: int64(time.Millisecond)}
	h.la.Launch(ti)
	failed := h.waitState(id, mesos.TASK_FAILED)
	if r := failed.GetReason(); r != mesos.REASON_MAX_COMPLETION_TIME_REACHED {
		t.Errorf("FAILED reason %s (%q), want REASON_MAX_COMPLETION_TIME_REACHED", r, failed.GetMessage())
	}
	if running := runningContainers(settled(func() []containerd.Summary { return h.taskContainers(id) }, 0)); running != 0 {
		t.Errorf("task %s failed but %d of its containers run", id, running)
	}
}

// TestShutdownMixedStates shuts down an executor whose tasks are running,
// finished and failed, with their containers all still present: every
// container goes, the finished tasks get no further update, and the executor
// exits 0.
func TestShutdownMixedStates(t *testing.T) {
	t.Parallel()
	// Keep exited containers: the shutdown must remove them.
	h := start(t, config{env: map[string]string{"EXECUTOR_REMOVE_DELAY": "1h"}})

	h.launch("done", args("echo", "bye"))
	h.launch("broken", args("exit", "3"))
	h.launch("running", args("sleep", "1h"))
	h.waitState("done", mesos.TASK_FINISHED)
	h.waitState("broken", mesos.TASK_FAILED)
	h.waitState("running", mesos.TASK_RUNNING)
	if cs := settled(func() []containerd.Summary { return h.containers(nil) }, 1); len(cs) != 3 || runningContainers(cs) != 1 {
		t.Errorf("before SHUTDOWN: %d containers, %d running; want 3, 1 running", len(cs), runningContainers(cs))
	}

	h.la.Shutdown()
	h.waitState("running", mesos.TASK_KILLED)
	h.requireExit0()
	if left := h.containers(nil); len(left) != 0 {
		t.Errorf("%d containers left after the executor exited, want none", len(left))
	}
	h.wantStates("done", mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FINISHED)
	h.wantStates("broken", mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FAILED)
	h.wantStates("running", mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLED)
}

// TestKillDuringLaunch kills tasks right after their LAUNCH, while their
// containers are being created and started: each ends TASK_KILLED, and no
// container of a killed task is left running, or left at all once the
// executor has exited (checked by the harness).
func TestKillDuringLaunch(t *testing.T) {
	t.Parallel()
	h := start(t, config{})

	// Many, because the window for a container created after its
	// launch was cancelled is short.
	const n = 20
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("short-lived-%02d", i)
		h.launch(ids[i], args("sleep", "1h"))
	}
	for _, id := range ids {
		h.la.Kill(id, nil)
	}
	for _, id := range ids {
		h.waitState(id, mesos.TASK_KILLED)
	}
	// A container that Docker created or started after the executor gave
	// up on it would still be running now.
	for _, c := range settled(func() []containerd.Summary { return h.containers(nil) }, 0) {
		if c.State == "running" {
			t.Errorf("container %.12s of task %s is running although its task was reported TASK_KILLED",
				c.ID, c.Labels[containerd.LabelTask])
		}
	}
}

// TestShutdownDuringLaunch sends SHUTDOWN right after a burst of LAUNCHes:
// every task ends TASK_KILLED, the executor exits 0, and no container is
// left (checked by the harness).
func TestShutdownDuringLaunch(t *testing.T) {
	t.Parallel()
	h := start(t, config{})

	const n = 10
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("doomed-%02d", i)
		h.launch(ids[i], args("sleep", "1h"))
	}
	h.la.Shutdown()
	for _, id := range ids {
		h.waitState(id, mesos.TASK_KILLED)
	}
	h.requireExit0()
}
