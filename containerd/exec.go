package containerd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// execExitPoll is how often Exec re-inspects an exec whose output has ended
// but which Docker still reports as running.
const execExitPoll = 10 * time.Millisecond

// ErrExecTimeout is wrapped by the error Exec returns when ctx ends before the
// command does.
var ErrExecTimeout = errors.New("exec timed out")

// Exec runs cmd inside the running container containerID through the Engine
// exec API (create, start with the output attached, inspect for the exit
// code), as `docker exec` does but without forking the CLI, and returns the
// command's exit code and its combined stdout and stderr. Only the first
// maxOutput bytes of output are kept (0 keeps none); the rest is read and
// discarded, so a chatty command cannot grow the executor's memory. A command
// that cannot be started in the container (missing binary) is not an error:
// Docker reports it as exit code 126 or 127 with its message as output.
//
// ctx bounds the whole call. When its deadline passes first, Exec returns an
// error wrapping ErrExecTimeout and context.DeadlineExceeded, with the output
// read so far. The Engine API has no way to kill an exec, so the process
// itself may linger in the container until it exits on its own or the
// container stops; callers that probe periodically should use timeouts well
// above what the command normally needs.
func (c *Client) Exec(ctx context.Context, containerID string, cmd []string, maxOutput int) (exitCode int, output []byte, err error) {
	if len(cmd) == 0 {
		return 0, nil, errors.New("exec: empty command")
	}
	out := &boundedBuffer{max: max(maxOutput, 0)}

	cctx, cancel := c.call(ctx)
	created, err := c.api.ContainerExecCreate(cctx, containerID, container.ExecOptions{
		AttachStdout: true,
		AttachStderr: true,
		Cmd:          cmd,
	})
	cancel()
	if err != nil {
		return 0, nil, execErr(ctx, containerID, fmt.Errorf("exec create in container %.12s: %w", containerID, err))
	}

	resp, err := c.execAttach(ctx, created.ID)
	if err != nil {
		return 0, nil, execErr(ctx, containerID, fmt.Errorf("exec start in container %.12s: %w", containerID, err))
	}
	// The hijacked connection ignores ctx once established; closing it is
	// what unblocks the read below on a timeout.
	stopClose := context.AfterFunc(ctx, resp.Close)
	// Without a TTY the stream is multiplexed (stdout/stderr frames).
	_, copyErr := stdcopy.StdCopy(out, out, resp.Reader)
	stopClose()
	resp.Close()
	if ctx.Err() != nil {
		return 0, out.Bytes(), execErr(ctx, containerID, nil)
	}
	if copyErr != nil {
		return 0, out.Bytes(), fmt.Errorf("exec output from container %.12s: %w", containerID, copyErr)
	}

	// The daemon records the exit code before it closes the output streams,
	// so the first inspect normally has it; the poll only covers an engine
	// that does it the other way round.
	for {
		cctx, cancel := c.call(ctx)
		ins, err := c.api.ContainerExecInspect(cctx, created.ID)
		cancel()
		if err != nil {
			return 0, out.Bytes(), execErr(ctx, containerID, fmt.Errorf("exec inspect in container %.12s: %w", containerID, err))
		}
		if !ins.Running {
			return ins.ExitCode, out.Bytes(), nil
		}
		select {
		case <-ctx.Done():
			return 0, out.Bytes(), execErr(ctx, containerID, nil)
		case <-time.After(execExitPoll):
		}
	}
}

// execAttach starts the exec and returns its output stream.
// ContainerExecAttach is POST /exec/{id}/start on a hijacked connection: it
// starts the process and streams its output, so no separate
// ContainerExecStart is needed (a second start would get a 409). The Docker
// client honours ctx only while dialling, not while waiting for the 101
// answer, so the call runs on its own goroutine and is abandoned when ctx
// ends; that goroutine closes the stream if it arrives later.
func (c *Client) execAttach(ctx context.Context, execID string) (types.HijackedResponse, error) {
	type result struct {
		resp types.HijackedResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := c.api.ContainerExecAttach(ctx, execID, container.ExecAttachOptions{})
		done <- result{resp, err}
	}()
	select {
	case r := <-done:
		return r.resp, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.err == nil {
				r.resp.Close()
			}
		}()
		return types.HijackedResponse{}, ctx.Err()
	}
}

// execErr turns err into a timeout or cancellation error when ctx has ended,
// since the Docker client then reports only a generic cancellation or a
// closed connection.
func execErr(ctx context.Context, containerID string, err error) error {
	switch cerr := ctx.Err(); {
	case errors.Is(cerr, context.DeadlineExceeded):
		return fmt.Errorf("%w in container %.12s: %w", ErrExecTimeout, containerID, cerr)
	case cerr != nil:
		return fmt.Errorf("exec in container %.12s: %w", containerID, cerr)
	}
	return err
}

// boundedBuffer keeps the first max bytes written to it and discards the
// rest while reporting every write as complete, so that the stream is still
// drained to its end.
type boundedBuffer struct {
	max int
	buf []byte
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// Bytes returns the kept output.
func (b *boundedBuffer) Bytes() []byte { return b.buf }
