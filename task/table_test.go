package task

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/mdx-executor/mdx/containerd"
)

func ackEvent(taskID string, uuid []byte) *executor.Event {
	return &executor.Event{Type: executor.Event_ACKNOWLEDGED,
		Acknowledged: &executor.Event_Acknowledged{TaskID: mesos.TaskID{Value: taskID}, UUID: uuid}}
}

// ackAll acknowledges every update of the task sent so far, as the agent does.
func (h *harness) ackAll(taskID string) {
	h.t.Helper()
	for _, st := range h.pub.statuses(taskID) {
		h.m.HandleEvent(ackEvent(taskID, h.pub.uuidOf(st)))
	}
}

// A task id reused after its task finished starts a new run with its own
// states, container and sandbox; the earlier run's logs stay readable.
func TestRelaunchOfAFinishedTaskID(t *testing.T) {
	h := newHarness(t, Config{})
	cid := h.running(managerTask("t1"))
	h.rt.markExited(cid)
	h.exit(cid, 0)
	h.waitTerminal("t1")
	h.ackAll("t1")
	h.sync()

	h.launch(managerTask("t1"))
	waitFor(t, "the second run's RUNNING", func() bool {
		n := 0
		for _, s := range h.pub.states("t1") {
			if s == mesos.TASK_RUNNING {
				n++
			}
		}
		return n == 2
	})
	h.sync()
	v, _ := h.m.TaskView("t1")
	cid2 := v.ContainerID
	if cid2 == cid || cid2 == "" {
		t.Fatalf("the second run reused container %s", cid)
	}
	checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FINISHED, mesos.TASK_STARTING, mesos.TASK_RUNNING)
	h.m.HandleEvent(killEvent("t1"))
	h.rt.markExited(cid2)
	h.exit(cid2, 137)
	h.waitState("t1", mesos.TASK_KILLED)
	h.sync()
	checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FINISHED,
		mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLED)
	ents, err := os.ReadDir(filepath.Join(h.cfg.SandboxRoot, "tasks"))
	if err != nil {
		t.Fatal(err)
	}
	var earlier string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "t1.run-") {
			earlier = e.Name()
		}
	}
	if earlier == "" {
		t.Fatalf("no earlier run directory beside tasks/t1: %v", ents)
	}
	out, err := os.ReadFile(filepath.Join(h.cfg.SandboxRoot, "tasks", earlier, "stdout"))
	if err != nil || !strings.Contains(string(out), "out of "+cid) {
		t.Errorf("the earlier run's stdout = %q, %v; want its output", out, err)
	}
}

// Two KILLs of a task the executor never saw give one TASK_KILLED: the agent
// drops an update that follows a terminal one.
func TestKillUnknownTaskOnce(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.HandleEvent(killEvent("ghost"))
	h.m.HandleEvent(killEvent("ghost"))
	h.sync()
	h.ackAll("ghost")
	h.m.HandleEvent(killEvent("ghost"))
	h.sync()
	checkStates(t, "ghost", h.pub.states("ghost"), mesos.TASK_KILLED)
}

// A finished task whose updates are all acknowledged leaves the live table;
// its record stays, bounded by FinishedKept.
func TestFinishedTasksLeaveTheTable(t *testing.T) {
	h := newHarness(t, Config{FinishedKept: 3})
	for i := range 5 {
		id := fmt.Sprintf("t%d", i)
		cid := h.running(managerTask(id))
		h.rt.markExited(cid)
		h.exit(cid, 0)
		h.waitTerminal(id)
		h.ackAll(id)
	}
	h.sync()
	h.ackAll("sync-1")
	h.sync()
	if n := h.m.Counters().LiveTasks.Load(); n > 1 { // the last sync barrier
		t.Errorf("live table holds %d tasks after every finished one was acknowledged; want at most 1", n)
	}
	var ids []string
	for _, v := range h.m.Snapshot() {
		if !strings.HasPrefix(v.TaskID, "sync-") {
			ids = append(ids, v.TaskID)
			if v.State != "TASK_FINISHED" || v.FinishedAt == nil || v.ContainerID == "" {
				t.Errorf("record %+v; want the final state, finish time and container", v)
			}
		}
	}
	if len(ids) > 3 || len(ids) < 2 || ids[len(ids)-1] != "t4" {
		t.Errorf("finished records = %q; want the newest, at most 3", ids)
	}
}

// TASK_RUNNING goes out only with the container's pid; when Docker never
// reports it, the task fails with a reason that says so.
func TestRunningNeedsFacts(t *testing.T) {
	h := newHarness(t, Config{FactsTimeout: 300 * time.Millisecond})
	h.rt.setRawInfo(containerd.Info{})
	h.launch(managerTask("t1"))
	st := h.waitTerminal("t1")
	if st.GetState() != mesos.TASK_FAILED || st.GetReason() != mesos.REASON_CONTAINER_LAUNCH_FAILED ||
		!strings.Contains(st.GetMessage(), "no pid") {
		t.Errorf("terminal update %s %s %q; want TASK_FAILED, CONTAINER_LAUNCH_FAILED naming the missing pid", st.GetState(), st.GetReason(), st.GetMessage())
	}
	checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_FAILED)
	if q := h.rm.queued(); len(q) != 1 || q[0] != "ctr-t1" {
		t.Errorf("queued removals = %v; want the started container", q)
	}
}

// A busy daemon failing the first inspects does not fail the task.
func TestFactsRetried(t *testing.T) {
	h := newHarness(t, Config{})
	h.rt.fail("Inspect ctr-t1", errors.New("daemon busy"))
	h.launch(managerTask("t1"))
	waitFor(t, "a failed inspect", func() bool { return h.rt.count("Inspect ctr-t1") > 1 })
	h.rt.fail("Inspect ctr-t1", nil)
	st := h.waitState("t1", mesos.TASK_RUNNING)
	if ip := st.GetContainerStatus().GetNetworkInfos()[0].IPAddresses[0].GetIPAddress(); ip != "172.17.0.2" {
		t.Errorf("RUNNING's address = %q", ip)
	}
}

// A container removed behind the executor's back ends its task once, when
// the reconcile finds it gone.
func TestReconcileFindsVanishedContainer(t *testing.T) {
	h := newHarness(t, Config{})
	cid := h.running(managerTask("t1"))
	h.rt.fail("Inspect "+cid, fmt.Errorf("no such container: %w", cerrdefs.ErrNotFound))
	h.m.Reconcile()
	st := h.waitTerminal("t1")
	if st.GetState() != mesos.TASK_FAILED || !strings.Contains(st.GetMessage(), "disappeared") {
		t.Errorf("terminal update %s %q; want TASK_FAILED saying the container disappeared", st.GetState(), st.GetMessage())
	}
	h.m.Reconcile()
	h.exit(cid, 0)
	h.sync()
	checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FAILED)
}

// A reconcile that finds a container exited (its die event was lost while the
// events stream was down) reports the exit.
func TestReconcileFindsMissedExit(t *testing.T) {
	h := newHarness(t, Config{})
	cid := h.running(managerTask("t1"))
	h.rt.markExited(cid) // Inspect now says not running
	h.m.Reconcile()
	st := h.waitTerminal("t1")
	if st.GetState() != mesos.TASK_FINISHED {
		t.Errorf("terminal update %s; want the exit reported as TASK_FINISHED", st.GetState())
	}
}

// Events without their payload never reach a task: no panic, no update.
func TestEventsWithoutPayload(t *testing.T) {
	h := newHarness(t, Config{})
	for _, typ := range []executor.Event_Type{executor.Event_LAUNCH, executor.Event_LAUNCH_GROUP, executor.Event_KILL,
		executor.Event_SUBSCRIBED, executor.Event_ACKNOWLEDGED} {
		h.m.HandleEvent(&executor.Event{Type: typ})
	}
	h.m.HandleEvent(&executor.Event{Type: executor.Event_LAUNCH, Launch: &executor.Event_Launch{}})
	h.sync()
	h.running(managerTask("t1")) // the loop still works
}
