package gate

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
)

func gateBinary(t testing.TB) string { return containerdtest.ExecutorBinary(t) }

func requireDocker(t *testing.T) *containerd.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping a real Docker test")
	}
	return containerdtest.Docker(t)
}

func dockerManager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(Config{Dir: filepath.Join(t.TempDir(), "gates"), Binary: gateBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// container is a started test container whose output is being collected.
type container struct {
	id   string
	pid  int
	out  bytes.Buffer // stdout and stderr, in order of arrival
	done chan struct{}
}

// launch creates and starts spec and follows its output. The container is
// removed after the test.
func launch(t *testing.T, dc *containerd.Client, spec containerd.Spec) *container {
	t.Helper()
	ctx := context.Background()
	spec.Name = "mdx-gatetest-" + containerdtest.RandHex(6)
	if spec.Labels == nil {
		spec.Labels = map[string]string{"io.mdx.test": "gate"}
	}
	id, err := dc.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dc.RemoveContainer(context.Background(), id, true) })
	if err := dc.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	info, err := dc.Inspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	c := &container{id: id, pid: info.Pid, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		_ = dc.Logs(context.Background(), id, time.Time{}, &c.out, &c.out)
	}()
	return c
}

// wait waits for the container to exit and returns its output and status.
func (c *container) wait(t *testing.T, dc *containerd.Client, timeout time.Duration) (string, int) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		t.Fatalf("container %s still running after %v", c.id, timeout)
	}
	// The log stream ends with the output; the state may lag a moment.
	for range 50 {
		info, err := dc.Inspect(context.Background(), c.id)
		if err != nil {
			t.Fatal(err)
		}
		if !info.Running {
			return c.out.String(), info.ExitCode
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("container %s: output ended but still running", c.id)
	return "", 0
}

// gated launches spec behind a fresh gate and returns it unreleased.
func gated(t *testing.T, dc *containerd.Client, m *Manager, spec containerd.Spec) (*container, *Gate) {
	t.Helper()
	img, err := dc.ImageConfig(context.Background(), spec.Image)
	if err != nil {
		t.Fatal(err)
	}
	g, err := m.Prepare("mdx-gate-" + containerdtest.RandHex(6))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Cleanup() })
	if err := g.Wrap(&spec, img); err != nil {
		t.Fatal(err)
	}
	return launch(t, dc, spec), g
}

func release(t *testing.T, g *Gate) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// A gated container, once released, runs what the same spec runs without a
// gate: same output, same exit status, for the image's entrypoint with a CMD
// override, for a relative entrypoint found through PATH, with env, user and
// working dir applied.
func TestGatedRunsExactlyAsDocker(t *testing.T) {
	dc := requireDocker(t)
	m := dockerManager(t)
	img := containerdtest.TaskImage(t, dc)
	for _, tc := range []struct {
		name string
		spec containerd.Spec
	}{
		{"cmd override with env, user, workdir", containerd.Spec{Cmd: []string{"env"}, Env: []string{"A=1", "PATH=/bin:/usr/bin"},
			User: "65534:65534", WorkingDir: "/tmp"}},
		{"relative entrypoint through PATH", containerd.Spec{Entrypoint: []string{"sh", "-c", "echo from-shell -- exit 3"}}},
		{"entrypoint override drops image cmd", containerd.Spec{Entrypoint: []string{"/task", "echo", "only"}}},
		{"docker-init as PID 1", containerd.Spec{Cmd: []string{"echo", "with", "init"}, Init: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.Image = img
			plain := launch(t, dc, spec)
			wantOut, wantCode := plain.wait(t, dc, 30*time.Second)
			if strings.TrimSpace(wantOut) == "" {
				t.Fatalf("the plain container printed nothing (exit %d): nothing to compare", wantCode)
			}

			c, g := gated(t, dc, m, spec)
			release(t, g)
			gotOut, gotCode := c.wait(t, dc, 30*time.Second)
			if gotCode != wantCode || dropHostname(gotOut) != dropHostname(wantOut) {
				t.Errorf("gated: exit %d, output\n%s\nplain: exit %d, output\n%s", gotCode, gotOut, wantCode, wantOut)
			}
		})
	}
}

func dropHostname(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "HOSTNAME=") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func comm(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// With init on, docker-init stays PID 1 and the gate is its child, which
// becomes the task's process in place (exec, not fork) on release.
func TestGateUnderInit(t *testing.T) {
	dc := requireDocker(t)
	m := dockerManager(t)
	c, g := gated(t, dc, m, containerd.Spec{Image: containerdtest.TaskImage(t, dc), Cmd: []string{"sleep", "1h"}, Init: true})
	if got := comm(t, c.pid); got != "docker-init" {
		t.Fatalf("first process is %q, want docker-init", got)
	}
	var child int
	for range 100 { // docker-init forks the gate right after start
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", c.pid, c.pid))
		if f := strings.Fields(string(b)); len(f) == 1 {
			child, _ = strconv.Atoi(f[0])
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if child == 0 || comm(t, child) != "gate" {
		t.Fatalf("docker-init's child %d is not the gate", child)
	}
	release(t, g)
	deadline := time.Now().Add(10 * time.Second)
	for comm(t, child) != "task" {
		if time.Now().After(deadline) {
			t.Fatalf("after release the child is %q, want the task", comm(t, child))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Abort, a removed FIFO and a stop signal each end a waiting gate with its
// own status, without running the task.
func TestGateEndsWithoutRelease(t *testing.T) {
	dc := requireDocker(t)
	m := dockerManager(t)
	img := containerdtest.TaskImage(t, dc)
	spec := containerd.Spec{Image: img, Cmd: []string{"echo", "task-ran"}}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		end  func(*testing.T, *container, *Gate)
		code int
	}{
		{"abort", func(t *testing.T, _ *container, g *Gate) {
			ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			if err := g.Abort(ctx); err != nil {
				t.Fatal(err)
			}
		}, ExitAborted},
		{"fifo removed", func(t *testing.T, _ *container, g *Gate) {
			time.Sleep(200 * time.Millisecond) // let the gate open it
			if err := g.Cleanup(); err != nil {
				t.Fatal(err)
			}
		}, ExitGone},
		{"SIGTERM while gate is PID 1", func(t *testing.T, c *container, _ *Gate) {
			time.Sleep(200 * time.Millisecond) // let the gate install its handler
			if err := dc.Kill(ctx, c.id, "SIGTERM"); err != nil {
				t.Fatal(err)
			}
		}, 128 + 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, g := gated(t, dc, m, spec)
			tc.end(t, c, g)
			out, code := c.wait(t, dc, 15*time.Second)
			if code != tc.code || strings.Contains(out, "task-ran") {
				t.Errorf("exit %d (want %d), output %q", code, tc.code, out)
			}
		})
	}
}
