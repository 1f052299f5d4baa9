package containerd

import (
	"context"
	"fmt"
	"io"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// Logs follows the container's stdout and stderr from its start until the
// container exits (or ctx ends), writing each to its writer as it arrives. It
// returns nil when the container's output has ended, and an error wrapping
// ctx.Err() when ctx ended first.
//
// Call it after Start: Docker follows only a running container, so on a
// container that has not started yet it returns at once with no output. On a
// container that has already exited it returns what the container wrote.
// There is no timeout: the stream lives as long as the container.
func (c *Client) Logs(ctx context.Context, id string, stdout, stderr io.Writer) error {
	rc, err := c.stream.ContainerLogs(ctx, id, container.LogsOptions{
		ShowStdout: true,
		ShowStderr: true,
		Follow:     true,
	})
	if err != nil {
		return fmt.Errorf("logs of container %s: %w", id, err)
	}
	defer rc.Close()
	// Containers are created without a TTY, so the stream is multiplexed.
	if _, err := stdcopy.StdCopy(stdout, stderr, rc); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("logs of container %s: %w", id, ctx.Err())
		}
		return fmt.Errorf("logs of container %s: %w", id, err)
	}
	return nil
}
