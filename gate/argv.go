package gate

import (
	"errors"
	"slices"

	"github.com/mdx-executor/mdx/containerd"
)

// Fixed paths inside a gated container. They sit in a directory of their own
// so that they cannot shadow anything an image is likely to ship.
const (
	BinaryPath  = "/.mdx/gate"
	ReleasePath = "/.mdx/release"
)

// Exit statuses of the gate when it does not exec the task's command. They
// are distinct from Docker's 125-127 and from 128+signal.
const (
	ExitAborted = 120 // the executor sent the abort byte
	ExitGone    = 121 // the release FIFO is gone or unusable: the executor gave the task up
	ExitUsage   = 122 // started without a command
	// Like a shell (and Docker): the command was not found, or found but
	// could not be executed.
	ExitNotFound      = 127
	ExitNotExecutable = 126
)

// ErrNoCommand is returned by RealArgv when neither the spec nor the image
// says what to run (Docker's "no command specified").
var ErrNoCommand = errors.New("no command specified")

// RealArgv returns the argv Docker would run for spec on an image with
// configuration img, following Docker's merge of container and image config
// (daemon/commit.go merge): an entrypoint set by the spec replaces the
// image's and also drops the image's CMD; an empty but non-nil entrypoint
// clears the image's entrypoint and keeps its CMD unless the spec has one.
func RealArgv(spec *containerd.Spec, img containerd.ImageConfig) ([]string, error) {
	entrypoint, cmd := spec.Entrypoint, spec.Cmd
	if len(entrypoint) == 0 {
		if len(cmd) == 0 {
			cmd = img.Cmd
		}
		if entrypoint == nil {
			entrypoint = img.Entrypoint
		}
	}
	argv := append(slices.Clone(entrypoint), cmd...)
	if len(argv) == 0 {
		return nil, ErrNoCommand
	}
	return argv, nil
}
