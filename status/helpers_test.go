package status

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

// fakeSource returns a fixed State; tests may swap it.
type fakeSource struct {
	mu sync.Mutex
	st State
}

func (f *fakeSource) State() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func ptr[T any](v T) *T { return &v }

var testStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testState is a typical executor with three tasks in different states.
func testState() State {
	return State{
		ExecutorID:            "exec-1",
		FrameworkID:           "fw-1",
		AgentID:               "agent-1",
		PID:                   4242,
		StartedAt:             testStart,
		AgentConnected:        true,
		UnacknowledgedUpdates: 1,
		Unacknowledged: []PendingUpdate{
			{TaskID: "web-1", State: "TASK_RUNNING", UUID: "0b1c", AgeSeconds: 2.5},
		},
		Docker:  DockerState{APIVersion: "1.47", StorageDriver: "overlay2", CgroupVersion: "2"},
		Cgroups: "/sys/fs/cgroup/mdx/exec-1",
		Isolation: &IsolationState{Mode: "nested", Reason: "tasks under the executor's memory cgroup /mesos/c1",
			CgroupParent: "/mesos/c1/mdx/exec_1", Warnings: []string{"cgroups differ\tby controller"}},
		Tasks: []Task{
			{
				TaskID:      "web-1",
				State:       "TASK_RUNNING",
				ContainerID: "0123456789abcdef0123456789abcdef",
				Healthy:     ptr(true),
				Image:       "nginx:1.27",
				IP:          "172.17.0.2",
				StartedAt:   ptr(testStart.Add(time.Minute)),
				Stats: &TaskStats{CPUUserSeconds: 2.5, CPUSystemSeconds: 0.25, MemoryBytes: 100 << 20, MemoryPeakBytes: 120 << 20,
					MemoryRSSBytes: 90 << 20, MemoryLimitBytes: 256 << 20, Pids: 7, PidsLimit: 4096, OOMKills: 1},
				History: []HistoryEntry{
					{State: "TASK_STARTING", Time: testStart},
					{State: "TASK_RUNNING", Time: testStart.Add(time.Minute)},
				},
			},
			{
				TaskID:      "batch-7",
				State:       "TASK_FAILED",
				ContainerID: "fedcba9876543210",
				ExitCode:    ptr(3),
				Reason:      "REASON_COMMAND_EXECUTOR_FAILED",
				Message:     "exited with\tcode 3\n",
				StartedAt:   ptr(testStart),
				FinishedAt:  ptr(testStart.Add(90 * time.Second)),
				History: []HistoryEntry{
					{State: "TASK_FAILED", Reason: "REASON_COMMAND_EXECUTOR_FAILED", Message: "exit 3", Time: testStart.Add(90 * time.Second)},
				},
			},
			{TaskID: "new task/%", State: "TASK_STAGING"},
		},
	}
}

func testLogger(t *testing.T) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(t.Output())
	l.SetLevel(logrus.DebugLevel)
	return logrus.NewEntry(l)
}

// longDir returns a directory under t.TempDir whose path is over 200 bytes,
// like a real Mesos sandbox
// (slaves/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>).
func longDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(),
		"slaves", "5a4c1f2e-0b7d-4c1e-9a1f-3e2d1c0b9a8f-S0",
		"frameworks", "5a4c1f2e-0b7d-4c1e-9a1f-3e2d1c0b9a8f-0001",
		"executors", "mdx-executor.5a4c1f2e0b7d4c1e",
		"runs", "9a1f3e2d-1c0b-9a8f-5a4c-1f2e0b7d4c1e")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if len(dir) < 200 {
		t.Fatalf("test setup: dir is %d bytes, want >= 200", len(dir))
	}
	return dir
}

// startServer serves src on a socket at a long path and returns the path. The
// server stops at the end of the test, which also checks that Serve returned
// nil and removed the socket file.
func startServer(t *testing.T, src Source, reg *prometheus.Registry) string {
	t.Helper()
	path := filepath.Join(longDir(t), "executor.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(src, reg, testLogger(t)).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return after cancel")
		}
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket file after Serve returned: Lstat error %v, want not exist", err)
		}
	})
	return path
}

// get requests page from the socket at path.
func get(t *testing.T, path, method, page string) (*http.Response, string) {
	t.Helper()
	client := NewHTTPClient(path)
	t.Cleanup(client.CloseIdleConnections)
	req, err := http.NewRequestWithContext(t.Context(), method, "http://executor"+page, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, page, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, page, err)
	}
	return resp, string(b)
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not contain %q; got:\n%s", what, w, got)
		}
	}
}
