package task

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdx-executor/mdx/containerd"
)

// TestLateOutputAfterTheDrainBoundIsKept: a busy Docker daemon delivers an
// exited container's output only after the 2 s drain bound. The terminal
// update goes out at the bound, and the output still reaches the sandbox
// rather than being cut off with the task (found by the hostile suite's
// reused-id test under load: a first run's stdout stayed empty).
func TestLateOutputAfterTheDrainBoundIsKept(t *testing.T) {
	h := newHarness(t, Config{})
	release := h.rt.hold("Logs ctr-t1")
	cid := h.running(managerTask("t1"))
	h.rt.markExited(cid)
	h.m.HandleExit(containerd.Exit{ContainerID: cid, TaskID: "t1"})
	h.waitTerminal("t1")
	release()
	stdout := filepath.Join(h.cfg.SandboxRoot, "tasks", "t1", "stdout")
	waitFor(t, "the late output in the sandbox", func() bool {
		b, _ := os.ReadFile(stdout)
		return strings.Contains(string(b), "last words of "+cid)
	})
}
