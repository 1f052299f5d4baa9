package task

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/containerd"
)

// brokenLogs is a Runtime whose log stream breaks once while the container
// keeps running, as on a Docker daemon restart.
type brokenLogs struct {
	Runtime // only Logs and Inspect are called
	mu      sync.Mutex
	sinces  []time.Time
	running bool
}

func (b *brokenLogs) Logs(_ context.Context, _ string, since time.Time, stdout, _ io.Writer) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sinces = append(b.sinces, since)
	if len(b.sinces) == 1 {
		_, _ = io.WriteString(stdout, "before the restart\n")
		return errors.New("unexpected EOF")
	}
	_, _ = io.WriteString(stdout, "after the restart\n")
	b.running = false
	return nil
}

func (b *brokenLogs) Inspect(context.Context, string) (containerd.Info, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return containerd.Info{Running: b.running}, nil
}

func TestCopyLogsReopensABrokenStream(t *testing.T) {
	rt := &brokenLogs{running: true}
	log := logrus.New()
	log.SetOutput(io.Discard)
	m := New(Config{SandboxRoot: t.TempDir()}, rt, nil, logrus.NewEntry(log))
	var out bytes.Buffer
	start := time.Now()
	m.copyLogs(context.Background(), "c1", nil, &out, io.Discard, logrus.NewEntry(log))

	if got, want := out.String(), "before the restart\nafter the restart\n"; got != want {
		t.Errorf("copied output = %q; want %q", got, want)
	}
	if len(rt.sinces) != 2 {
		t.Fatalf("Logs called %d times; want 2 (the stream reopened once)", len(rt.sinces))
	}
	if !rt.sinces[0].IsZero() {
		t.Errorf("first Logs since = %v; want zero (from the start)", rt.sinces[0])
	}
	if rt.sinces[1].Before(start) {
		t.Errorf("reopened Logs since = %v; want the time the stream broke (after %v)", rt.sinces[1], start)
	}
}

func TestCopyLogsStopsWhenTheContainerExited(t *testing.T) {
	rt := &brokenLogs{running: false}
	log := logrus.New()
	log.SetOutput(io.Discard)
	m := New(Config{SandboxRoot: t.TempDir()}, rt, nil, logrus.NewEntry(log))
	m.copyLogs(context.Background(), "c1", nil, io.Discard, io.Discard, logrus.NewEntry(log))
	if len(rt.sinces) != 1 {
		t.Errorf("Logs called %d times; want 1: an exited container's stream is not reopened", len(rt.sinces))
	}
}

// TestCopyLogsEndsWithoutInspectOnceTheExitIsKnown: when the loop has seen
// the container's exit, the follower stops when its stream ends, without an
// inspect (which would wait for Docker's container lock).
func TestCopyLogsEndsWithoutInspectOnceTheExitIsKnown(t *testing.T) {
	rt := &countingInspect{}
	log := logrus.New()
	log.SetOutput(io.Discard)
	m := New(Config{SandboxRoot: t.TempDir()}, rt, nil, logrus.NewEntry(log))
	exited := make(chan struct{})
	close(exited)
	m.copyLogs(context.Background(), "c1", exited, io.Discard, io.Discard, logrus.NewEntry(log))
	if rt.inspects != 0 {
		t.Errorf("Inspect called %d times; want 0 once the exit is known", rt.inspects)
	}
}

type countingInspect struct {
	Runtime
	inspects int
}

func (c *countingInspect) Logs(context.Context, string, time.Time, io.Writer, io.Writer) error {
	return nil
}

func (c *countingInspect) Inspect(context.Context, string) (containerd.Info, error) {
	c.inspects++
	return containerd.Info{}, nil
}

// TestExitReportedBeforeTheLogStreamEnds: the terminal update goes out on
// the exit report even while Docker still holds the log stream open, and the
// follower is not cut short by it: what the container wrote before its exit
// still reaches the sandbox once the stream ends.
func TestExitReportedBeforeTheLogStreamEnds(t *testing.T) {
	h := newHarness(t, Config{})
	cid := h.running(managerTask("t1"))

	// The exit is reported while the stream is still open (Docker ends it
	// only after its cleanup).
	h.m.HandleExit(containerd.Exit{ContainerID: cid, ExitCode: 0})
	st := h.waitTerminal("t1")
	if st.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("terminal update %s; want TASK_FINISHED", st.GetState())
	}
	stdout := filepath.Join(h.cfg.SandboxRoot, "tasks", "t1", "stdout")
	if b, _ := os.ReadFile(stdout); strings.Contains(string(b), "last words") {
		t.Fatalf("stdout = %q before the stream ended; the fake is broken", b)
	}

	// Now the stream delivers the rest and ends: the follower, still
	// running after the update, copies it.
	h.rt.markExited(cid)
	waitFor(t, "the last words in the sandbox after the update", func() bool {
		b, err := os.ReadFile(stdout)
		return err == nil && strings.Contains(string(b), "last words of "+cid)
	})
}

// TestLingeringFollowerIsCutAfterLogDrainMax: a stream that never ends
// after its container's exit does not hold the follower forever.
func TestLingeringFollowerIsCutAfterLogDrainMax(t *testing.T) {
	if testing.Short() {
		t.Skip("waits logDrainMax (10 s); skipped by -short")
	}
	h := newHarness(t, Config{})
	cid := h.running(managerTask("t1"))
	h.m.HandleExit(containerd.Exit{ContainerID: cid, ExitCode: 0})
	h.waitTerminal("t1")
	// The fake's Logs returns on ctx.Done without its last words; the
	// follower closes the files when it ends, which the loop cannot see, so
	// watch the Logs call end through the runtime's context.
	deadline := time.Now().Add(logDrainMax + waitTimeout)
	for !h.rt.logsEnded(cid) {
		if time.Now().After(deadline) {
			t.Fatalf("the follower of %s still runs %v after the exit was reported", cid, logDrainMax+waitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
