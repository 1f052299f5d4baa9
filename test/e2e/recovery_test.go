package e2e

// Recovery tests (issue 7): the agent, the Docker daemon or the executor
// fails, and no status update, exit code or container may be lost. The
// agent's faults are scripted through the local agent; the Docker daemon,
// shared with everyone on the machine, cannot be restarted here, so its
// restart is simulated at the socket by a dockerProxy (proxy_test.go).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/mdx-executor/mdx/agent/localagent"
	"github.com/mdx-executor/mdx/cleanup"
	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
	"github.com/mdx-executor/mdx/status"
)

// Bounds of the recovery tests. Only the ones the issue asks for are
// asserted as durations, each with slack for a loaded machine.
const (
	// promptExit bounds how long an executor that has lost its agent for
	// good takes to kill its tasks, wait for ACKs that cannot come (the
	// shutdown grace less a second) and remove its containers. The faults
	// it guards against wait 15 minutes (the recovery timeout) or forever;
	// two minutes tells those apart while a saturated shared daemon (whose
	// calls time out after 30 s) still passes. The exit's real duration is
	// logged; speed belongs to make bench.
	promptExit = 2 * time.Minute
	// pollEvery is the interval of every polling wait here.
	pollEvery = 20 * time.Millisecond
)

// TestRecoveryWithheldAckReplayed withholds the ACKs of a task's updates
// and breaks the stream: the re-SUBSCRIBE must carry every unacknowledged
// update byte for byte, with its uuid, and the unacknowledged task; once the
// agent ACKs them the executor's queue is empty.
func TestRecoveryWithheldAckReplayed(t *testing.T) {
	t.Parallel()
	h := start(t, config{checkpoint: true})

	h.la.WithholdAcks(true)
	const id = "unacked"
	h.launch(id, args("echo", "hi"))
	h.waitState(id, mesos.TASK_FINISHED)
	orig := h.updates(id)
	if len(orig) != 3 {
		t.Fatalf("task %s: %d updates before the reconnect, want STARTING, RUNNING, FINISHED: %s", id, len(orig), h.history(id))
	}
	for _, u := range orig {
		if u.Acked {
			t.Fatalf("update %s was acknowledged although ACKs are withheld", u.Status.GetState())
		}
		if len(u.Raw) == 0 {
			t.Fatalf("update %s: the agent recorded no raw bytes", u.Status.GetState())
		}
	}
	waitFor(t, waitTimeout, "/state counting the 3 unacknowledged updates", func() bool {
		return h.statusState().UnacknowledgedUpdates == 3
	})

	// ACKs back on before the drop, not after: the executor may re-subscribe
	// within 50 ms of the drop, and a replay the agent took while still
	// withholding would stay unacknowledged until yet another reconnect.
	// Nothing is sent in between: the task has finished.
	h.la.WithholdAcks(false)
	h.la.DropStream()
	waitFor(t, waitTimeout, "re-SUBSCRIBE after the dropped stream", func() bool { return h.la.SubscribeCount() >= 2 })

	sub := h.la.LastSubscribe()
	if got := len(sub.UnacknowledgedUpdates); got != len(orig) {
		t.Fatalf("re-SUBSCRIBE carries %d unacknowledged updates, want %d", got, len(orig))
	}
	for i, cu := range sub.UnacknowledgedUpdates {
		want := orig[i]
		state := want.Status.GetState()
		if !bytes.Equal(cu.Status.UUID, want.UUID) {
			t.Errorf("replayed update %d (%s): uuid %x, want the original's %x", i, cu.Status.GetState(), cu.Status.UUID, want.UUID)
		}
		b, err := proto.Marshal(&cu)
		if err != nil {
			t.Fatalf("re-marshal replayed update %d: %v", i, err)
		}
		if !bytes.Equal(b, want.Raw) {
			t.Errorf("replayed %s re-marshalled is not the original UPDATE's bytes:\n got %x\nwant %x", state, b, want.Raw)
		}
	}
	// The agent's own record of the replay, as received.
	var replayed []localagent.Update
	for _, u := range h.updates(id) {
		if u.Replayed {
			replayed = append(replayed, u)
		}
	}
	if len(replayed) != len(orig) {
		t.Errorf("the agent recorded %d replayed updates, want %d", len(replayed), len(orig))
	}
	for i := range min(len(replayed), len(orig)) {
		if !bytes.Equal(replayed[i].Raw, orig[i].Raw) {
			t.Errorf("replayed %s as received differs from the original UPDATE:\n got %x\nwant %x",
				orig[i].Status.GetState(), replayed[i].Raw, orig[i].Raw)
		}
		if !replayed[i].Duplicate {
			t.Errorf("replayed %s: the agent did not see its uuid before", orig[i].Status.GetState())
		}
	}
	if !slices.ContainsFunc(sub.UnacknowledgedTasks, func(ti mesos.TaskInfo) bool { return ti.TaskID.Value == id }) {
		t.Errorf("re-SUBSCRIBE does not carry task %s among its %d unacknowledged tasks", id, len(sub.UnacknowledgedTasks))
	}

	waitFor(t, waitTimeout, "/state unacknowledged_updates 0 after the replay was ACKed", func() bool {
		st := h.statusState()
		return st.UnacknowledgedUpdates == 0 && st.AgentConnected
	})
	h.wantStates(id, mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FINISHED)
	if n := h.la.SubscribeCount(); n != 2 {
		t.Errorf("%d accepted SUBSCRIBEs, want 2 (one reconnect)", n)
	}
}

// TestRecoveryAgentRestart stops the agent for 20 s. Meanwhile one task
// exits and another keeps running. After the restart the executor must
// re-subscribe inside the 2 s re-registration window, and the FINISHED of the
// task that ended during the outage must reach the agent exactly once.
func TestRecoveryAgentRestart(t *testing.T) {
	t.Parallel()
	const outage = 20 * time.Second
	h := start(t, config{checkpoint: true, env: map[string]string{"MESOS_SUBSCRIPTION_BACKOFF_MAX": "2secs"}})

	// 8 s: long enough to still run when the agent stops on a slow
	// machine, short enough to end well inside the outage.
	h.launch("ender", args("sleep", "8s"))
	h.launch("stayer", args("sleep", "1h"))
	h.waitState("ender", mesos.TASK_RUNNING)
	h.waitState("stayer", mesos.TASK_RUNNING)
	ender := h.onlyContainer("ender")

	h.la.Stop()
	stopped := time.Now()
	if info := h.inspect(ender.ID); !info.Running && info.FinishedAt.Before(stopped) {
		t.Fatalf("task ender exited at %v, before the agent stopped at %v: the test needs it to exit during the outage", info.FinishedAt, stopped)
	}
	waitFor(t, outage, "task ender's container to exit during the outage", func() bool { return !h.inspect(ender.ID).Running })
	// What an operator sees meanwhile: not connected, FINISHED queued.
	waitFor(t, outage, "/state with the FINISHED queued while the agent is down", func() bool {
		st := h.statusState()
		return !st.AgentConnected && slices.ContainsFunc(st.Unacknowledged, func(p status.PendingUpdate) bool {
			return p.TaskID == "ender" && p.State == mesos.TASK_FINISHED.String()
		})
	})
	if wait := time.Until(stopped.Add(outage)); wait > 0 {
		time.Sleep(wait)
	}
	select {
	case <-h.exited:
		t.Fatalf("executor exited during a %v agent outage (recovery timeout 15mins): %v", outage, h.waitErr)
	default:
	}

	before := h.la.SubscribeCount()
	if err := h.la.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	waitFor(t, waitTimeout, "re-SUBSCRIBE after the agent restart", func() bool { return h.la.SubscribeCount() > before })
	// That an attempt lands in every 2 s re-registration window is the
	// retry schedule's bound (agent TestRetryDelayBound); a wall-clock
	// check here would measure the machine's load.
	t.Logf("re-subscribed %v after the agent restart", time.Since(restarted))

	// Exactly once, by uuid: one FINISHED uuid, received once as new.
	var uuids []string
	fresh := 0
	for _, u := range h.updates("ender") {
		if u.Status.GetState() != mesos.TASK_FINISHED {
			continue
		}
		if !slices.Contains(uuids, string(u.UUID)) {
			uuids = append(uuids, string(u.UUID))
		}
		if !u.Duplicate {
			fresh++
		}
	}
	if len(uuids) != 1 || fresh != 1 {
		t.Errorf("task ender: FINISHED reached the agent %d times under %d uuids, want once under 1; its updates: %s", fresh, len(uuids), h.history("ender"))
	}
	h.wantStates("ender", mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FINISHED)
	if s, _ := h.la.TaskState("ender"); s != mesos.TASK_FINISHED {
		t.Errorf("agent has task ender %s, want TASK_FINISHED", s)
	}

	if s, _ := h.la.TaskState("stayer"); s != mesos.TASK_RUNNING {
		t.Errorf("agent has task stayer %s, want TASK_RUNNING", s)
	}
	h.wantStates("stayer", mesos.TASK_STARTING, mesos.TASK_RUNNING)
	if c := h.onlyContainer("stayer"); !h.inspect(c.ID).Running {
		t.Errorf("task stayer's container %.12s is not running after the agent came back", c.ID)
	}
	waitFor(t, waitTimeout, "/state connected with nothing unacknowledged", func() bool {
		st := h.statusState()
		return st.AgentConnected && st.UnacknowledgedUpdates == 0
	})
}

// TestRecoveryTimeoutExpiry stops the agent for good: once
// MESOS_RECOVERY_TIMEOUT has passed the executor kills every task, removes
// the containers and exits non-zero, saying why.
func TestRecoveryTimeoutExpiry(t *testing.T) {
	t.Parallel()
	const timeout = 3 * time.Second
	h := start(t, config{checkpoint: true, env: map[string]string{"MESOS_RECOVERY_TIMEOUT": "3secs"}})
	ids := []string{"doomed-1", "doomed-2"}
	h.launchReady(ids...)

	h.la.Stop()
	took := h.requireFailedExit(time.Now())
	if took < timeout {
		t.Errorf("executor exited %v after the agent went away, before the %v recovery timeout", took, timeout)
	}
	log := h.executorLog()
	for _, want := range []string{"agent link lost for good", "recovery timeout"} {
		if !strings.Contains(log, want) {
			t.Errorf("executor log does not say %q", want)
		}
	}
	h.requireKilledAndRemoved(ids)
}

// TestRecoveryCheckpointOff breaks the stream of a framework that does not
// checkpoint: the agent will not wait for the executor, so it must kill its
// tasks, remove the containers and exit at once.
func TestRecoveryCheckpointOff(t *testing.T) {
	t.Parallel()
	h := start(t, config{})
	ids := []string{"unsaved-1", "unsaved-2"}
	h.launchReady(ids...)

	h.la.DropStream()
	if took := h.requireFailedExit(time.Now()); took > promptExit {
		t.Errorf("executor took %v to exit after losing a non-checkpointed stream, want under %v", took, promptExit)
	}
	if log := h.executorLog(); !strings.Contains(log, "checkpointing is off") {
		t.Errorf("executor log does not say that checkpointing is off")
	}
	h.requireKilledAndRemoved(ids)
	if n := h.la.SubscribeCount(); n != 1 {
		t.Errorf("%d accepted SUBSCRIBEs, want 1: no reconnect without checkpointing", n)
	}
}

// TestRecoveryUpdate503Retried answers a task's first UPDATE calls with 503:
// the executor must retry the same update (same uuid) until the agent takes
// it, without waiting for a re-subscribe, and never send a state twice under
// different uuids.
func TestRecoveryUpdate503Retried(t *testing.T) {
	t.Parallel()
	var ap *agentProxy
	h := start(t, config{prepare: func(la *localagent.Agent, env map[string]string) { ap = newAgentProxy(t, la, env) }})

	const id, failures = "retried", 3
	h.la.FailNextUpdates(503, failures)
	h.launch(id, args("echo", "hi"))
	h.waitState(id, mesos.TASK_FINISHED)
	waitFor(t, waitTimeout, "/state unacknowledged_updates 0", func() bool { return h.statusState().UnacknowledgedUpdates == 0 })

	var attempts []agentCall
	for _, c := range ap.CallsOf(executor.Call_UPDATE) {
		if c.Task == id {
			attempts = append(attempts, c)
		}
	}
	desc := describeCalls(attempts)
	if len(attempts) < failures+3 {
		t.Fatalf("%d UPDATE calls for task %s, want %d refused and 3 accepted: %s", len(attempts), id, failures, desc)
	}
	first := attempts[0]
	for i, c := range attempts[:failures+1] {
		if c.UUID != first.UUID || c.State != mesos.TASK_STARTING {
			t.Errorf("UPDATE %d is %s %x, want a retry of the refused TASK_STARTING %x: %s", i, c.State, c.UUID, first.UUID, desc)
		}
		if want := map[bool]int{true: 503, false: 202}[i < failures]; c.Code != want {
			t.Errorf("UPDATE %d answered %d, want %d: %s", i, c.Code, want, desc)
		}
	}
	// Per state one uuid, accepted once; nothing left for a replay.
	byState := map[mesos.TaskState]map[string]int{}
	for _, c := range attempts {
		if byState[c.State] == nil {
			byState[c.State] = map[string]int{}
		}
		if c.Code == 202 {
			byState[c.State][c.UUID]++
		} else if _, ok := byState[c.State][c.UUID]; !ok {
			byState[c.State][c.UUID] = 0
		}
	}
	for _, s := range []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FINISHED} {
		u := byState[s]
		if len(u) != 1 {
			t.Errorf("%s sent under %d uuids, want 1: %s", s, len(u), desc)
		}
		for uuid, accepted := range u {
			if accepted != 1 {
				t.Errorf("%s (uuid %x) accepted %d times, want once: %s", s, uuid, accepted, desc)
			}
		}
	}
	for _, u := range h.updates(id) {
		if u.Replayed || u.Duplicate || !u.Acked {
			t.Errorf("update %s: replayed %v, duplicate %v, acked %v; want a plain accepted and ACKed UPDATE",
				u.Status.GetState(), u.Replayed, u.Duplicate, u.Acked)
		}
	}
	h.wantStates(id, mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FINISHED)
	if subs := ap.CallsOf(executor.Call_SUBSCRIBE); len(subs) != 1 || h.la.SubscribeCount() != 1 {
		t.Errorf("%d SUBSCRIBE calls (%d accepted), want 1: a 503 on UPDATE needs no re-subscribe", len(subs), h.la.SubscribeCount())
	}
}

// TestRecoveryStaleStream breaks the stream and lets the executor
// re-subscribe: the end of the old stream must not lead to yet another
// SUBSCRIBE, and events on the new stream (a KILL, a LAUNCH) are acted on.
func TestRecoveryStaleStream(t *testing.T) {
	t.Parallel()
	var ap *agentProxy
	h := start(t, config{checkpoint: true, prepare: func(la *localagent.Agent, env map[string]string) { ap = newAgentProxy(t, la, env) }})
	h.launch("victim", args("sleep", "1h"))
	h.waitState("victim", mesos.TASK_RUNNING)

	h.la.DropStream()
	waitFor(t, waitTimeout, "re-SUBSCRIBE after the dropped stream", func() bool { return h.la.SubscribeCount() == 2 })
	// Give a late reaction to the old stream's end time to show.
	time.Sleep(3 * time.Second)
	if subs := ap.CallsOf(executor.Call_SUBSCRIBE); len(subs) != 2 || h.la.SubscribeCount() != 2 {
		t.Errorf("%d SUBSCRIBE calls (%d accepted) after one dropped stream, want 2: %s", len(subs), h.la.SubscribeCount(), describeCalls(subs))
	}

	h.la.Kill("victim", nil)
	h.waitState("victim", mesos.TASK_KILLED)
	h.launch("after", args("sleep", "1h"))
	h.waitState("after", mesos.TASK_RUNNING)
	h.wantStates("victim", mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLED)
	h.wantStates("after", mesos.TASK_STARTING, mesos.TASK_RUNNING)
	if n := h.la.SubscribeCount(); n != 2 {
		t.Errorf("%d accepted SUBSCRIBEs at the end, want 2", n)
	}
}

// TestRecoveryFatal400 makes the agent forget the executor: the re-SUBSCRIBE
// gets 400 "Executor cannot be found", which no retry can fix. The executor
// must not loop: it kills its tasks, removes the containers and exits
// non-zero.
func TestRecoveryFatal400(t *testing.T) {
	t.Parallel()
	var ap *agentProxy
	h := start(t, config{checkpoint: true, prepare: func(la *localagent.Agent, env map[string]string) { ap = newAgentProxy(t, la, env) }})
	ids := []string{"forgotten-1", "forgotten-2"}
	h.launchReady(ids...)

	h.la.SetSubscribeStatus(400, "Executor cannot be found", 100)
	h.la.DropStream()
	if took := h.requireFailedExit(time.Now()); took > promptExit {
		t.Errorf("executor took %v to exit after a 400 on SUBSCRIBE, want under %v", took, promptExit)
	}
	subs := ap.CallsOf(executor.Call_SUBSCRIBE)
	if len(subs) < 2 || len(subs) > 1+3 {
		t.Errorf("%d SUBSCRIBE calls, want the first and 1 to 3 refused ones: %s", len(subs), describeCalls(subs))
	}
	for _, c := range subs[1:] {
		if c.Code != 400 {
			t.Errorf("a SUBSCRIBE after the drop was answered %d, want 400: %s", c.Code, describeCalls(subs))
		}
	}
	if log := h.executorLog(); !strings.Contains(log, "Executor cannot be found") {
		t.Errorf("executor log does not quote the agent's answer %q", "Executor cannot be found")
	}
	h.requireKilledAndRemoved(ids)
}

// TestRecoveryShutdownFirst answers the first SUBSCRIBE with a stream whose
// only event is SHUTDOWN: the executor exits 0 well within the shutdown
// grace, without creating a container.
func TestRecoveryShutdownFirst(t *testing.T) {
	t.Parallel()
	const grace = 5 * time.Second // localagent's MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD
	var ap *agentProxy
	h := start(t, config{noSubscribeWait: true, prepare: func(la *localagent.Agent, env map[string]string) {
		la.ShutdownFirst()
		ap = newAgentProxy(t, la, env)
	}})
	exitedAt := make(chan time.Time, 1)
	go func() { <-h.exited; exitedAt <- time.Now() }()

	h.requireExit0()
	at := <-exitedAt
	subs := ap.CallsOf(executor.Call_SUBSCRIBE)
	if len(subs) == 0 || subs[0].Code != 200 {
		t.Fatalf("SUBSCRIBE calls %s, want the first answered 200 with SHUTDOWN", describeCalls(subs))
	}
	took := at.Sub(subs[0].At)
	if took > grace {
		t.Errorf("executor exited %v after its SHUTDOWN stream began, want well within the %v shutdown grace", took, grace)
	}
	t.Logf("executor exited %v after its SHUTDOWN stream began; SUBSCRIBE calls: %s", took.Round(time.Millisecond), describeCalls(subs))
	if cs := h.containers(nil); len(cs) != 0 {
		t.Errorf("%d containers after SHUTDOWN first, want none", len(cs))
	}
	if n := len(h.la.Updates()); n != 0 {
		t.Errorf("%d status updates after SHUTDOWN first, want none", n)
	}
}

// TestRecoveryExitWhileDockerUnreachable cuts the executor off the Docker
// daemon while two containers exit, one with 0 and one with 7: after the
// daemon is back each task gets exactly one terminal update with the right
// state and exit code, and a task that kept running is never reported dead.
func TestRecoveryExitWhileDockerUnreachable(t *testing.T) {
	t.Parallel()
	proxy := newTestDockerProxy(t)
	h := start(t, config{env: map[string]string{"DOCKER_HOST": proxy.Host()}})
	t.Cleanup(proxy.Restore) // before the harness's SHUTDOWN, which needs Docker

	// 8 s: still running when the proxy is cut on a slow machine.
	h.launch("steady", args("sleep", "1h"))
	h.launch("zero", args("sleep", "8s"))
	h.launch("seven", args("sleep", "8s", "--", "exit", "7"))
	for _, id := range []string{"steady", "zero", "seven"} {
		h.waitState(id, mesos.TASK_RUNNING)
	}
	steady, zero, seven := h.onlyContainer("steady"), h.onlyContainer("zero"), h.onlyContainer("seven")

	proxy.Cut()
	cut := time.Now()
	for _, c := range []containerd.Summary{zero, seven} {
		if info := h.inspect(c.ID); !info.Running && info.FinishedAt.Before(cut) {
			t.Fatalf("task %s exited at %v, before Docker was cut off at %v", c.Labels[containerd.LabelTask], info.FinishedAt, cut)
		}
	}
	waitFor(t, waitTimeout, "both containers to exit while Docker is cut off", func() bool {
		return !h.inspect(zero.ID).Running && !h.inspect(seven.ID).Running
	})
	// Let the executor's reconnect attempts fail a few more times.
	time.Sleep(2 * time.Second)
	for _, id := range []string{"steady", "zero", "seven"} {
		h.wantStates(id, mesos.TASK_STARTING, mesos.TASK_RUNNING)
	}
	proxy.Restore()

	if st := h.waitState("zero", mesos.TASK_FINISHED); !strings.Contains(st.GetMessage(), "status 0") {
		t.Errorf("zero: FINISHED message %q, want exit status 0 named", st.GetMessage())
	}
	if st := h.waitState("seven", mesos.TASK_FAILED); !strings.Contains(st.GetMessage(), "status 7") {
		t.Errorf("seven: FAILED message %q, want exit status 7 named", st.GetMessage())
	}
	// The exit code as an operator sees it.
	waitFor(t, waitTimeout, "/state with task seven's exit code 7", func() bool {
		for _, tk := range h.statusState().Tasks {
			if tk.TaskID == "seven" {
				return tk.ExitCode != nil && *tk.ExitCode == 7
			}
		}
		return false
	})
	// A repeated report of an exit would show by now: the reconcile after
	// the reconnect and the die events race.
	time.Sleep(2 * time.Second)
	h.wantStates("zero", mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FINISHED)
	h.wantStates("seven", mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FAILED)
	h.wantStates("steady", mesos.TASK_STARTING, mesos.TASK_RUNNING)
	if s, _ := h.la.TaskState("steady"); s != mesos.TASK_RUNNING {
		t.Errorf("agent has task steady %s, want TASK_RUNNING", s)
	}
	if !h.inspect(steady.ID).Running {
		t.Errorf("task steady's container is not running")
	}
}

// TestRecoveryDockerRestart simulates a Docker daemon restart at the socket
// (the shared daemon cannot be restarted here): every connection is cut for
// about 5 s while one task runs and prints, and another exits. The running
// task stays RUNNING and its sandbox log keeps growing after the cut; the
// exit is reported once.
func TestRecoveryDockerRestart(t *testing.T) {
	t.Parallel()
	const minCut = 5 * time.Second
	proxy := newTestDockerProxy(t)
	h := start(t, config{env: map[string]string{"DOCKER_HOST": proxy.Host()}})
	t.Cleanup(proxy.Restore)

	// taskbin has no loop: 400 steps of "echo tick-N -- sleep 200ms" print
	// for over 80 s, longer than the test.
	var ticker []string
	for i := 1; i <= 400; i++ {
		if i > 1 {
			ticker = append(ticker, "--", "sleep", "200ms", "--")
		}
		ticker = append(ticker, "echo", fmt.Sprintf("tick-%03d", i))
	}
	h.launch("ticker", args(ticker...))
	h.launch("quitter", args("sleep", "4s", "--", "exit", "3"))
	h.waitState("ticker", mesos.TASK_RUNNING)
	h.waitState("quitter", mesos.TASK_RUNNING)
	h.waitOutput("ticker", "tick-005\n")
	tickerC, quitter := h.onlyContainer("ticker"), h.onlyContainer("quitter")

	proxy.Cut()
	cut := time.Now()
	if info := h.inspect(quitter.ID); !info.Running && info.FinishedAt.Before(cut) {
		t.Fatalf("task quitter exited at %v, before Docker was cut off at %v", info.FinishedAt, cut)
	}
	waitFor(t, waitTimeout, "task quitter to exit while Docker is cut off", func() bool { return !h.inspect(quitter.ID).Running })
	if wait := time.Until(cut.Add(minCut)); wait > 0 {
		time.Sleep(wait)
	}
	h.wantStates("ticker", mesos.TASK_STARTING, mesos.TASK_RUNNING)
	h.wantStates("quitter", mesos.TASK_STARTING, mesos.TASK_RUNNING)
	atRestore := lastTick(h.taskFile("ticker", "stdout"))
	proxy.Restore()
	cutFor := time.Since(cut)

	// A tick numbered beyond what the task could print before the restore
	// (one per 200 ms at most) was printed after it.
	after := atRestore + int(cutFor/(200*time.Millisecond)) + 10
	deadline := time.Now().Add(waitTimeout)
	for lastTick(h.taskFile("ticker", "stdout")) < after {
		if time.Now().After(deadline) {
			t.Fatalf("ticker stdout stuck at tick %d after Docker came back (tick %d at the restore, want %d)",
				lastTick(h.taskFile("ticker", "stdout")), atRestore, after)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if dups, gaps := tickAnomalies(h.taskFile("ticker", "stdout")); len(dups) > 0 {
		t.Errorf("ticker stdout repeats ticks %v after the log stream was reopened", dups)
	} else if len(gaps) > 0 {
		t.Logf("ticker stdout lacks ticks %v (lines in flight when the stream broke)", gaps)
	}

	if st := h.waitState("quitter", mesos.TASK_FAILED); !strings.Contains(st.GetMessage(), "status 3") {
		t.Errorf("quitter: FAILED message %q, want exit status 3 named", st.GetMessage())
	}
	time.Sleep(2 * time.Second) // room for a repeated report
	h.wantStates("quitter", mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FAILED)
	h.wantStates("ticker", mesos.TASK_STARTING, mesos.TASK_RUNNING)
	if s, _ := h.la.TaskState("ticker"); s != mesos.TASK_RUNNING {
		t.Errorf("agent has task ticker %s, want TASK_RUNNING", s)
	}
	if !h.inspect(tickerC.ID).Running {
		t.Errorf("task ticker's container is not running")
	}
}

// TestRecoveryRelaunchAfterSIGKILL kills the executor with SIGKILL: its
// containers live on. A new executor with the same framework and executor ids
// must remove them at start, log each with its task id and how long it was
// orphaned, and leave its own new task alone.
func TestRecoveryRelaunchAfterSIGKILL(t *testing.T) {
	t.Parallel()
	h := start(t, config{})
	old := []string{"old-1", "old-2"}
	for _, id := range old {
		h.launch(id, args("sleep", "1h"))
	}
	oldIDs := map[string]string{} // task id -> container id
	var oldInstance string
	for _, id := range old {
		h.waitState(id, mesos.TASK_RUNNING)
		c := h.onlyContainer(id)
		oldIDs[id], oldInstance = c.ID, c.Labels[containerd.LabelInstance]
	}

	h.exitChecked = true
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if !h.waitExit(exitTimeout) {
		t.Fatalf("executor still running %v after SIGKILL", exitTimeout)
	}
	for id, cid := range oldIDs {
		if !h.inspect(cid).Running {
			t.Fatalf("task %s's container %.12s died with the executor; the test needs it orphaned", id, cid)
		}
	}

	before := h.la.SubscribeCount()
	p := h.relaunch()
	waitFor(t, waitTimeout, "the relaunched executor to subscribe", func() bool {
		select {
		case <-p.exited:
			t.Fatalf("the relaunched executor exited: %v", p.waitErr)
		default:
		}
		return h.la.SubscribeCount() > before
	})
	// It sweeps before it subscribes.
	for id := range oldIDs {
		if cs := h.taskContainers(id); len(cs) != 0 {
			t.Errorf("task %s of the killed instance still has %d containers (%s) after the relaunch subscribed", id, len(cs), cs[0].State)
		}
	}
	log := p.log()
	for id := range oldIDs {
		line := logLine(log, "earlier instance", "task_id="+id)
		if line == "" {
			t.Errorf("relaunched executor's log has no line about removing task %s's container", id)
			continue
		}
		m := regexp.MustCompile(`orphaned_for=(\S+)`).FindStringSubmatch(line)
		if m == nil {
			t.Errorf("log line does not say how long task %s was orphaned: %s", id, line)
			continue
		}
		d, err := time.ParseDuration(strings.Trim(m[1], `"`))
		// The earlier executor touched its liveness file at most
		// cleanup.AliveInterval before it was killed; the value is
		// rounded to the second.
		if limit := time.Since(killed) + cleanup.AliveInterval + time.Second; err != nil || d < 0 || d > limit {
			t.Errorf("task %s: orphaned_for=%s, want at most %v (since the SIGKILL, within the liveness interval)", id, m[1], limit)
		}
		t.Logf("task %s: orphaned_for=%s (killed %v ago)", id, m[1], time.Since(killed).Round(time.Second))
	}

	h.launch("fresh", args("sleep", "1h"))
	p.waitState("fresh", mesos.TASK_RUNNING)
	time.Sleep(2 * time.Second)
	fresh := h.onlyContainer("fresh")
	if !h.inspect(fresh.ID).Running {
		t.Errorf("the relaunched executor's own task has no running container")
	}
	h.wantStates("fresh", mesos.TASK_STARTING, mesos.TASK_RUNNING)
	if inst := fresh.Labels[containerd.LabelInstance]; inst == "" || inst == oldInstance {
		t.Errorf("task fresh's container has instance label %q, want the relaunched instance's, not the killed %q", inst, oldInstance)
	}
}

// --- helpers ---

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(pollEvery)
	}
}

// statusState reads GET /state from the executor's status socket.
func (h *harness) statusState() status.State {
	h.t.Helper()
	var st status.State
	body := getStatus(h.t, filepath.Join(h.sandbox, status.SocketName), "/state")
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		h.t.Fatalf("decode /state: %v", err)
	}
	return st
}

// onlyContainer returns the single container of a task.
func (h *harness) onlyContainer(taskID string) containerd.Summary {
	h.t.Helper()
	cs := h.taskContainers(taskID)
	if len(cs) != 1 {
		h.t.Fatalf("task %s has %d containers, want 1", taskID, len(cs))
	}
	return cs[0]
}

// inspect inspects a container directly, not through the executor.
func (h *harness) inspect(id string) containerd.Info {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	info, err := h.docker.Inspect(ctx, id)
	if err != nil {
		h.t.Fatalf("inspect container %.12s: %v", id, err)
	}
	return info
}

// launchReady launches tasks that sleep for an hour and waits until each
// is RUNNING and has its SIGTERM handler installed (it prints "ready"): a
// kill before that ends it with status 143 and no "got SIGTERM".
func (h *harness) launchReady(ids ...string) {
	h.t.Helper()
	for _, id := range ids {
		h.launch(id, args("echo", "ready", "--", "sleep", "1h"))
	}
	for _, id := range ids {
		h.waitState(id, mesos.TASK_RUNNING)
		h.waitOutput(id, "ready\n")
	}
}

// requireFailedExit waits for the executor to exit on its own and fails the
// test unless its exit status is non-zero. It returns how long after since
// the exit was seen; call it right after the fault.
func (h *harness) requireFailedExit(since time.Time) time.Duration {
	h.t.Helper()
	h.exitChecked = true
	if !h.waitExit(exitTimeout) {
		h.t.Fatalf("executor still running %v after losing the agent for good", exitTimeout)
	}
	took := time.Since(since)
	var ee *exec.ExitError
	if !errors.As(h.waitErr, &ee) || ee.ExitCode() <= 0 {
		h.t.Fatalf("executor exited with %v, want a non-zero exit status", h.waitErr)
	}
	h.t.Logf("executor exited with status %d %v after the fault", ee.ExitCode(), took.Round(time.Millisecond))
	return took
}

// requireKilledAndRemoved checks, after the executor has exited, that each
// task was stopped by its stop signal (the test program prints "got SIGTERM")
// rather than only removed, and that no container of the test is left.
func (h *harness) requireKilledAndRemoved(ids []string) {
	h.t.Helper()
	for _, id := range ids {
		if out := h.taskFile(id, "stdout"); !strings.Contains(out, "got SIGTERM") {
			h.t.Errorf("task %s: stdout %q lacks %q: not killed before its container went", id, out, "got SIGTERM")
		}
	}
	if left := h.containers(nil); len(left) != 0 {
		h.t.Errorf("%d containers left after the executor exited, want none", len(left))
	}
}

// newTestDockerProxy starts a dockerProxy to the daemon the tests use.
func newTestDockerProxy(t *testing.T) *dockerProxy {
	t.Helper()
	if testing.Short() {
		t.Skip(shortSkip)
	}
	return newDockerProxy(t, containerdtest.Docker(t).Host())
}

// executorProcess is an executor the test started besides the harness's:
// a relaunch under the same agent and ids.
type executorProcess struct {
	h       *harness
	logPath string
	exited  chan struct{}
	waitErr error // set before exited is closed
}

// relaunch starts a new executor under the harness's agent with the same
// framework and executor ids and a fresh sandbox, as an agent does after the
// earlier one died. Its cleanup, which runs before the harness's, sends
// SHUTDOWN and wants exit status 0.
func (h *harness) relaunch() *executorProcess {
	t := h.t
	t.Helper()
	p := &executorProcess{h: h, logPath: filepath.Join(t.TempDir(), "executor.log"), exited: make(chan struct{})}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	// The child has its own descriptor; ours can go at once.
	defer logFile.Close()
	env := map[string]string{"EXECUTOR_REMOVE_DELAY": "1s", "EXECUTOR_LOG_LEVEL": "debug"}
	ctx, kill := context.WithCancel(context.Background())
	cmd, err := h.la.StartExecutor(ctx, executorBin, t.TempDir(), env, logFile, logFile)
	if err != nil {
		kill()
		t.Fatal(err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		h.la.Shutdown()
		select {
		case <-p.exited:
			if p.waitErr != nil {
				t.Errorf("relaunched executor exited with %v after SHUTDOWN, want status 0", p.waitErr)
			}
		case <-time.After(exitTimeout):
			t.Errorf("relaunched executor still running %v after SHUTDOWN; killing it", exitTimeout)
			kill()
			<-p.exited
		}
		kill()
		if t.Failed() {
			t.Logf("relaunched executor's log (%s):\n%s", p.logPath, tail(p.logPath))
		}
	})
	return p
}

// log returns the relaunched executor's output so far.
func (p *executorProcess) log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		p.h.t.Fatal(err)
	}
	return string(b)
}

// waitState is harness.waitState for the relaunched executor's tasks.
func (p *executorProcess) waitState(taskID string, want mesos.TaskState) {
	h := p.h
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	go func() {
		select {
		case <-p.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	u, err := h.la.WaitUpdate(ctx, func(u localagent.Update) bool {
		s := u.Status.GetState()
		return u.Status.TaskID.Value == taskID && (s == want || isTerminal(s))
	})
	if err != nil {
		h.t.Fatalf("task %s: no %s from the relaunched executor: %v; its updates: %s", taskID, want, err, h.history(taskID))
	}
	if got := u.Status.GetState(); got != want {
		h.t.Fatalf("task %s: got %s (%q), want %s", taskID, got, u.Status.GetMessage(), want)
	}
}

// logLine returns the first line of log containing every one of parts.
func logLine(log string, parts ...string) string {
	for _, l := range strings.Split(log, "\n") {
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(l, p) }) {
			return l
		}
	}
	return ""
}

// describeCalls lists recorded agent calls for failure messages.
func describeCalls(calls []agentCall) string {
	if len(calls) == 0 {
		return "none"
	}
	var parts []string
	for _, c := range calls {
		s := fmt.Sprintf("%s=%d", c.Type, c.Code)
		if c.Type == executor.Call_UPDATE {
			s = fmt.Sprintf("UPDATE %s %x=%d", c.State, c.UUID, c.Code)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

var tickRE = regexp.MustCompile(`(?m)^tick-(\d+)$`)

// ticks returns the tick numbers in the ticker's output, in order.
func ticks(out string) []int {
	var n []int
	for _, m := range tickRE.FindAllStringSubmatch(out, -1) {
		i, _ := strconv.Atoi(m[1])
		n = append(n, i)
	}
	return n
}

// lastTick returns the highest tick printed, 0 for none.
func lastTick(out string) int {
	n := ticks(out)
	if len(n) == 0 {
		return 0
	}
	return slices.Max(n)
}

// tickAnomalies returns the ticks seen more than once and those missing
// below the last one.
func tickAnomalies(out string) (dups, gaps []int) {
	seen := map[int]bool{}
	for _, i := range ticks(out) {
		if seen[i] {
			dups = append(dups, i)
		}
		seen[i] = true
	}
	for i := 1; i < lastTick(out); i++ {
		if !seen[i] {
			gaps = append(gaps, i)
		}
	}
	return dups, gaps
}
