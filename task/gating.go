package task

import (
	"context"
	"fmt"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/cni"
	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/gate"
	"github.com/mdx-executor/mdx/prestart"
	"github.com/mdx-executor/mdx/sandbox"
)

// Gating runs gated launches: a task with CNI networks, or any task on a host
// whose operator installed prestart hooks, starts behind the start gate and
// runs its own command only after CNI ADD and the hooks. nil: a task that
// asks for a CNI network fails, and no hook runs.
type Gating struct {
	Gates    *gate.Manager
	Launcher *prestart.Launcher
	Images   ImageConfigs
}

// ImageConfigs gives an image's own ENTRYPOINT, CMD, environment, user and
// working directory, which the gate needs to exec the real command;
// *containerd.Client implements it.
type ImageConfigs interface {
	ImageConfig(ctx context.Context, ref string) (containerd.ImageConfig, error)
}

// gated is a gated run's state: what Stop needs after the task's end.
type gated struct {
	gate    *gate.Gate
	task    prestart.Task
	results []cni.Result
}

// gateStopTimeout bounds CNI DEL and the poststop hooks after a task's end.
const gateStopTimeout = 2 * time.Minute

// prepareGate decides whether the run is gated and, if so, makes its gate
// and wraps the spec's argv in it. It runs on the launch goroutine.
func (m *Manager) prepareGate(ctx context.Context, j *launchJob) (*gate.Gate, error) {
	g := m.cfg.Gating
	if g == nil {
		if len(j.networks) > 0 {
			return nil, fmt.Errorf("CNI networks %v: this host's executor has no CNI configured", j.networks)
		}
		return nil, nil
	}
	need, err := g.Launcher.NeedsGate(j.networks)
	if err != nil {
		return nil, fmt.Errorf("the operator's prestart hooks: %w", err)
	}
	if !need {
		return nil, nil
	}
	gt, err := g.Gates.Prepare(j.spec.Name)
	if err != nil {
		return nil, fmt.Errorf("prepare the start gate: %w", err)
	}
	img, err := g.Images.ImageConfig(ctx, j.spec.Image)
	if err == nil {
		err = gt.Wrap(&j.spec, img)
	}
	if err != nil {
		_ = gt.Cleanup()
		return nil, fmt.Errorf("start gate for image %s: %w", j.spec.Image, err)
	}
	return gt, nil
}

// openGate runs CNI ADD and the prestart hooks for a started, gated
// container, then releases its command. ctx ends with a KILL.
func (m *Manager) openGate(ctx context.Context, j launchJob, gt *gate.Gate, cid string, info containerd.Info, files *sandbox.TaskFiles) (*gated, error) {
	pt := prestart.Task{
		TaskID: j.id, ContainerID: cid, Pid: info.Pid, Image: j.spec.Image, Labels: j.labels,
		DockerNetwork: j.spec.Network, Networks: j.networks, CNIArgs: j.cniArgs, Ports: j.cniPorts,
		HookOutput: files.Stderr,
		OnStep:     func(step string) { m.post(stepMsg{taskID: j.id, gen: j.gen, step: step}) },
	}
	res, err := m.cfg.Gating.Launcher.Start(ctx, gt, pt)
	if err != nil {
		return nil, err
	}
	return &gated{gate: gt, task: pt, results: res}, nil
}

// closeGate runs CNI DEL, the poststop hooks and the gate's cleanup after a
// gated task's end, off the loop.
func (m *Manager) closeGate(t *task) {
	gd := t.gated
	t.gated = nil
	if gd == nil || m.cfg.Gating == nil {
		return
	}
	log := t.log
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), gateStopTimeout)
		defer cancel()
		if err := m.cfg.Gating.Launcher.Stop(ctx, gd.gate, gd.task, gd.results); err != nil {
			log.WithError(err).Warn("after the task's end: CNI DEL, poststop hooks or the gate's cleanup failed")
		}
	}()
}

// networkInfos is TaskStatus.container_status.network_infos: the Docker
// network's address, then one entry per CNI attachment with its name.
func (t *task) networkInfos() []mesos.NetworkInfo {
	var out []mesos.NetworkInfo
	if t.dockerIP != "" {
		ip := t.dockerIP
		out = append(out, mesos.NetworkInfo{IPAddresses: []mesos.NetworkInfo_IPAddress{{IPAddress: &ip}}})
	}
	if t.gated != nil {
		for _, r := range t.gated.results {
			name := r.Network
			ni := mesos.NetworkInfo{Name: &name}
			for _, a := range r.Addrs() {
				a := a
				ni.IPAddresses = append(ni.IPAddresses, mesos.NetworkInfo_IPAddress{IPAddress: &a})
			}
			out = append(out, ni)
		}
	}
	return out
}

// NetworkView is one CNI attachment of a task, for /state.
type NetworkView struct {
	Name   string
	IfName string
	IPs    []string
}
