package containerd_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/containerd"
)

// dockerEnv is shared by every Docker test of the package: one client and one
// imported test image, set up by the first test that needs them and torn down
// in TestMain.
type dockerEnv struct {
	once        sync.Once
	client      *containerd.Client
	image       string
	tmp         string
	unreachable error // the daemon did not answer: skip (or fail under CI)
	setupErr    error // the daemon answered but the image could not be made: fail
}

var env dockerEnv

func TestMain(m *testing.M) {
	code := m.Run()
	if env.client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if env.image != "" {
			if err := env.client.DeleteImage(ctx, env.image); err != nil {
				fmt.Fprintf(os.Stderr, "remove test image: %v\n", err)
			}
		}
		cancel()
		_ = env.client.Close()
	}
	if env.tmp != "" {
		_ = os.RemoveAll(env.tmp)
	}
	os.Exit(code)
}

// requireDocker returns the shared client and the test image ref. Without a
// daemon it skips the test, or fails it when CI=true, since CI machines have
// one and a silent skip there would hide a broken runner.
func requireDocker(t *testing.T) (*containerd.Client, string) {
	t.Helper()
	env.once.Do(setupDocker)
	if env.unreachable != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("docker not reachable (CI=true): %v", env.unreachable)
		}
		t.Skipf("docker not reachable: %v", env.unreachable)
	}
	if env.setupErr != nil {
		t.Fatalf("docker test setup: %v", env.setupErr)
	}
	return env.client, env.image
}

func setupDocker() {
	log := logrus.New()
	log.SetOutput(os.Stderr)
	log.SetLevel(logrus.WarnLevel)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	c, err := containerd.New(ctx, containerd.Config{CallTimeout: 20 * time.Second}, log.WithField("test", "containerd"))
	if err != nil {
		env.unreachable = err
		return
	}
	env.client = c

	root, err := moduleRoot()
	if err != nil {
		env.setupErr = err
		return
	}
	env.tmp, err = os.MkdirTemp("", "mdx-containerd-test-")
	if err != nil {
		env.setupErr = err
		return
	}
	bin := filepath.Join(env.tmp, "task")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./test/taskbin")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		env.setupErr = fmt.Errorf("build test/taskbin: %w\n%s", err, out)
		return
	}

	ref := "mdx-test/task:" + randHex(6)
	err = c.ImportBinaryImage(ctx, ref,
		map[string]string{"/task": bin, "/bin/sh": bin},
		[]string{`ENTRYPOINT ["/task"]`, `CMD ["sleep", "1h"]`})
	if err != nil {
		env.setupErr = err
		return
	}
	env.image = ref
}

// moduleRoot walks up from the test's directory to the one holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test directory")
		}
		dir = parent
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

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

// syncBuffer is a bytes.Buffer that Logs can write while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logs follows the container's output in the background; wait returns the
// Logs error once the stream has ended.
func logs(t *testing.T, c *containerd.Client, id string) (stdout, stderr *syncBuffer, wait func() error) {
	t.Helper()
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	done := make(chan error, 1)
	go func() { done <- c.Logs(ctx, id, stdout, stderr) }()
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
func waitOutput(t *testing.T, buf *syncBuffer, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(buf.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output %q still lacks %q after %v", buf.String(), want, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
