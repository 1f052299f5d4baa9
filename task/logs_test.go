package task

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

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
