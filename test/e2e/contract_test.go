package e2e

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/agent/localagent"
	"github.com/mdx-executor/mdx/status"
)

// TestLabelContract checks the task label keys and the native command fields
// of CONTRACT.md against what the container's process gets.
func TestLabelContract(t *testing.T) {
	t.Parallel()
	h := start(t, config{})

	// Environment: docker.env.*, command.environment, and the executor's
	// own MESOS_* variables, which a task cannot override.
	env := h.task("env", map[string]string{
		"docker.args":              `["env"]`,
		"docker.env.FOO":           "bar",
		"docker.env.MESOS_TASK_ID": "spoofed",
	})
	env.Command = &mesos.CommandInfo{
		Shell: proto.Bool(false),
		Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{
			{Name: "FROM_COMMAND", Type: mesos.Environment_Variable_VALUE.Enum(), Value: proto.String("yes")},
		}},
	}
	h.la.Launch(env)

	// docker.args is exec form: no shell expands it.
	h.launch("args", args("echo", "$HOME", "*", "a  b"))
	// docker.entrypoint replaces the image's.
	h.launch("entrypoint", map[string]string{
		"docker.entrypoint": `["/task","echo"]`,
		"docker.args":       `["x"]`,
	})
	// Native command, shell=false: the image's entrypoint with
	// [value] + arguments.
	native := h.task("native", nil)
	native.Command = &mesos.CommandInfo{Shell: proto.Bool(false), Value: proto.String("echo"), Arguments: []string{"native", "args"}}
	h.la.Launch(native)
	// Native command, shell=true: /bin/sh -c value (the image's /bin/sh is
	// the test program, which runs "exit 3").
	shell := h.task("shell", nil)
	shell.Command = &mesos.CommandInfo{Shell: proto.Bool(true), Value: proto.String("exit 3")}
	h.la.Launch(shell)

	h.waitState("env", mesos.TASK_FINISHED)
	vars := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(h.taskFile("env", "stdout")), "\n") {
		k, v, _ := strings.Cut(line, "=")
		vars[k] = append(vars[k], v)
	}
	for k, want := range map[string]string{
		"FOO":                "bar",
		"FROM_COMMAND":       "yes",
		"MESOS_TASK_ID":      "env",
		"MESOS_SANDBOX":      "/mnt/mesos/sandbox",
		"MESOS_EXECUTOR_ID":  h.ex,
		"MESOS_FRAMEWORK_ID": h.fw,
	} {
		if got := vars[k]; len(got) != 1 || got[0] != want {
			t.Errorf("task environment %s = %q, want exactly [%q]", k, got, want)
		}
	}
	// The executor's own environment is not passed on.
	for k := range vars {
		if strings.HasPrefix(k, "EXECUTOR_") || k == "MESOS_AGENT_ENDPOINT" || k == "MESOS_SLAVE_PID" || k == "MESOS_DIRECTORY" {
			t.Errorf("task environment has the executor's %s=%q", k, vars[k])
		}
	}

	for _, c := range []struct{ id, want string }{
		{"args", "$HOME * a  b\n"},
		{"entrypoint", "x\n"},
		{"native", "native args\n"},
	} {
		h.waitState(c.id, mesos.TASK_FINISHED)
		if got := h.taskFile(c.id, "stdout"); got != c.want {
			t.Errorf("task %s: stdout %q, want %q", c.id, got, c.want)
		}
	}

	st := h.waitState("shell", mesos.TASK_FAILED)
	if msg := st.GetMessage(); !strings.Contains(msg, "status 3") {
		t.Errorf("task shell: message %q, want exit status 3 named", msg)
	}
}

// TestAuthTokenNotLeaked gives the executor an authentication token, which is
// for the agent alone: no task, log line or status page may show it.
func TestAuthTokenNotLeaked(t *testing.T) {
	t.Parallel()
	const token = "secret-token-xyz"
	h := start(t, config{env: map[string]string{"MESOS_EXECUTOR_AUTHENTICATION_TOKEN": token}})

	h.launch("env", args("env", "--", "stderr", "done"))
	h.waitState("env", mesos.TASK_FINISHED)
	for _, name := range []string{"stdout", "stderr"} {
		out := h.taskFile("env", name)
		if strings.Contains(out, token) {
			t.Errorf("the task's %s shows the executor's token:\n%s", name, out)
		}
		if name == "stdout" && !strings.Contains(out, "MESOS_TASK_ID=env") {
			t.Errorf("the task's stdout %q lacks its environment: the check above proves nothing", out)
		}
	}
	for _, page := range []string{"/state", "/tasks/env", "/metrics"} {
		if body := getStatus(t, filepath.Join(h.sandbox, status.SocketName), page); strings.Contains(body, token) {
			t.Errorf("status page %s shows the token:\n%s", page, body)
		}
	}

	h.la.Shutdown()
	h.requireExit0()
	log := h.executorLog()
	if strings.Contains(log, token) {
		t.Errorf("the executor's log shows the token")
	}
	if !strings.Contains(log, "task_id=env") {
		t.Errorf("the executor's log does not mention the task: the check above proves nothing")
	}
}

// getStatus GETs a page from the executor's status socket.
func getStatus(t *testing.T, socket, page string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://executor"+page, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := status.NewHTTPClient(socket)
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", page, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", page, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", page, resp.Status, b)
	}
	return string(b)
}

// TestKillUnknownTask makes the executor see a KILL for a task whose LAUNCH
// it never got: it must answer TASK_KILLED (the agent would otherwise wait on
// the task for ever). The framework checkpoints, so the executor reconnects
// after the broken stream that loses the LAUNCH.
func TestKillUnknownTask(t *testing.T) {
	t.Parallel()
	h := start(t, config{checkpoint: true})
	h.launch("anchor", args("sleep", "1h"))
	h.waitState("anchor", mesos.TASK_RUNNING)

	// The first re-SUBSCRIBE is refused, so the executor cannot be back
	// before the LAUNCH below has gone into the dead stream.
	h.la.SetSubscribeStatus(http.StatusServiceUnavailable, "Agent has not finished recovery", 1)
	h.la.DropStream()
	h.launch("ghost", args("sleep", "1h"))
	deadline := time.Now().Add(waitTimeout)
	for h.la.SubscribeCount() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the executor did not re-subscribe within %v of the dropped stream", waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}

	h.la.Kill("ghost", nil)
	u, err := h.waitUpdate(func(u localagent.Update) bool {
		return u.Status.TaskID.Value == "ghost" && u.Status.GetSource() == mesos.SOURCE_EXECUTOR
	})
	if err != nil {
		t.Fatalf("no executor update for the unknown task ghost after KILL: %v; its updates: %s", err, h.history("ghost"))
	}
	if s := u.Status.GetState(); s != mesos.TASK_KILLED {
		t.Errorf("executor's update for the unknown task: %s, want TASK_KILLED", s)
	}
	if cs := h.taskContainers("ghost"); len(cs) != 0 {
		t.Errorf("the unknown task has %d containers, want none", len(cs))
	}
	if s, _ := h.la.TaskState("anchor"); s != mesos.TASK_RUNNING {
		t.Errorf("task anchor is %s, want TASK_RUNNING; its updates: %s", s, h.history("anchor"))
	}
}

// TestDuplicateLaunch launches a task id that is already running: the
// running task is not disturbed.
func TestDuplicateLaunch(t *testing.T) {
	t.Parallel()
	h := start(t, config{})
	dup := h.launch("dup", args("sleep", "1h"))
	h.waitState("dup", mesos.TASK_RUNNING)

	h.la.Launch(dup)
	// The executor handles events in order: once a later task runs, the
	// duplicate LAUNCH has been dealt with.
	h.launch("later", args("sleep", "1h"))
	h.waitState("later", mesos.TASK_RUNNING)

	h.wantStates("dup", mesos.TASK_STARTING, mesos.TASK_RUNNING)
	if cs := h.taskContainers("dup"); len(cs) != 1 || cs[0].State != "running" {
		t.Errorf("task dup has containers %+v, want one running", cs)
	}
	var st status.State
	if err := json.Unmarshal([]byte(getStatus(t, filepath.Join(h.sandbox, status.SocketName), "/state")), &st); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range st.Tasks {
		if task.TaskID == "dup" {
			n++
			if task.State != "TASK_RUNNING" {
				t.Errorf("executor reports task dup %s, want TASK_RUNNING", task.State)
			}
		}
	}
	if n != 1 {
		t.Errorf("executor reports task dup %d times, want once", n)
	}
}

// TestStatusCLI runs `executor status` against a running executor whose
// sandbox is as deep as a real agent's, so that the socket path is longer
// than a Unix socket address can hold.
func TestStatusCLI(t *testing.T) {
	t.Parallel()
	sandbox := filepath.Join(t.TempDir(), "slaves", "0b6a4f8e-8c2f-4c4e-9d0e-3f9f1c2b7a61-S0",
		"frameworks", "0b6a4f8e-8c2f-4c4e-9d0e-3f9f1c2b7a61-0000", "executors", "mdx-executor",
		"runs", "6f1c2e3d-4b5a-4c6d-8e7f-9a0b1c2d3e4f")
	h := start(t, config{sandbox: sandbox})
	socket := filepath.Join(h.sandbox, status.SocketName)
	if len(socket) <= 108 {
		t.Fatalf("socket path %s is %d bytes; the test wants more than 108", socket, len(socket))
	}

	h.launch("web", args("sleep", "1h"))
	h.launch("job", args("echo", "done"))
	h.waitState("web", mesos.TASK_RUNNING)
	h.waitState("job", mesos.TASK_FINISHED)

	fi, err := os.Lstat(socket)
	if err != nil {
		t.Fatalf("status socket: %v", err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("status socket mode %v, want a socket with mode 0600", fi.Mode())
	}

	out := runStatus(t, "--socket", socket, "--json")
	var st map[string]any
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("executor status --json printed invalid JSON (%v):\n%s", err, out)
	}
	for k, want := range map[string]any{"executor_id": h.ex, "framework_id": h.fw, "agent_connected": true} {
		if st[k] != want {
			t.Errorf("%s = %#v, want %#v", k, st[k], want)
		}
	}
	if _, ok := st["unacknowledged_updates"].(float64); !ok {
		t.Errorf("unacknowledged_updates = %#v, want a number", st["unacknowledged_updates"])
	}
	tasks, _ := st["tasks"].([]any)
	got := map[string]map[string]any{}
	for _, x := range tasks {
		task, _ := x.(map[string]any)
		id, _ := task["task_id"].(string)
		got[id] = task
	}
	for id, want := range map[string]string{"web": "TASK_RUNNING", "job": "TASK_FINISHED"} {
		task := got[id]
		if task == nil {
			t.Errorf("task %s missing from %s", id, out)
			continue
		}
		if task["state"] != want {
			t.Errorf("task %s state %#v, want %q", id, task["state"], want)
		}
		if cid, _ := task["container_id"].(string); cid == "" {
			t.Errorf("task %s container_id %#v, want the container's id", id, task["container_id"])
		}
		if h, ok := task["healthy"]; !ok || h != nil {
			t.Errorf("task %s healthy = %#v (present %v), want null: it has no health check", id, h, ok)
		}
	}
	if len(got) != 2 {
		t.Errorf("%d tasks reported, want 2:\n%s", len(got), out)
	}

	table := string(runStatus(t, "--socket", socket))
	for _, want := range []string{h.ex, "web", "job"} {
		if !strings.Contains(table, want) {
			t.Errorf("executor status table lacks %q:\n%s", want, table)
		}
	}
}

// runStatus runs `executor status` with args and returns its stdout.
func runStatus(t *testing.T, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, executorBin, append([]string{"status"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("executor status %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}
