package containerd_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mdx-executor/mdx/containerd"
)

func TestExec(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	o := newOwner()
	id := run(t, c, o.spec(image, "exec.1", "sleep", "1h"))

	tests := []struct {
		name      string
		cmd       []string
		maxOutput int
		wantCode  int
		wantOut   string
	}{
		{"exit 0 with output", []string{"/task", "echo", "hello", "world"}, 1024, 0, "hello world\n"},
		{"exit code", []string{"/task", "exit", "3"}, 1024, 3, ""},
		{"stderr is kept", []string{"/task", "stderr", "oops", "--", "exit", "1"}, 1024, 1, "oops\n"},
		{"output bounded", []string{"/task", "echo", strings.Repeat("x", 100000)}, 10, 0, "xxxxxxxxxx"},
		{"no output kept", []string{"/task", "echo", "hidden"}, 0, 0, ""},
		{"shell form", []string{"/bin/sh", "-c", "exit 7"}, 1024, 7, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			code, out, err := c.Exec(ctx, id, tt.cmd, tt.maxOutput)
			if err != nil {
				t.Fatalf("Exec(%q): %v", tt.cmd, err)
			}
			if code != tt.wantCode || string(out) != tt.wantOut {
				t.Errorf("Exec(%q) = %d, %q; want %d, %q", tt.cmd, code, out, tt.wantCode, tt.wantOut)
			}
		})
	}
}

func TestExecTimeout(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	o := newOwner()
	id := run(t, c, o.spec(image, "exec.2", "sleep", "1h"))

	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := c.Exec(ctx, id, []string{"/task", "echo", "started", "--", "sleep", "10m"}, 1024)
	elapsed := time.Since(start)
	if !errors.Is(err, containerd.ErrExecTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Exec of a 10m sleep with a 500ms deadline: err = %v, want ErrExecTimeout", err)
	}
	if !strings.Contains(err.Error(), "timed out") {
		t.Errorf("error %q does not say it timed out", err)
	}
	// Not a latency check (a loaded daemon may take seconds to answer):
	// only that the deadline, not the 10 minute process, ended the call.
	if elapsed > 2*time.Minute {
		t.Errorf("Exec returned after %v: it waited for the process, not the 500ms deadline", elapsed)
	}
}

func TestExecErrors(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, _, err := c.Exec(ctx, "mdx-no-such-container-"+randHex(4), []string{"/task", "exit", "0"}, 0); !containerd.IsNotFound(err) {
		t.Errorf("Exec in a missing container: err = %v, want not found", err)
	}
	if _, _, err := c.Exec(ctx, "whatever", nil, 0); err == nil {
		t.Error("Exec with no command succeeded")
	}

	// A stopped container cannot exec: Docker answers 409.
	o := newOwner()
	id := create(t, c, o.spec(image, "exec.3", "exit", "0"))
	if _, _, err := c.Exec(ctx, id, []string{"/task", "exit", "0"}, 0); err == nil {
		t.Error("Exec in a container that was never started succeeded")
	}

	// A missing binary is the command's failure, not the API's: like
	// `docker exec`, the exit code says so.
	id = run(t, c, o.spec(image, "exec.4", "sleep", "1h"))
	code, out, err := c.Exec(ctx, id, []string{"/no/such/binary"}, 1024)
	if err != nil || code == 0 {
		t.Errorf("Exec of a missing binary = %d, %q, %v; want a non-zero exit code (126) and no error", code, out, err)
	}
}
