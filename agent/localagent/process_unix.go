//go:build unix

package localagent

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// executorWaitDelay bounds cmd.Wait after the executor exits while something
// it started still holds its stdout or stderr open.
const executorWaitDelay = 5 * time.Second

// StartExecutor starts the executor binary as the agent's launcher does: no
// arguments, the environment from Env, the sandbox (created if missing) as
// working directory, and a process group of its own. Cancelling ctx kills
// the whole group with SIGKILL, as destroying the container would. The
// caller must Wait on the returned command.
func (a *Agent) StartExecutor(ctx context.Context, binary string, sandboxDir string, extraEnv map[string]string, stdout, stderr io.Writer) (*exec.Cmd, error) {
	if err := os.MkdirAll(sandboxDir, 0o755); err != nil {
		return nil, fmt.Errorf("create sandbox: %w", err)
	}
	cmd := exec.CommandContext(ctx, binary)
	cmd.Env = a.Env(sandboxDir, extraEnv)
	cmd.Dir = sandboxDir
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = executorWaitDelay
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start executor %s: %w", binary, err)
	}
	return cmd, nil
}
