package prestart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/cni"
	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/gate"
	"github.com/mdx-executor/mdx/hooks"
)

// ReleaseTimeout bounds the wait for the gate to open its FIFO once
// everything else is ready; a gate that has not opened it by then is not
// going to.
const ReleaseTimeout = 30 * time.Second

var (
	// ErrContainerGone means the container no longer runs with the pid
	// the caller gave: it died before its pre-start steps could run.
	ErrContainerGone = errors.New("container is no longer running")
	// ErrNoCNI means a task asks for CNI networks but the executor has no
	// CNI configured.
	ErrNoCNI = errors.New("task asks for CNI networks, but CNI is not configured")
)

// Inspector is the part of containerd.Client the launcher needs.
type Inspector interface {
	Inspect(ctx context.Context, id string) (containerd.Info, error)
}

// Launcher runs the pre-start and post-stop steps. Either of cni and hooks
// may be nil (not configured).
type Launcher struct {
	docker Inspector
	cni    *cni.Client
	hooks  *hooks.Runner
	log    *logrus.Entry
}

// New returns a Launcher. A nil log discards.
func New(docker Inspector, cniClient *cni.Client, hookRunner *hooks.Runner, log *logrus.Entry) *Launcher {
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = logrus.NewEntry(l)
	}
	return &Launcher{docker: docker, cni: cniClient, hooks: hookRunner, log: log}
}

// NeedsGate reports whether a task with these CNI networks must be gated:
// it has networks, or the operator installed prestart hooks.
func (l *Launcher) NeedsGate(networks []string) (bool, error) {
	if len(networks) > 0 {
		return true, nil
	}
	if l.hooks == nil {
		return false, nil
	}
	names, err := l.hooks.Hooks(hooks.PreStart)
	if err != nil {
		return false, err
	}
	return len(names) > 0, nil
}

// Task is one gated task's container, as the task manager knows it.
type Task struct {
	TaskID      string
	ContainerID string
	Pid         int // State.Pid from the inspect after Start
	Image       string
	Labels      map[string]string
	// DockerNetwork is the container's Docker network ("none" for a
	// CNI-only task); it decides the CNI interface names.
	DockerNetwork string
	Networks      []string          // network.cni labels, in order
	CNIArgs       map[string]string // network.cni.args.*
	Ports         []cni.PortMapping // the task's port mappings
	// HookOutput receives the hooks' stdout and stderr (the task's
	// sandbox file); nil discards.
	HookOutput io.Writer
	// OnStep, if set, is called as each step begins, for /state:
	// "cni <network>", "hook <name>", "release".
	OnStep func(step string)
}

func (t *Task) step(s string) {
	if t.OnStep != nil {
		t.OnStep(s)
	}
}

func (t *Task) logFields() logrus.Fields {
	return logrus.Fields{"task_id": t.TaskID, "container_id": t.ContainerID}
}

// Start runs the pre-start steps of a created and started gated container
// and releases its gate: CNI ADD on each network, then the prestart hooks,
// then g.Release. It returns the CNI results, whose addresses belong in
// TASK_RUNNING's network_infos.
//
// On failure it runs CNI DEL for what it attached and aborts the gate; the
// caller then removes the container and reports the task failed
// (REASON_CONTAINER_LAUNCH_FAILED, with err's message, which names a failing
// hook and its stderr tail). When ctx ends (KILL, SHUTDOWN) the running
// hook's process group is killed and the same undo runs; the caller tells
// this case by its own ctx.Err() != nil (not by err's chain: a release that
// timed out also wraps context.DeadlineExceeded) and reports TASK_KILLED with
// REASON_TASK_KILLED_DURING_LAUNCH.
func (l *Launcher) Start(ctx context.Context, g *gate.Gate, t Task) (results []cni.Result, err error) {
	log := l.log.WithFields(t.logFields())
	if len(t.Networks) > 0 && l.cni == nil {
		return nil, ErrNoCNI
	}
	p, err := pin(t.Pid)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrContainerGone, err)
	}
	defer p.Close()
	// The pins are taken; if Docker still sees the container running with
	// that pid now, they hold its namespaces and nobody else's.
	info, err := l.docker.Inspect(ctx, t.ContainerID)
	if err != nil {
		return nil, fmt.Errorf("prestart: %w", err)
	}
	if !info.Running || info.Pid != t.Pid {
		return nil, fmt.Errorf("%w (pid %d, now %d, running %v)", ErrContainerGone, t.Pid, info.Pid, info.Running)
	}

	defer func() {
		if err == nil {
			return
		}
		// Undo on a context of its own: a KILL ended ctx, and DEL must
		// still run.
		undo, cancel := context.WithTimeout(context.WithoutCancel(ctx), ReleaseTimeout)
		defer cancel()
		for i := len(results) - 1; i >= 0; i-- {
			a := cni.Attachment{Network: results[i].Network, IfName: results[i].IfName, ContainerID: t.ContainerID, NetNS: p.NetNS()}
			if derr := l.cni.Del(undo, a); derr != nil {
				log.WithError(derr).Warn("CNI DEL after a failed launch")
			}
		}
		results = nil
		if g == nil {
			return
		}
		if aerr := g.Abort(undo); aerr != nil {
			log.WithError(aerr).Debug("gate abort after a failed launch (the container is removed anyway)")
		}
	}()

	for i, name := range t.Networks {
		t.step("cni " + name)
		res, err := l.cni.Add(ctx, cni.Attachment{
			Network: name, ContainerID: t.ContainerID, NetNS: p.NetNS(), IfName: cni.IfName(t.DockerNetwork, i),
			Args: t.CNIArgs, PortMappings: t.Ports,
		})
		if err != nil {
			return results, fmt.Errorf("network %s: %w", name, err)
		}
		results = append(results, res)
	}

	if l.hooks != nil {
		cniJSON, err := cni.ResultsJSON(results)
		if err != nil {
			return results, err
		}
		req := hooks.Request{
			Phase: hooks.PreStart,
			Env: hooks.Env{
				TaskID: t.TaskID, ContainerID: t.ContainerID, ContainerPID: t.Pid,
				NetNS: p.NetNS(), RootFS: p.RootFS(), Image: t.Image, Labels: t.Labels, CNIResult: cniJSON,
			},
			Output: t.HookOutput,
			OnHook: func(h string) { t.step("hook " + h) },
		}
		if err := l.hooks.Run(ctx, req); err != nil {
			return results, err
		}
	}

	t.step("release")
	rctx, cancel := context.WithTimeout(ctx, ReleaseTimeout)
	defer cancel()
	if err := g.Release(rctx); err != nil {
		return results, fmt.Errorf("release the start gate: %w", err)
	}
	return results, nil
}

// Stop runs after the container has exited (its exit reported): CNI DEL of
// every attachment cached for it, then the poststop hooks (best effort),
// then the gate's cleanup. g may be nil (after an executor restart). Errors
// are joined and worth a log line, not a task state.
func (l *Launcher) Stop(ctx context.Context, g *gate.Gate, t Task, results []cni.Result) error {
	var errs []error
	if l.cni != nil {
		// "": the process is gone, its pid may be anyone's now; the
		// interfaces went with the namespace.
		errs = append(errs, l.cni.DelAll(ctx, t.ContainerID, ""))
	}
	if l.hooks != nil {
		cniJSON, _ := cni.ResultsJSON(results)
		errs = append(errs, l.hooks.RunAll(ctx, hooks.Request{
			Phase: hooks.PostStop,
			Env: hooks.Env{TaskID: t.TaskID, ContainerID: t.ContainerID, ContainerPID: t.Pid,
				Image: t.Image, Labels: t.Labels, CNIResult: cniJSON},
			Output: t.HookOutput,
		}))
	}
	if g != nil {
		errs = append(errs, g.Cleanup())
	}
	return errors.Join(errs...)
}
