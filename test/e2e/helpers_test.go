// Package e2e holds the end-to-end tests of the executor: the binary built from
// ./cmd/executor, started as a Mesos agent starts a custom executor by the
// local agent (agent/localagent), running real containers on the Docker
// Engine. Each test has its own agent, executor process, sandbox and framework
// id, so the tests run in parallel and their containers never mix.
//
// They need a Docker daemon: without one they skip (fail when CI=true), and
// -short skips them all.
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/agent/localagent"
	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
)

// Bounds of the waits. They only decide how long a broken executor takes to
// fail a test; a healthy one is far quicker, and no test asserts a duration.
const (
	waitTimeout   = 60 * time.Second // for one status update
	exitTimeout   = 45 * time.Second // for the executor to exit after SHUTDOWN
	outputTimeout = 30 * time.Second // for a task's output to reach its sandbox
	dockerTimeout = 30 * time.Second // for one Docker call of a test
	logTailBytes  = 256 << 10        // of each log printed for a failed test
)

// shortSkip is the reason every test gives under -short.
const shortSkip = "end-to-end test needs Docker; skipped by -short"

var (
	// executorBin is the executor built by TestMain; buildErr says why it
	// is missing.
	executorBin string
	buildErr    error

	// frameworks maps every framework id a test used to the test's name,
	// for the final sweep.
	frameworksMu sync.Mutex
	frameworks   = map[string]string{}
)

// sweepFrameworks runs after all tests. Each test's cleanup has already
// checked for containers left behind, but Docker may finish creating a
// container after the executor that asked for it has gone (and after that
// check): such late leaks are caught here, named, and removed, so that the
// test image can go too.
func sweepFrameworks() error {
	frameworksMu.Lock()
	defer frameworksMu.Unlock()
	if len(frameworks) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := containerd.New(ctx, containerd.Config{}, nil)
	if err != nil {
		return fmt.Errorf("sweep for leftover containers: %w", err)
	}
	defer c.Close()
	var errs []error
	for fw, test := range frameworks {
		left, err := c.List(ctx, map[string]string{containerd.LabelFramework: fw}, true)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, s := range left {
			errs = append(errs, fmt.Errorf("%s: container %.12s %v (task %s, %s) left behind, found by the final sweep",
				test, s.ID, s.Names, s.Labels[containerd.LabelTask], s.State))
			if err := c.Remove(ctx, s.ID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		containerdtest.Main(m)
	}
	dir, err := os.MkdirTemp("", "mdx-e2e-")
	if err != nil {
		buildErr = err
	} else {
		// CGO_ENABLED=0 as the Makefile builds it: what agents run.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		executorBin = filepath.Join(dir, "executor")
		buildErr = containerdtest.BuildStatic(ctx, executorBin, "./cmd/executor")
		cancel()
	}
	code := containerdtest.Run(m, sweepFrameworks)
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
	os.Exit(code)
}

// config is what a test changes about its executor.
type config struct {
	// caps are the framework's capabilities, e.g. TASK_KILLING_STATE.
	caps []mesos.FrameworkInfo_Capability_Type
	// checkpoint makes the framework checkpointing, so that the executor
	// reconnects after a broken stream instead of exiting.
	checkpoint bool
	// env is added to the executor's environment, after the defaults
	// (EXECUTOR_REMOVE_DELAY=1s, EXECUTOR_LOG_LEVEL=debug).
	env map[string]string
	// sandbox replaces the default t.TempDir() sandbox.
	sandbox string
	// prepare, when set, runs once the local agent listens and before the
	// executor starts: it may script the agent's first answers or change
	// the executor's env (e.g. to put a proxy in front of the agent).
	prepare func(la *localagent.Agent, env map[string]string)
	// noSubscribeWait makes start return without waiting for the first
	// SUBSCRIBED, for an executor that is not expected to get one.
	noSubscribeWait bool
	// sameIDsAs, when set, gives this harness the framework and executor
	// ids of another one: a second executor instance with the same ids on
	// the same Docker daemon, under an agent of its own.
	sameIDsAs *harness
}

// harness is one test's agent, executor process and Docker view.
type harness struct {
	t       *testing.T
	la      *localagent.Agent
	docker  *containerd.Client
	image   string // the test image (test/taskbin as /task and /bin/sh)
	fw, ex  string // framework and executor ids, unique per test
	sandbox string
	logPath string // the executor's stdout and stderr
	started time.Time

	cmd     *exec.Cmd
	kill    context.CancelFunc // SIGKILLs the executor's process group
	exited  chan struct{}      // closed once the executor has exited
	waitErr error              // cmd.Wait's result, set before exited is closed
	// exitChecked is set by a test that checked the executor's exit status
	// itself (it wanted a failure): the cleanup then does not want 0.
	exitChecked bool
}

// start starts a local agent and the executor under it. Its cleanup sends
// SHUTDOWN, waits for the executor to exit (SIGKILL after exitTimeout),
// expects exit status 0 and no container left with the test's framework id,
// and prints the executor's and the agent's logs if the test failed.
func start(t *testing.T, cfg config) *harness {
	t.Helper()
	if testing.Short() {
		t.Skip(shortSkip)
	}
	docker := containerdtest.Docker(t)
	image := containerdtest.TaskImage(t, docker)
	if buildErr != nil {
		t.Fatalf("build the executor: %v", buildErr)
	}

	suffix := containerdtest.RandHex(4)
	h := &harness{
		t:       t,
		docker:  docker,
		image:   image,
		fw:      "e2e-" + suffix,
		ex:      "ex-" + suffix,
		sandbox: cfg.sandbox,
		started: time.Now(),
		exited:  make(chan struct{}),
	}
	if h.sandbox == "" {
		h.sandbox = t.TempDir()
	}
	if o := cfg.sameIDsAs; o != nil {
		h.fw, h.ex = o.fw, o.ex
	}
	frameworksMu.Lock()
	frameworks[h.fw] = t.Name()
	frameworksMu.Unlock()
	logDir := t.TempDir()
	h.logPath = filepath.Join(logDir, "executor.log")
	agentLogPath := filepath.Join(logDir, "agent.log")
	logFile, err := os.Create(h.logPath)
	if err != nil {
		t.Fatal(err)
	}
	agentLogFile, err := os.Create(agentLogPath)
	if err != nil {
		t.Fatal(err)
	}
	agentLog := logrus.New()
	agentLog.SetOutput(agentLogFile)
	agentLog.SetLevel(logrus.DebugLevel)

	h.la = localagent.New(localagent.Options{
		FrameworkID:  h.fw,
		ExecutorID:   h.ex,
		Capabilities: cfg.caps,
		Checkpoint:   cfg.checkpoint,
		Log:          logrus.NewEntry(agentLog),
	})
	if err := h.la.Start(); err != nil {
		t.Fatal(err)
	}

	env := map[string]string{
		"EXECUTOR_REMOVE_DELAY": "1s",
		"EXECUTOR_LOG_LEVEL":    "debug",
	}
	for k, v := range cfg.env {
		env[k] = v
	}
	if cfg.prepare != nil {
		cfg.prepare(h.la, env)
	}
	// Not t.Context(): it is cancelled before the cleanup below runs, and
	// the cleanup wants an orderly SHUTDOWN first.
	ctx, kill := context.WithCancel(context.Background())
	h.kill = kill
	h.cmd, err = h.la.StartExecutor(ctx, executorBin, h.sandbox, env, logFile, logFile)
	if err != nil {
		kill()
		h.la.Close()
		t.Fatal(err)
	}
	go func() {
		h.waitErr = h.cmd.Wait()
		close(h.exited)
	}()

	t.Cleanup(func() {
		h.la.Shutdown()
		if !h.waitExit(exitTimeout) {
			t.Errorf("executor still running %v after SHUTDOWN; killing it", exitTimeout)
			h.kill()
			<-h.exited
		} else if h.waitErr != nil && !h.exitChecked {
			t.Errorf("executor exited with %v after SHUTDOWN, want status 0", h.waitErr)
		}
		h.kill()
		h.la.Close()
		h.removeLeftovers()
		_ = logFile.Close()
		_ = agentLogFile.Close()
		if t.Failed() {
			t.Logf("executor log (%s):\n%s", h.logPath, tail(h.logPath))
			t.Logf("local agent log:\n%s", tail(agentLogPath))
		}
	})

	if cfg.noSubscribeWait {
		return h
	}
	// Tests start from a subscribed executor, so that their LAUNCHes go
	// out at once rather than in SUBSCRIBED's wake.
	select {
	case <-h.la.Subscribed():
	case <-h.exited:
		t.Fatalf("the executor exited before subscribing: %v", h.waitErr)
	case <-time.After(waitTimeout):
		t.Fatalf("the executor did not subscribe within %v", waitTimeout)
	}
	return h
}

// waitExit waits up to d for the executor to exit and reports whether it did.
func (h *harness) waitExit(d time.Duration) bool {
	select {
	case <-h.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// requireExit0 waits for the executor to exit and fails the test unless it
// exited with status 0.
func (h *harness) requireExit0() {
	h.t.Helper()
	if !h.waitExit(exitTimeout) {
		h.t.Fatalf("executor still running %v after SHUTDOWN", exitTimeout)
	}
	if h.waitErr != nil {
		h.t.Fatalf("executor exited with %v, want status 0", h.waitErr)
	}
}

// removeLeftovers fails the test for every container still carrying its
// framework id once the executor is gone, and removes them.
func (h *harness) removeLeftovers() {
	t := h.t
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	left, err := h.docker.List(ctx, map[string]string{containerd.LabelFramework: h.fw}, true)
	if err != nil {
		t.Errorf("list containers left behind: %v", err)
		return
	}
	for _, c := range left {
		t.Errorf("container %.12s %v (task %s, %s) left behind after the executor exited",
			c.ID, c.Names, c.Labels[containerd.LabelTask], c.State)
		if err := h.docker.Remove(ctx, c.ID); err != nil {
			t.Errorf("remove it: %v", err)
		}
	}
}

// containers lists the test's containers (all states) that also carry the
// given labels.
func (h *harness) containers(labels map[string]string) []containerd.Summary {
	h.t.Helper()
	filter := map[string]string{containerd.LabelFramework: h.fw}
	for k, v := range labels {
		filter[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	list, err := h.docker.List(ctx, filter, true)
	if err != nil {
		h.t.Fatalf("list containers: %v", err)
	}
	return list
}

// taskContainers lists the containers of one task.
func (h *harness) taskContainers(taskID string) []containerd.Summary {
	h.t.Helper()
	return h.containers(map[string]string{containerd.LabelTask: taskID})
}

// task returns a TaskInfo running the test image with labels (docker.image is
// added unless given) and 0.1 cpus, 32 MB.
func (h *harness) task(id string, labels map[string]string) mesos.TaskInfo {
	l := map[string]string{"docker.image": h.image}
	for k, v := range labels {
		l[k] = v
	}
	return localagent.Task(id, l, 0.1, 32)
}

// launch launches h.task(id, labels) and returns it.
func (h *harness) launch(id string, labels map[string]string) mesos.TaskInfo {
	ti := h.task(id, labels)
	h.la.Launch(ti)
	return ti
}

// args returns the docker.args label for a command of the test program.
func args(cmd ...string) map[string]string {
	return map[string]string{"docker.args": jsonArray(cmd)}
}

func jsonArray(s []string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a []string always marshals
	}
	return string(b)
}

// waitState waits for the task's update with state want and returns its status.
// It fails at once when the task reaches another terminal state instead, or
// when the executor exits.
func (h *harness) waitState(taskID string, want mesos.TaskState) mesos.TaskStatus {
	h.t.Helper()
	u, err := h.waitUpdate(func(u localagent.Update) bool {
		s := u.Status.GetState()
		return u.Status.TaskID.Value == taskID && (s == want || isTerminal(s))
	})
	if err != nil {
		h.t.Fatalf("task %s: no %s: %v; its updates: %s", taskID, want, err, h.history(taskID))
	}
	if got := u.Status.GetState(); got != want {
		h.t.Fatalf("task %s: got %s (%s %q), want %s; its updates: %s", taskID, got,
			u.Status.GetReason(), u.Status.GetMessage(), want, h.history(taskID))
	}
	return u.Status
}

// waitUpdate waits up to waitTimeout for an update matching match, giving up
// early if the executor exits.
func (h *harness) waitUpdate(match func(localagent.Update) bool) (localagent.Update, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	go func() {
		select {
		case <-h.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	u, err := h.la.WaitUpdate(ctx, match)
	if err != nil {
		select {
		case <-h.exited:
			return u, fmt.Errorf("the executor exited (%v)", h.waitErr)
		default:
		}
	}
	return u, err
}

func isTerminal(s mesos.TaskState) bool {
	switch s {
	case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_LOST,
		mesos.TASK_ERROR, mesos.TASK_DROPPED, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}

// updates returns the updates the agent received or generated for a task.
func (h *harness) updates(taskID string) []localagent.Update {
	var out []localagent.Update
	for _, u := range h.la.Updates() {
		if u.Status.TaskID.Value == taskID {
			out = append(out, u)
		}
	}
	return out
}

// states returns the states of the executor's updates for a task, in order,
// leaving out re-sent duplicates.
func (h *harness) states(taskID string) []mesos.TaskState {
	var out []mesos.TaskState
	for _, u := range h.updates(taskID) {
		if u.Status.GetSource() == mesos.SOURCE_EXECUTOR && !u.Duplicate {
			out = append(out, u.Status.GetState())
		}
	}
	return out
}

// wantStates fails the test unless the executor's updates for the task have
// exactly the states want, in order.
func (h *harness) wantStates(taskID string, want ...mesos.TaskState) {
	h.t.Helper()
	if got := h.states(taskID); !slices.Equal(got, want) {
		h.t.Errorf("task %s: executor updates %v, want %v; all its updates: %s", taskID, got, want, h.history(taskID))
	}
}

// history describes a task's updates for failure messages.
func (h *harness) history(taskID string) string {
	var parts []string
	for _, u := range h.updates(taskID) {
		st := u.Status
		s := st.GetState().String()
		if st.GetSource() != mesos.SOURCE_EXECUTOR {
			s += "[" + st.GetSource().String() + "]"
		}
		if st.Reason != nil {
			s += " " + st.GetReason().String()
		}
		if st.Message != nil {
			s += fmt.Sprintf(" %q", st.GetMessage())
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// taskFile returns the contents of $sandbox/tasks/<id>/<name> ("" if absent).
func (h *harness) taskFile(taskID, name string) string {
	b, err := os.ReadFile(filepath.Join(h.sandbox, "tasks", taskID, name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		h.t.Fatal(err)
	}
	return string(b)
}

// waitOutput waits until the task's stdout in the sandbox contains want.
func (h *harness) waitOutput(taskID, want string) {
	h.t.Helper()
	deadline := time.Now().Add(outputTimeout)
	for !strings.Contains(h.taskFile(taskID, "stdout"), want) {
		if time.Now().After(deadline) {
			h.t.Fatalf("task %s: stdout %q still lacks %q after %v", taskID, h.taskFile(taskID, "stdout"), want, outputTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// executorLog returns the executor's output so far.
func (h *harness) executorLog() string {
	b, err := os.ReadFile(h.logPath)
	if err != nil {
		h.t.Fatal(err)
	}
	return string(b)
}

// tail returns the end of a log file for t.Log.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > logTailBytes {
		_, _ = f.Seek(-logTailBytes, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
