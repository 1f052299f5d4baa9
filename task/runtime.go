package task

import (
	"context"
	"io"
	"time"

	"github.com/mdx-executor/mdx/containerd"
)

// Runtime is the part of the container runtime the manager drives. It is
// implemented by *containerd.Client (the Docker Engine adapter); unit tests use
// a fake.
type Runtime interface {
	// EnsureImageFor makes the image present locally for a task, pulling it
	// only when it is absent or force is set. Concurrent calls for one
	// reference share a pull; a caller whose ctx ends returns at once.
	EnsureImageFor(ctx context.Context, taskID, ref string, force bool) (containerd.ImageResult, error)
	// Create creates (but does not start) a container and returns its id.
	Create(ctx context.Context, spec containerd.Spec) (string, error)
	// Start starts a created container.
	Start(ctx context.Context, id string) error
	// Inspect returns the container's current state.
	Inspect(ctx context.Context, id string) (containerd.Info, error)
	// Kill sends a signal (e.g. "SIGTERM", "SIGKILL") to the container's PID 1.
	// Killing a container that is not running is not an error.
	Kill(ctx context.Context, id, signal string) error
	// Remove removes the container and its anonymous volumes, by id. A
	// container that is already gone is not an error.
	Remove(ctx context.Context, id string) error
	// Logs follows the container's stdout and stderr from its start (or
	// from since, when not zero) until it exits or ctx ends, writing each
	// to its writer as it arrives.
	Logs(ctx context.Context, id string, since time.Time, stdout, stderr io.Writer) error
}
