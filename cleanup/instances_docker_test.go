package cleanup

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
)

// Two "instances" of one executor (same framework and executor ids) share
// the daemon with a third that starts now: one is alive (its pid label is
// this test process), one is dead (the pid of a process the test ran and
// reaped). At start and in the sweep, only the dead one's containers go;
// the live one's keep running and it is reported.
func TestDockerTwoInstancesSameIDs(t *testing.T) {
	c := realDocker(t)
	img := volumeImage(t, c)
	boot := hostBootID(t)
	fw, ex := "cleanup-test-"+containerdtest.RandHex(4), "twins"
	live, dead, self := "live-"+containerdtest.RandHex(3), "dead-"+containerdtest.RandHex(3), "new-"+containerdtest.RandHex(3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	gone := exec.Command("/bin/true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	deadPID := gone.Process.Pid // reaped: no process has it now (pid reuse within the test is not a concern)

	mk := func(inst, task string, pid int) string {
		id := create(t, c, containerd.Spec{
			Name:   containerd.ContainerName(fw, ex, task),
			Image:  img,
			Cmd:    []string{"sleep", "1h"},
			Labels: execLabels(fw, ex, inst, task, pid, boot),
			Init:   true,
		})
		start(t, c, id)
		return id
	}
	liveIDs := []string{mk(live, "l1", os.Getpid()), mk(live, "l2", os.Getpid())}
	deadIDs := []string{mk(dead, "d1", deadPID), mk(dead, "d2", deadPID)}

	rep, err := RemovePreviousInstances(ctx, c, Liveness{Instance: self}, fw, ex, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Removed != 2 {
		t.Errorf("Removed = %d; want 2 (the dead instance's)", rep.Removed)
	}
	for _, id := range deadIDs {
		if exists(t, c, id) {
			t.Errorf("container %.12s of the dead instance survived the start-up removal", id)
		}
	}
	for _, id := range liveIDs {
		info, err := c.Inspect(ctx, id)
		if err != nil || !info.Running {
			t.Errorf("container %.12s of the live instance: running=%v err=%v; want untouched and running", id, info.Running, err)
		}
	}
	if len(rep.Live) != 1 || rep.Live[0].Instance != live || rep.Live[0].Containers != 2 {
		t.Errorf("Live = %+v; want instance %s with 2 containers", rep.Live, live)
	}

	// The sweep of the new instance applies the same rule, and so does the
	// removal queue's re-check right before it removes.
	late := mk(dead, "d3", deadPID)
	rm := NewRemover(RemoverConfig{FrameworkID: fw, ExecutorID: ex, BackoffBase: 50 * time.Millisecond}, c, testLog(t))
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = rm.Run(rctx) }()
	t.Cleanup(func() { stop(); <-done })
	s := NewSweeper(SweeperConfig{FrameworkID: fw, ExecutorID: ex, Instance: self,
		OrphanLabels: map[string]string{containerd.LabelFramework: fw}}, c, rm, testLog(t))
	srep, err := s.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(srep.LiveInstances) != 1 || srep.LiveInstances[0].Instance != live {
		t.Errorf("sweep LiveInstances = %+v; want %s", srep.LiveInstances, live)
	}
	if len(srep.Orphans) != 1 || srep.Orphans[0].ContainerID != late || !srep.Orphans[0].Queued {
		t.Errorf("sweep Orphans = %+v; want only %.12s, queued", srep.Orphans, late)
	}
	waitFor(t, "the dead instance's late container to be removed", time.Minute, func() bool { return !exists(t, c, late) })
	for _, id := range liveIDs {
		if rm.Queued(id) {
			t.Errorf("container %.12s of the live instance queued for removal", id)
		}
		if !exists(t, c, id) {
			t.Errorf("container %.12s of the live instance removed by the sweep", id)
		}
	}
}
