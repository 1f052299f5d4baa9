package containerd_test

import (
	"context"
	"errors"
	"github.com/mdx-executor/mdx/internal/testenv"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mdx-executor/mdx/containerd"
)

// TestLogStreamBothStreamsAndEnd: a followed stream over its own
// connection carries stdout and stderr apart, ends by itself when the
// container exits, and leaves no connection open.
func TestLogStreamBothStreamsAndEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a container; skipped by -short")
	}
	t.Parallel()
	c, image := requireDocker(t)
	o := newOwner()
	id := run(t, c, o.spec(image, "logs.1", "echo", "to-out", "--", "stderr", "to-err", "--", "sleep", "1", "--", "echo", "late-out"))
	stdout, stderr, wait := logs(t, c, id)
	if err := wait(); err != nil {
		t.Fatalf("Logs: %v", err)
	}
	if got := stdout.String(); got != "to-out\nlate-out\n" {
		t.Errorf("stdout = %q; want both stdout lines", got)
	}
	if got := stderr.String(); got != "to-err\n" {
		t.Errorf("stderr = %q; want the stderr line only", got)
	}
}

// TestLogStreamCancelAndNotFound: cancelling ctx ends a stream that would
// follow a running container for an hour, promptly, with ctx's error; a
// container that does not exist is a not-found error.
func TestLogStreamCancelAndNotFound(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a container; skipped by -short")
	}
	t.Parallel()
	c, image := requireDocker(t)
	o := newOwner()
	id := run(t, c, o.spec(image, "logs.2", "echo", "ready", "--", "sleep", "1h"))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	out := &testenv.SyncBuffer{}
	go func() { done <- c.Logs(ctx, id, time.Time{}, out, io.Discard) }()
	waitOutput(t, out, "ready\n", 30*time.Second)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Logs after cancel = %v; want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Logs still running 5 s after its ctx was cancelled")
	}

	err := c.Logs(t.Context(), "mdx-no-such-container-"+randHex(6), time.Time{}, io.Discard, io.Discard)
	if !containerd.IsNotFound(err) || !strings.Contains(err.Error(), "404") {
		t.Errorf("Logs of a missing container = %v; want a not-found error naming the 404", err)
	}
}
