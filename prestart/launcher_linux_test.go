package prestart

import (
	"context"
	"errors"
	"github.com/mdx-executor/mdx/internal/testenv"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/gate"
	"github.com/mdx-executor/mdx/hooks"
)

// The whole sequence on real Docker: CNI ADD, a hook that writes a marker
// into the container's root filesystem and sees its environment, release;
// the task's first instruction prints the marker, proving it ran after the
// hook, and sees its CNI address.
func TestStartAttachesHooksAndReleases(t *testing.T) {
	r := newRig(t, 0)
	r.hook(t, "10-marker", `printf 'marker task=%s app=%s pid=%s\n' "$MDX_TASK_ID" "$MDX_LABEL_APP_NAME" "$MDX_CONTAINER_PID" > "$MDX_ROOTFS/marker"
printf '%s' "$MDX_CNI_RESULT" > "$MDX_ROOTFS/cni.json"
echo hook-ran-on "$MDX_NETNS"
`)
	l := r.start(t, "t1", "cat", "/marker", "--", "cat", "/cni.json", "--", "echo", "", "--", "addrs")
	var steps []string
	var hookOut testenv.SyncBuffer
	l.task.OnStep = func(s string) { steps = append(steps, s) }
	l.task.HookOutput = &hookOut
	results, err := r.launcher.Start(context.Background(), l.gate, l.task)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || len(results[0].IPs) != 1 || !strings.HasPrefix(results[0].IPs[0].String(), r.prefix+".") {
		t.Fatalf("results %+v", results)
	}
	out, code := l.wait(t, r.dc)
	if code != 0 {
		t.Fatalf("task exit %d: %s", code, out)
	}
	for _, want := range []string{
		"marker task=t1 app=web-t1 pid=" + itoa(l.pid),
		`"ips":["` + results[0].IPs[0].String() + `"]`,
		"eth0 " + results[0].IPs[0].String(),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("task output lacks %q:\n%s", want, out)
		}
	}
	if want := []string{"cni " + r.network, "hook 10-marker", "release"}; strings.Join(steps, ",") != strings.Join(want, ",") {
		t.Errorf("steps %q, want %q", steps, want)
	}
	if !strings.Contains(hookOut.String(), "hook-ran-on /proc/") {
		t.Errorf("hook output %q", hookOut.String())
	}

	// The container's end: DEL leaves no veth and no address behind.
	if err := r.launcher.Stop(context.Background(), l.gate, l.task, results); err != nil {
		t.Fatal(err)
	}
	if got := r.reserved(t); len(got) != 0 {
		t.Errorf("addresses still reserved: %v", got)
	}
	if n := r.bridgePorts(t); n != 0 {
		t.Errorf("%d veths left on the bridge", n)
	}
	if _, err := os.Stat(l.gate.FIFOPath()); !os.IsNotExist(err) {
		t.Errorf("gate FIFO left behind: %v", err)
	}
}

// A failing hook fails the launch with its name and stderr tail; the CNI
// attachment is undone and the gate aborted, so the task never runs.
func TestFailingHookUndoes(t *testing.T) {
	r := newRig(t, 0)
	r.hook(t, "10-ok", "exit 0\n")
	r.hook(t, "20-vlan", "echo 'no VLAN 42 on bond0' >&2\nexit 4\n")
	l := r.start(t, "t2", "echo", "task-ran")
	_, err := r.launcher.Start(context.Background(), l.gate, l.task)
	var herr *hooks.HookError
	if !errors.As(err, &herr) || herr.Hook != "20-vlan" {
		t.Fatalf("Start = %v, want the 20-vlan HookError", err)
	}
	if !strings.Contains(err.Error(), "hook 20-vlan exited with status 4: no VLAN 42 on bond0") {
		t.Errorf("message %q", err)
	}
	out, code := l.wait(t, r.dc)
	if code != gate.ExitAborted || strings.Contains(out, "task-ran") {
		t.Errorf("container exit %d, output %q; want the gate's abort", code, out)
	}
	if got := r.reserved(t); len(got) != 0 {
		t.Errorf("addresses still reserved: %v", got)
	}
	if n := r.bridgePorts(t); n != 0 {
		t.Errorf("%d veths left on the bridge", n)
	}
}

// KILL during a slow hook: the hook's group dies, Start returns a
// cancellation promptly, and CNI is undone.
func TestKillDuringSlowHook(t *testing.T) {
	r := newRig(t, 0)
	r.hook(t, "10-slow", "sleep 300\n")
	l := r.start(t, "t3", "echo", "task-ran")
	ctx, cancel := context.WithCancel(context.Background())
	l.task.OnStep = func(s string) {
		if s == "hook 10-slow" {
			time.AfterFunc(300*time.Millisecond, cancel)
		}
	}
	start := time.Now()
	_, err := r.launcher.Start(ctx, l.gate, l.task)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Start = %v, want a cancellation", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Start returned %v after the kill", d)
	}
	if got := r.reserved(t); len(got) != 0 {
		t.Errorf("addresses still reserved: %v", got)
	}
	if _, code := l.wait(t, r.dc); code != gate.ExitAborted {
		t.Errorf("container exit %d, want %d", code, gate.ExitAborted)
	}
}

// A hanging hook times out: the launch fails naming it.
func TestHangingHookTimesOut(t *testing.T) {
	r := newRig(t, 500*time.Millisecond)
	r.hook(t, "10-hang", "echo waiting forever >&2\nsleep 300\n")
	l := r.start(t, "t4", "echo", "task-ran")
	_, err := r.launcher.Start(context.Background(), l.gate, l.task)
	var herr *hooks.HookError
	if !errors.As(err, &herr) || !herr.TimedOut || !strings.Contains(err.Error(), "hook 10-hang timed out and was killed: waiting forever") {
		t.Fatalf("Start = %v, want a timeout of 10-hang", err)
	}
	if got := r.reserved(t); len(got) != 0 {
		t.Errorf("addresses still reserved: %v", got)
	}
}

// fakeInspector reports a container with another pid: the one the caller
// gave was recycled.
type fakeInspector struct{ info containerd.Info }

func (f fakeInspector) Inspect(context.Context, string) (containerd.Info, error) { return f.info, nil }

func TestRefusesRecycledPid(t *testing.T) {
	l := New(fakeInspector{containerd.Info{Running: true, Pid: os.Getpid() + 1}}, nil, nil, nil)
	_, err := l.Start(context.Background(), nil, Task{ContainerID: "c", Pid: os.Getpid()})
	if !errors.Is(err, ErrContainerGone) {
		t.Errorf("Start = %v, want ErrContainerGone", err)
	}
	l = New(fakeInspector{containerd.Info{Running: false, Pid: os.Getpid()}}, nil, nil, nil)
	if _, err := l.Start(context.Background(), nil, Task{ContainerID: "c", Pid: os.Getpid()}); !errors.Is(err, ErrContainerGone) {
		t.Errorf("Start on a stopped container = %v, want ErrContainerGone", err)
	}
	if _, err := l.Start(context.Background(), nil, Task{ContainerID: "c", Pid: 0x3fffffff}); !errors.Is(err, ErrContainerGone) {
		t.Errorf("Start on a missing pid = %v, want ErrContainerGone", err)
	}
}

func TestNeedsGate(t *testing.T) {
	l := New(nil, nil, nil, nil)
	if need, err := l.NeedsGate(nil); need || err != nil {
		t.Errorf("no networks, no hooks: %v, %v", need, err)
	}
	if need, err := l.NeedsGate([]string{"vlan10"}); !need || err != nil {
		t.Errorf("a network: %v, %v", need, err)
	}
	if _, err := l.Start(context.Background(), nil, Task{Networks: []string{"x"}}); !errors.Is(err, ErrNoCNI) {
		t.Errorf("networks without CNI: %v", err)
	}
}
