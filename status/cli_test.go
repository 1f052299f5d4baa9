package status

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// envMap returns an env func over m.
func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// runAt runs the CLI with the clock fixed at now.
func runAt(t *testing.T, now time.Time, env func(string) string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := runCLI(t.Context(), args, env, &out, func() time.Time { return now })
	return out.String(), err
}

func TestRunCLITable(t *testing.T) {
	t.Parallel()
	path := startServer(t, &fakeSource{st: testState()}, nil)
	now := testStart.Add(10 * time.Minute)
	out, err := runAt(t, now, envMap(nil), "--socket", path)
	if err != nil {
		t.Fatalf("RunCLI: %v", err)
	}
	mustContain(t, "output", out,
		"Executor:", "exec-1", "Framework:", "fw-1",
		"Agent connected:", "yes",
		"Unacknowledged updates:", "1",
		"Docker storage driver:", "overlay2",
		"Cgroups:", "/sys/fs/cgroup/mdx/exec-1",
		"Isolation:", "nested, parent /mesos/c1/mdx/exec_1 (tasks under the executor's memory cgroup /mesos/c1)",
		"Isolation warning: cgroups differ by controller",
		"Process:", "pid 4242, up 10m0s",
	)
	lines := strings.Split(out, "\n")
	header := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "TASK ID") {
			header = i
		}
	}
	if header < 0 {
		t.Fatalf("no table header in output:\n%s", out)
	}
	if got := strings.Fields(lines[header]); strings.Join(got, " ") != "TASK ID STATE HEALTHY CONTAINER IP EXIT AGE/DURATION" {
		t.Errorf("header = %q", lines[header])
	}
	wantRows := [][]string{
		{"web-1", "RUNNING", "yes", "0123456789ab", "172.17.0.2", "-", "9m0s"},
		{"batch-7", "FAILED", "-", "fedcba987654", "-", "3", "1m30s"},
		{"new", "task/%", "STAGING", "-", "-", "-", "-", "-"},
	}
	for i, want := range wantRows {
		row := lines[header+1+i]
		if got := strings.Fields(row); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("row %d = %q, want fields %q", i, row, want)
		}
	}
	// Columns line up: every row starts its STATE column at the same offset.
	col := strings.Index(lines[header], "STATE")
	if !strings.HasPrefix(lines[header+1][col:], "RUNNING") {
		t.Errorf("table not aligned:\n%s", out)
	}
}

func TestRunCLITask(t *testing.T) {
	t.Parallel()
	path := startServer(t, &fakeSource{st: testState()}, nil)
	now := testStart.Add(10 * time.Minute)

	out, err := runAt(t, now, envMap(nil), "batch-7", "--socket", path) // flags after TASK_ID too
	if err != nil {
		t.Fatalf("RunCLI: %v", err)
	}
	mustContain(t, "output", out,
		"Task:", "batch-7", "TASK_FAILED", "Exit code:", "3",
		"REASON_COMMAND_EXECUTOR_FAILED", "History:", "TIME", "exit 3",
		testStart.Add(90*time.Second).Format(time.RFC3339))
	// The message's tab and newline must not break the layout.
	if regexp.MustCompile(`exited with\tcode`).MatchString(out) || strings.Contains(out, "code 3\n\n\n") {
		t.Errorf("control characters passed through:\n%q", out)
	}

	// A running task shows its cgroup stats.
	out, err = runAt(t, now, envMap(nil), "--socket", path, "web-1")
	if err != nil {
		t.Fatalf("RunCLI: %v", err)
	}
	mustContain(t, "output", out, "CPU:", "user 2.50s, system 0.25s",
		"Memory:", "100.0 MiB now, 120.0 MiB peak, rss 90.0 MiB", "limit 256.0 MiB", "Pids:", "7, limit 4096", "OOM kills:", "1")

	// An id that needs escaping in the URL.
	out, err = runAt(t, now, envMap(nil), "--socket", path, "--", "new task/%")
	if err != nil {
		t.Fatalf("RunCLI: %v", err)
	}
	mustContain(t, "output", out, "new task/%", "TASK_STAGING", "No history.")

	_, err = runAt(t, now, envMap(nil), "--socket", path, "nope")
	if err == nil || !strings.Contains(err.Error(), `unknown task "nope"`) || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown task: err = %v", err)
	}
}

func TestRunCLIJSON(t *testing.T) {
	t.Parallel()
	path := startServer(t, &fakeSource{st: testState()}, nil)
	// The socket comes from the environment this time.
	env := envMap(map[string]string{"EXECUTOR_STATUS_SOCKET": path})
	out, err := runAt(t, time.Now(), env, "--json")
	if err != nil {
		t.Fatalf("RunCLI --json: %v", err)
	}
	var st State
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("--json output is not a State: %v\n%s", err, out)
	}
	if st.ExecutorID != "exec-1" || len(st.Tasks) != 3 || st.Tasks[0].History != nil {
		t.Errorf("--json state = %+v", st)
	}
	if !strings.Contains(out, "\n  \"executor_id\"") {
		t.Errorf("--json output is not indented:\n%s", out)
	}

	out, err = runAt(t, time.Now(), env, "--json", "web-1")
	if err != nil {
		t.Fatalf("RunCLI --json web-1: %v", err)
	}
	var task Task
	if err := json.Unmarshal([]byte(out), &task); err != nil || task.TaskID != "web-1" || len(task.History) != 2 {
		t.Errorf("--json web-1 = %+v, %v", task, err)
	}
}

func TestRunCLIErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stale := filepath.Join(longDir(t), "executor.sock")
	makeStale(t, stale)
	notJSON := filepath.Join(dir, "nothttp.sock")
	// A socket whose server answers with something that is not our JSON.
	ln, err := Listen(notJSON)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			_, _ = c.Read(buf)
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"))
			c.Close()
		}
	}()

	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"missing socket", nil, []string{"--socket", filepath.Join(dir, "none.sock")},
			"no executor status socket at " + filepath.Join(dir, "none.sock") + ": is the executor running?"},
		{"missing sandbox socket", map[string]string{"MESOS_SANDBOX": dir}, nil,
			"no executor status socket at " + filepath.Join(dir, "executor.sock") + ": is the executor running?"},
		{"missing directory", nil, []string{"--socket", filepath.Join(longDir(t), "gone", "executor.sock")},
			"no executor status socket at"},
		{"stale socket", nil, []string{"--socket", stale}, "refused the connection"},
		{"bad response", nil, []string{"--socket", notJSON}, "bad response from executor status socket at " + notJSON},
		{"no path at all", nil, nil, "no socket path"},
		{"two task ids", nil, []string{"--socket", stale, "a", "b"}, "at most one TASK_ID"},
		{"unknown flag", nil, []string{"--bogus"}, "flag provided but not defined: -bogus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runAt(t, time.Now(), envMap(tt.env), tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("RunCLI(%q) error = %v, want it to contain %q", tt.args, err, tt.want)
			}
			if out != "" {
				t.Errorf("RunCLI(%q) wrote %q on error", tt.args, out)
			}
		})
	}
}

func TestRunCLIHelp(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := RunCLI(context.Background(), []string{"-h"}, envMap(nil), &out); err != nil {
		t.Fatalf("RunCLI -h: %v", err)
	}
	mustContain(t, "usage", out.String(), "usage: executor status", "-socket", "-json")
}

func TestDefaultSocketPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  map[string]string
		want string
	}{
		{nil, ""},
		{map[string]string{"MESOS_SANDBOX": "/sb"}, "/sb/executor.sock"},
		{map[string]string{"MESOS_SANDBOX": "/sb", "EXECUTOR_STATUS_SOCKET": "/x.sock"}, "/x.sock"},
	}
	for _, tt := range tests {
		if got := DefaultSocketPath(envMap(tt.env)); got != tt.want {
			t.Errorf("DefaultSocketPath(%v) = %q, want %q", tt.env, got, tt.want)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{1400 * time.Millisecond, "1s"},
		{90 * time.Second, "1m30s"},
		{3*time.Hour + 4*time.Minute + 5*time.Second, "3h4m"},
		{50 * time.Hour, "2d2h"},
	}
	for _, tt := range tests {
		if got := humanDuration(tt.d); got != tt.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestRunCLIPulls(t *testing.T) {
	t.Parallel()
	st := testState()
	st.Pulls = []Pull{{
		Image: "registry.example.com/web:1.4", TaskIDs: []string{"web-2", "web-3"},
		BytesDone: 3 << 20, BytesTotal: 12 << 20, StartedAt: testStart, ElapsedSeconds: 75,
		Status: "Downloading",
	}}
	path := startServer(t, &fakeSource{st: st}, nil)
	out, err := runAt(t, testStart.Add(10*time.Minute), envMap(nil), "--socket", path)
	if err != nil {
		t.Fatalf("RunCLI: %v", err)
	}
	mustContain(t, "output", out, "Pulling registry.example.com/web:1.4: 3.0 MiB of 12.0 MiB, 1m15s, for web-2, web-3")

	raw, err := runAt(t, testStart, envMap(nil), "--socket", path, "--json")
	if err != nil {
		t.Fatalf("RunCLI --json: %v", err)
	}
	var got State
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatalf("--json output: %v", err)
	}
	if len(got.Pulls) != 1 || got.Pulls[0].BytesTotal != 12<<20 || len(got.Pulls[0].TaskIDs) != 2 {
		t.Errorf("pulls in /state = %+v; want the one pull", got.Pulls)
	}
}

func TestHumanBytes(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q; want %q", n, got, want)
		}
	}
}
