package task

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/cni"
	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/health"
	"github.com/mdx-executor/mdx/policy"
)

// ErrInvalidTask marks a TaskInfo the executor refuses before creating any
// container; it becomes TASK_FAILED with REASON_TASK_INVALID.
var ErrInvalidTask = errors.New("invalid task")

// Task label keys (see the README's label reference). Keys under these
// prefixes that the executor does not know fail the task, so that a typo
// is not silently ignored.
const (
	labelImage      = "docker.image"
	labelArgs       = "docker.args"
	labelEntrypoint = "docker.entrypoint"
	labelEnvPrefix  = "docker.env."
	labelNetwork    = "docker.network"
	labelInit       = "docker.init"
	labelForcePull  = "docker.force_pull"
	labelKillGrace  = "kill.grace"
)

// Policy is what the executor allows and adds to every task.
type Policy struct {
	// Operator is the host operator's policy: what a task may ask for
	// beyond its own container. Every spec passes its Check.
	Operator         policy.Policy
	DefaultKillGrace time.Duration
	FrameworkID      string
	ExecutorID       string
	AgentID          string
	CgroupParent     string
	// CPUQuota sets a CFS quota of cpus × 100 ms per 100 ms on every task
	// (--cpu-quota; off by default, as the agent's --cgroups_enable_cfs).
	// TaskInfo.limits.cpus sets one regardless.
	CPUQuota bool
	// PidsLimit is every container's pids limit (--pids-limit); 0 = none.
	PidsLimit int64
}

// launchConfig is a validated task: everything needed to run it.
type launchConfig struct {
	spec          containerd.Spec
	killGrace     time.Duration
	maxCompletion time.Duration
	health        *health.Spec
	check         *health.CheckSpec
	memLimit      int64
	networks      []string          // network.cni, in order
	cniArgs       map[string]string // network.cni.args.*
	cniPorts      []cni.PortMapping // port mappings of a CNI-only task
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidTask, fmt.Sprintf(format, args...))
}

// taskLabels flattens TaskInfo.labels; a repeated key keeps its last value.
func taskLabels(info *mesos.TaskInfo) map[string]string {
	m := map[string]string{}
	for _, l := range info.GetLabels().GetLabels() {
		m[l.Key] = l.GetValue()
	}
	return m
}

// parseTask validates a TaskInfo and turns its native fields and labels
// (labels win) into a container spec. hostSandbox is the task's sandbox
// directory on the host, mounted at /mnt/mesos/sandbox.
func parseTask(info *mesos.TaskInfo, p Policy, hostSandbox string) (launchConfig, error) {
	var lc launchConfig
	s := &lc.spec
	labels := taskLabels(info)
	if err := checkLabelKeys(labels); err != nil {
		return lc, err
	}

	// Native container fields first.
	var ports []mesos.ContainerInfo_DockerInfo_PortMapping
	network := "bridge"
	if c := info.GetContainer(); c != nil {
		if c.GetType() != mesos.ContainerInfo_DOCKER {
			return lc, invalid("container.type %s is not supported: this executor runs DOCKER containers", c.GetType())
		}
		s.Hostname = c.GetHostname()
		if d := c.GetDocker(); d != nil {
			s.Image = d.Image
			s.ForcePull = d.GetForcePullImage()
			s.Privileged = d.GetPrivileged()
			ports = d.PortMappings
			if d.Network != nil {
				switch d.GetNetwork() {
				case mesos.ContainerInfo_DockerInfo_HOST:
					network = "host"
				case mesos.ContainerInfo_DockerInfo_BRIDGE:
					network = "bridge"
				case mesos.ContainerInfo_DockerInfo_NONE:
					network = "none"
				case mesos.ContainerInfo_DockerInfo_USER:
					if len(c.NetworkInfos) != 1 || c.NetworkInfos[0].GetName() == "" {
						return lc, invalid("container.docker.network USER needs exactly one container.network_infos entry with a name")
					}
					network = c.NetworkInfos[0].GetName()
				}
			}
			for _, prm := range d.Parameters {
				if err := applyParameter(s, &network, prm.Key, prm.Value); err != nil {
					return lc, err
				}
			}
		}
		for _, v := range c.Volumes {
			m, err := volumeMount(v, hostSandbox)
			if err != nil {
				return lc, err
			}
			s.Mounts = append(s.Mounts, m)
		}
	}
	if cmd := info.GetCommand(); cmd != nil {
		if cmd.GetShell() {
			if cmd.GetValue() == "" {
				return lc, invalid("command.shell is true but command.value is empty")
			}
			s.Entrypoint = []string{"/bin/sh"}
			s.Cmd = []string{"-c", cmd.GetValue()}
		} else {
			if cmd.Value != nil && cmd.GetValue() != "" {
				s.Cmd = append(s.Cmd, cmd.GetValue())
			}
			s.Cmd = append(s.Cmd, cmd.Arguments...)
		}
		if cmd.User != nil {
			s.User = cmd.GetUser()
		}
		for _, v := range cmd.GetEnvironment().GetVariables() {
			if v.GetType() != mesos.Environment_Variable_VALUE {
				return lc, invalid("command.environment variable %s: only VALUE variables are supported", v.Name)
			}
			if v.Name == "" || strings.ContainsAny(v.Name, "=\x00") || strings.ContainsRune(v.GetValue(), 0) {
				return lc, invalid("command.environment variable %q: bad name or a NUL byte in its value", v.Name)
			}
			s.Env = append(s.Env, v.Name+"="+v.GetValue())
		}
	}

	// Labels override.
	if v, ok := labels[labelImage]; ok {
		s.Image = v
	}
	if v, ok := labels[labelArgs]; ok {
		args, err := stringArray(labelArgs, v)
		if err != nil {
			return lc, err
		}
		s.Cmd = args
		if _, ok := labels[labelEntrypoint]; !ok && info.GetCommand().GetShell() {
			// docker.args replaces the whole command; a shell
			// entrypoint from a native command would wrap it.
			s.Entrypoint = nil
		}
	}
	if v, ok := labels[labelEntrypoint]; ok {
		ep, err := stringArray(labelEntrypoint, v)
		if err != nil {
			return lc, err
		}
		s.Entrypoint = ep
	}
	if v, ok := labels[labelNetwork]; ok {
		if v == "" {
			return lc, invalid("label %s is empty: want bridge, host, none or a network name", labelNetwork)
		}
		network = v
	}
	s.Init = true
	if v, ok := labels[labelForcePull]; ok {
		// Mesos's force_pull_image as a label: pull even when present.
		b, err := strconv.ParseBool(v)
		if err != nil {
			return lc, invalid("label %s=%q: want true or false", labelForcePull, v)
		}
		s.ForcePull = b
	}
	if v, ok := labels[labelInit]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return lc, invalid("label %s=%q: want true or false", labelInit, v)
		}
		s.Init = b
	}
	envKeys := make([]string, 0)
	for k := range labels {
		if strings.HasPrefix(k, labelEnvPrefix) {
			envKeys = append(envKeys, k)
		}
	}
	sort.Strings(envKeys)
	for _, k := range envKeys {
		name := strings.TrimPrefix(k, labelEnvPrefix)
		if name == "" || strings.ContainsAny(name, "=\x00") {
			return lc, invalid("label %s: bad environment variable name", k)
		}
		if strings.ContainsRune(labels[k], 0) {
			return lc, invalid("label %s: NUL byte in the value", k)
		}
		s.Env = append(s.Env, name+"="+labels[k])
	}
	nets, cniArgs, err := parseCNI(info, p)
	if err != nil {
		return lc, err
	}
	lc.networks, lc.cniArgs = nets, cniArgs
	if _, set := labels[labelNetwork]; len(lc.networks) > 0 && !set {
		// A CNI task has only CNI's interfaces unless docker.network
		// asks for a Docker network as well.
		network = "none"
	}
	s.Network = network

	if s.Image == "" {
		return lc, invalid("no image: set the %s label or container.docker.image", labelImage)
	}

	// Resources.
	portRanges, err := applyResources(&lc, info, p)
	if err != nil {
		return lc, err
	}
	if len(ports) > 0 && network != "bridge" && isBuiltinNetwork(network) && len(lc.networks) == 0 {
		return lc, invalid("port_mappings need a bridge or user-defined network, not %s", network)
	}
	for _, pm := range ports {
		if !inRanges(uint64(pm.HostPort), portRanges) {
			return lc, invalid("port mapping host_port %d is not in the task's ports resource", pm.HostPort)
		}
		proto := strings.ToLower(pm.GetProtocol())
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" {
			return lc, invalid("port mapping protocol %q: want tcp or udp", pm.GetProtocol())
		}
		if len(lc.networks) > 0 && network == "none" {
			// CNI's portMappings capability maps them.
			lc.cniPorts = append(lc.cniPorts, cni.PortMapping{HostPort: int(pm.HostPort), ContainerPort: int(pm.ContainerPort), Protocol: proto})
			continue
		}
		s.Ports = append(s.Ports, containerd.PortBinding{ContainerPort: pm.ContainerPort, HostPort: pm.HostPort, Protocol: proto})
	}

	// Kill grace: kill_policy, then the kill.grace label.
	lc.killGrace = p.DefaultKillGrace
	if kp := info.GetKillPolicy(); kp != nil && kp.GracePeriod != nil {
		if kp.GracePeriod.Nanoseconds < 0 {
			return lc, invalid("kill_policy.grace_period is negative")
		}
		lc.killGrace = time.Duration(kp.GracePeriod.Nanoseconds)
	}
	if v, ok := labels[labelKillGrace]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return lc, invalid("label %s=%q: want a Go duration such as 10s", labelKillGrace, v)
		}
		lc.killGrace = d
	}
	if mc := info.GetMaxCompletionTime(); mc != nil {
		if mc.Nanoseconds <= 0 {
			return lc, invalid("max_completion_time must be positive")
		}
		lc.maxCompletion = time.Duration(mc.Nanoseconds)
	}

	hs, err := health.Parse(info.GetHealthCheck(), labels)
	if err != nil {
		return lc, fmt.Errorf("%w: %w", ErrInvalidTask, err)
	}
	lc.health = hs
	cs, err := health.ParseCheck(info.GetCheck())
	if err != nil {
		return lc, fmt.Errorf("%w: %w", ErrInvalidTask, err)
	}
	lc.check = cs

	s.CgroupParent = p.CgroupParent
	// The one gate before Docker: whatever the labels, parameters and
	// native fields asked for, the operator's policy decides.
	if err := p.Operator.Check(*s, hostSandbox); err != nil {
		return lc, fmt.Errorf("%w: %w", ErrInvalidTask, err)
	}
	return lc, nil
}

// checkLabelKeys refuses keys under the executor's prefixes that it does
// not know. Other labels (a framework's own) are left alone.
func checkLabelKeys(labels map[string]string) error {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case k == labelImage, k == labelArgs, k == labelEntrypoint, k == labelNetwork, k == labelInit, k == labelKillGrace, k == labelForcePull:
		case strings.HasPrefix(k, labelEnvPrefix):
		case strings.HasPrefix(k, health.LabelPrefix):
			// health.Parse names unknown health keys.
		case k == labelCNI, strings.HasPrefix(k, labelCNIArgs):
		case strings.HasPrefix(k, "docker."), strings.HasPrefix(k, "kill."), strings.HasPrefix(k, "network."):
			return invalid("unknown label %s", k)
		}
	}
	return nil
}

func stringArray(key, v string) ([]string, error) {
	var out []string
	if err := json.Unmarshal([]byte(v), &out); err != nil {
		return nil, invalid("label %s=%q: want a JSON array of strings: %v", key, v, err)
	}
	return out, nil
}

// applyParameter takes the Docker parameters the executor supports (an
// allow-list); anything else fails the task. Whether a namespace mode is
// allowed is the operator policy's decision (policy.Check), not the parser's.
func applyParameter(s *containerd.Spec, network *string, key, value string) error {
	if strings.ContainsRune(value, 0) {
		return invalid("docker parameter %s: NUL byte in the value", key)
	}
	switch key {
	case "pid":
		s.PidMode = value
	case "ipc":
		s.IpcMode = value
	case "uts":
		s.UTSMode = value
	case "userns":
		s.UsernsMode = value
	case "cgroupns":
		s.CgroupnsMode = value
	case "user":
		s.User = value
	case "workdir":
		s.WorkingDir = value
	case "hostname":
		s.Hostname = value
	case "net", "network":
		*network = value
	case "env", "e":
		if i := strings.IndexByte(value, '='); i <= 0 {
			return invalid("docker parameter %s=%q: want NAME=value", key, value)
		}
		s.Env = append(s.Env, value)
	default:
		return invalid("docker parameter %q is not supported", key)
	}
	return nil
}

// volumeMount turns a host_path volume into a bind mount. A relative
// host_path lives in the task's sandbox, as with Mesos; whether an absolute one
// may be mounted is the operator policy's decision (policy.Check).
func volumeMount(v mesos.Volume, hostSandbox string) (containerd.Mount, error) {
	if v.HostPath == nil || v.GetHostPath() == "" {
		return containerd.Mount{}, invalid("volume %s: only host_path volumes are supported", v.ContainerPath)
	}
	cp := v.ContainerPath
	if !filepath.IsAbs(cp) || strings.ContainsRune(cp, 0) {
		return containerd.Mount{}, invalid("volume container_path %q must be absolute", cp)
	}
	if c := filepath.Clean(cp); c == "/" || policy.Inside(c, containerd.SandboxMountPoint) {
		return containerd.Mount{}, invalid("volume container_path %q would hide the root filesystem or the sandbox", cp)
	}
	hp := v.GetHostPath()
	if strings.ContainsRune(hp, 0) {
		return containerd.Mount{}, invalid("volume host_path: NUL byte")
	}
	if !filepath.IsAbs(hp) {
		hp = filepath.Join(hostSandbox, hp)
		if !policy.Inside(hp, hostSandbox) {
			return containerd.Mount{}, invalid("volume host_path %q leaves the task sandbox", v.GetHostPath())
		}
	}
	return containerd.Mount{HostPath: filepath.Clean(hp), ContainerPath: cp, ReadOnly: v.GetMode() == mesos.RO}, nil
}

func isBuiltinNetwork(n string) bool { return n == "bridge" || n == "host" || n == "none" }

func inRanges(p uint64, rs []mesos.Value_Range) bool {
	for _, r := range rs {
		if p >= r.Begin && p <= r.End {
			return true
		}
	}
	return false
}
