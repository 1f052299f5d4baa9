package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdx-executor/mdx/agent"
	"github.com/mdx-executor/mdx/agent/localagent"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
)

// lockedBuffer collects a process's output for the test's goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestTokenAbsentFromRunningExecutor runs the real binary as an agent with
// executor authentication starts it: token in the environment. The running
// executor's /proc/<pid>/environ and /proc/<pid>/cmdline do not contain it,
// yet it subscribes and reports a SHUTDOWN through an agent that answers 401
// to any call without "Authorization: Bearer <token>"; and no log line
// shows it, at debug level.
func TestTokenAbsentFromRunningExecutor(t *testing.T) {
	if testing.Short() {
		t.Skip("real Docker test (the executor connects to Docker at start): skipped under -short")
	}
	containerdtest.Docker(t) // skips with the reason, or fails under CI=true
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "executor")
	if err := containerdtest.BuildStatic(ctx, bin, "./cmd/executor"); err != nil {
		t.Fatal(err)
	}

	fw := "token-test-" + containerdtest.RandHex(6)
	la := localagent.New(localagent.Options{FrameworkID: fw, AuthToken: testToken})
	if err := la.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = la.Close() })
	var out lockedBuffer
	sandbox := filepath.Join(dir, "sandbox")
	cmd, err := la.StartExecutor(ctx, bin, sandbox, map[string]string{"EXECUTOR_LOG_LEVEL": "debug"}, &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cmd.Env, agent.TokenEnv+"="+testToken) {
		t.Fatal("the executor was not started with the token in its environment: the test proves nothing")
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel() // kills the process group if still running
		<-exited
	})

	select {
	case <-la.Subscribed():
	case err := <-exited:
		t.Fatalf("executor exited before subscribing: %v\n%s", err, out.String())
	case <-time.After(time.Minute):
		t.Fatalf("executor did not subscribe (a 401 means the token was not sent):\n%s", out.String())
	}

	pid := cmd.Process.Pid
	environ, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(environ, []byte("MESOS_FRAMEWORK_ID="+fw)) {
		t.Fatalf("/proc/%d/environ is not the executor's: %q", pid, environ)
	}
	for name, b := range map[string][]byte{"environ": environ, "cmdline": cmdline} {
		if bytes.Contains(b, []byte(testToken)) || bytes.Contains(b, []byte(agent.TokenEnv)) {
			t.Errorf("/proc/%d/%s holds the token: %q", pid, name, b)
		}
	}

	la.Shutdown()
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Errorf("executor exit after SHUTDOWN: %v\n%s", err, out.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("executor still running a minute after SHUTDOWN:\n%s", out.String())
	}
	logs := out.String()
	if !strings.Contains(logs, "subscribed to the agent") {
		t.Fatalf("no log of the subscription: the log check proves nothing:\n%s", logs)
	}
	if strings.Contains(logs, testToken) || strings.Contains(logs, "c2lnbmF0dXJl") {
		t.Errorf("the token appears in the executor's log:\n%s", logs)
	}
}
