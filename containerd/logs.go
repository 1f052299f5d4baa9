package containerd

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/docker/docker/api/types/container"
)

// Logs follows the container's stdout and stderr from its start until the
// container exits (or ctx ends), writing each to its writer as it arrives. It
// returns nil when the container's output has ended, and an error wrapping
// ctx.Err() when ctx ended first.
//
// Call it after Start: Docker follows only a running container, so on a
// container that has not started yet it returns at once with no output. On a
// container that has already exited it returns what the container wrote.
// There is no timeout: the stream lives as long as the container. A non-zero
// since starts the output at that time, to resume a stream that broke (a
// daemon restart ends every log stream while containers may keep running).
func (c *Client) Logs(ctx context.Context, id string, since time.Time, stdout, stderr io.Writer) error {
	opts := container.LogsOptions{
		ShowStdout: true,
		ShowStderr: true,
		Follow:     true,
	}
	if !since.IsZero() {
		opts.Since = fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond())
	}
	var rc io.ReadCloser
	var err error
	if c.logSocket != "" {
		rc, err = c.openLogStream(ctx, id, opts)
	} else {
		rc, err = c.stream.ContainerLogs(ctx, id, opts)
	}
	if err != nil {
		return fmt.Errorf("logs of container %s: %w", id, err)
	}
	defer rc.Close()
	// Containers are created without a TTY, so the stream is multiplexed.
	if err := demux(stdout, stderr, rc); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("logs of container %s: %w", id, ctx.Err())
		}
		return fmt.Errorf("logs of container %s: %w", id, err)
	}
	return nil
}
