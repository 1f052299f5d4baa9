package containerd_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
	"github.com/mdx-executor/mdx/internal/testenv"
)

func TestMain(m *testing.M) { containerdtest.Main(m) }

// requireDocker returns the shared client and the test image ref, or skips the
// test without a daemon (fails it when CI=true).
func requireDocker(t *testing.T) (*containerd.Client, string) {
	t.Helper()
	c := containerdtest.Docker(t)
	return c, containerdtest.TaskImage(t, c)
}

func randHex(n int) string { return containerdtest.RandHex(n) }

// owner is one test's fake executor: its labels keep its containers apart
// from every other test's.
type owner struct {
	frameworkID string
	executorID  string
}

func newOwner() owner {
	return owner{frameworkID: "fw-test", executorID: "ex-" + randHex(6)}
}

func (o owner) labels() map[string]string {
	return map[string]string{
		containerd.LabelFramework: o.frameworkID,
		containerd.LabelExecutor:  o.executorID,
	}
}

// spec returns a Spec for taskID running the test image with cmd (nil keeps
// the image's CMD).
func (o owner) spec(image, taskID string, cmd ...string) containerd.Spec {
	labels := o.labels()
	labels[containerd.LabelTask] = taskID
	return containerd.Spec{
		Name:   containerd.ContainerName(o.frameworkID, o.executorID, taskID),
		Image:  image,
		Cmd:    cmd,
		Labels: labels,
		Init:   true,
	}
}

// create creates the container and removes it when the test ends.
func create(t *testing.T, c *containerd.Client, spec containerd.Spec) string {
	t.Helper()
	id, err := c.Create(t.Context(), spec)
	if err != nil {
		t.Fatalf("Create(%s): %v", spec.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Remove(ctx, id); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return id
}

// run creates and starts the container.
func run(t *testing.T, c *containerd.Client, spec containerd.Spec) string {
	t.Helper()
	id := create(t, c, spec)
	if err := c.Start(t.Context(), id); err != nil {
		t.Fatalf("Start(%s): %v", spec.Name, err)
	}
	return id
}

// watch runs WatchExits for labels until the test ends and returns its
// output.
func watch(t *testing.T, c *containerd.Client, labels map[string]string) <-chan containerd.Exit {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan containerd.Exit, 64)
	done := make(chan error, 1)
	go func() { done <- c.WatchExits(ctx, labels, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("WatchExits returned %v, want nil after cancel", err)
		}
	})
	return out
}

// waitExit waits for the exit of container id, ignoring other containers'.
func waitExit(t *testing.T, exits <-chan containerd.Exit, id string, timeout time.Duration) containerd.Exit {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case e := <-exits:
			if e.ContainerID == id {
				return e
			}
		case <-timer.C:
			t.Fatalf("no exit reported for container %.12s within %v", id, timeout)
		}
	}
}

// waitExited polls Inspect until the container has stopped; only tests that
// must see an exit before watching use it.
func waitExited(t *testing.T, c *containerd.Client, id string, timeout time.Duration) containerd.Info {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		info, err := c.Inspect(t.Context(), id)
		if err != nil {
			t.Fatalf("Inspect: %v", err)
		}
		if info.Status == "exited" || info.Status == "dead" {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %.12s still %s after %v", id, info.Status, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logs follows the container's output in the background; wait returns the
// Logs error once the stream has ended.
func logs(t *testing.T, c *containerd.Client, id string) (stdout, stderr *testenv.SyncBuffer, wait func() error) {
	t.Helper()
	stdout, stderr = &testenv.SyncBuffer{}, &testenv.SyncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	done := make(chan error, 1)
	go func() { done <- c.Logs(ctx, id, time.Time{}, stdout, stderr) }()
	var once sync.Once
	var err error
	wait = func() error {
		once.Do(func() { err = <-done; cancel() })
		return err
	}
	t.Cleanup(func() { cancel(); _ = wait() })
	return stdout, stderr, wait
}

// waitOutput waits until buf contains want.
func waitOutput(t *testing.T, buf *testenv.SyncBuffer, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(buf.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output %q still lacks %q after %v", buf.String(), want, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// skipOrFail skips t with the reason, or fails it when CI=true.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	testenv.SkipOrFail(t, format, args...)
}
