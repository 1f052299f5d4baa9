//go:build !unix

package localagent

import (
	"context"
	"errors"
	"io"
	"os/exec"
)

// StartExecutor needs process groups, which only unix has.
func (a *Agent) StartExecutor(ctx context.Context, binary string, sandboxDir string, extraEnv map[string]string, stdout, stderr io.Writer) (*exec.Cmd, error) {
	return nil, errors.New("localagent: StartExecutor is only supported on unix")
}
