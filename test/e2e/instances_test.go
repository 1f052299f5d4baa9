package e2e

import (
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// TestRecoveryTwoLiveInstancesSameIDs runs two executors with the same
// framework and executor ids on one Docker daemon, each under an agent of
// its own (two agents sharing a daemon). The second one's start-up removal
// of earlier instances must leave the first one's running task alone and
// say so; and its SHUTDOWN removes only its own containers.
func TestRecoveryTwoLiveInstancesSameIDs(t *testing.T) {
	t.Parallel()
	a := start(t, config{})
	a.launchReady("a-1")
	aC := a.onlyContainer("a-1")

	b := start(t, config{sameIDsAs: a}) // returns once b has subscribed: its start-up removal has run
	if info := a.inspect(aC.ID); !info.Running {
		t.Fatalf("the first instance's container %.12s is %s after a second instance started, want running", aC.ID, info.Status)
	}
	if line := logLine(b.executorLog(), "another live instance of this executor"); line == "" {
		t.Error("the second instance's log does not report the first, live instance")
	} else {
		t.Logf("second instance: %s", line)
	}
	if logLine(b.executorLog(), "earlier instance", "task_id=a-1") != "" {
		t.Error("the second instance logged removing the first one's container")
	}

	b.launchReady("b-1")
	b.la.Shutdown()
	if !b.waitExit(exitTimeout) {
		t.Fatalf("second instance still running %v after SHUTDOWN", exitTimeout)
	}
	if len(b.taskContainers("b-1")) != 0 {
		t.Error("the second instance left its own container after SHUTDOWN")
	}
	if info := a.inspect(aC.ID); !info.Running {
		t.Errorf("the first instance's container %.12s is %s after the second one's SHUTDOWN, want running", aC.ID, info.Status)
	}
	a.wantStates("a-1", mesos.TASK_STARTING, mesos.TASK_RUNNING)

	// End a-1 now: the harnesses' cleanups run the second one's check for
	// leftover containers of the shared framework id first.
	a.la.Kill("a-1", nil)
	a.waitState("a-1", mesos.TASK_KILLED)
	waitFor(t, waitTimeout, "a-1's container to be removed", func() bool { return len(a.taskContainers("a-1")) == 0 })
}
