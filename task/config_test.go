package task

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/health"
)

// testHostSandbox is the task's sandbox as the Docker daemon sees it, the
// third argument of parseTask.
const testHostSandbox = "/var/lib/mesos/slaves/S0/frameworks/F0/executors/E0/runs/R0/tasks/t1"

// testTask returns the smallest valid task: a DOCKER container with an image
// and nothing else. Each case edits a fresh copy.
func testTask() *mesos.TaskInfo {
	return &mesos.TaskInfo{
		Name:   "t1",
		TaskID: mesos.TaskID{Value: "t1"},
		Container: &mesos.ContainerInfo{
			Type:   mesos.ContainerInfo_DOCKER.Enum(),
			Docker: &mesos.ContainerInfo_DockerInfo{Image: "busybox:1.36"},
		},
	}
}

// testPolicy is the policy every case starts from: nothing allowed.
func testPolicy() Policy {
	return Policy{DefaultKillGrace: 3 * time.Second, CgroupParent: "/mdx.slice"}
}

// wantFor is what parseTask returns for testTask under testPolicy.
func wantFor() launchConfig {
	return launchConfig{
		spec: containerd.Spec{
			Image:        "busybox:1.36",
			Network:      "bridge",
			Init:         true,
			CgroupParent: "/mdx.slice",
		},
		killGrace: 3 * time.Second,
	}
}

// labels builds TaskInfo.labels from key, value pairs.
func labels(kv ...string) *mesos.Labels {
	ls := &mesos.Labels{}
	for i := 0; i+1 < len(kv); i += 2 {
		v := kv[i+1]
		ls.Labels = append(ls.Labels, mesos.Label{Key: kv[i], Value: &v})
	}
	return ls
}

func withLabels(kv ...string) func(*mesos.TaskInfo) {
	return func(ti *mesos.TaskInfo) { ti.Labels = labels(kv...) }
}

func scalar(name string, v float64) mesos.Resource {
	return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
}

func portsResource(ranges ...mesos.Value_Range) mesos.Resource {
	return mesos.Resource{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: ranges}}
}

func shellCommand(v string) *mesos.CommandInfo {
	return &mesos.CommandInfo{Shell: ptr(true), Value: ptr(v)}
}

func argvCommand(v string, args ...string) *mesos.CommandInfo {
	c := &mesos.CommandInfo{Shell: ptr(false), Arguments: args}
	if v != "" {
		c.Value = ptr(v)
	}
	return c
}

func portMapping(host, container uint32, proto string) mesos.ContainerInfo_DockerInfo_PortMapping {
	pm := mesos.ContainerInfo_DockerInfo_PortMapping{HostPort: host, ContainerPort: container}
	if proto != "" {
		pm.Protocol = ptr(proto)
	}
	return pm
}

func hostVolume(hostPath, containerPath string, mode mesos.Volume_Mode) mesos.Volume {
	return mesos.Volume{HostPath: ptr(hostPath), ContainerPath: containerPath, Mode: mode.Enum()}
}

func parameters(kv ...string) func(*mesos.TaskInfo) {
	return func(ti *mesos.TaskInfo) {
		for i := 0; i+1 < len(kv); i += 2 {
			ti.Container.Docker.Parameters = append(ti.Container.Docker.Parameters, mesos.Parameter{Key: kv[i], Value: kv[i+1]})
		}
	}
}

func TestParseTask(t *testing.T) {
	tests := []struct {
		name   string
		task   func(*mesos.TaskInfo) // edits testTask()
		policy func(*Policy)         // edits testPolicy()
		want   func(*launchConfig)   // edits wantFor()
	}{
		{
			name: "minimal docker task",
		},
		{
			name: "docker.image label overrides container.docker.image",
			task: withLabels("docker.image", "nginx:1.27"),
			want: func(lc *launchConfig) { lc.spec.Image = "nginx:1.27" },
		},
		{
			name: "docker.image label alone is enough",
			task: func(ti *mesos.TaskInfo) {
				ti.Container = nil
				ti.Labels = labels("docker.image", "nginx:1.27")
			},
			want: func(lc *launchConfig) { lc.spec.Image = "nginx:1.27" },
		},
		{
			name: "container.docker fields",
			task: func(ti *mesos.TaskInfo) {
				ti.Container.Hostname = ptr("web-1")
				ti.Container.Docker.ForcePullImage = ptr(true)
			},
			want: func(lc *launchConfig) {
				lc.spec.Hostname = "web-1"
				lc.spec.ForcePull = true
			},
		},
		{
			name: "docker.force_pull label",
			task: withLabels("docker.force_pull", "true"),
			want: func(lc *launchConfig) { lc.spec.ForcePull = true },
		},
		{
			name: "docker.force_pull=false overrides force_pull_image",
			task: func(ti *mesos.TaskInfo) {
				ti.Container.Docker.ForcePullImage = ptr(true)
				ti.Labels = labels("docker.force_pull", "false")
			},
			want: func(lc *launchConfig) {},
		},
		{
			name: "native shell command runs under /bin/sh -c",
			task: func(ti *mesos.TaskInfo) { ti.Command = shellCommand("echo hi && sleep 1") },
			want: func(lc *launchConfig) {
				lc.spec.Entrypoint = []string{"/bin/sh"}
				lc.spec.Cmd = []string{"-c", "echo hi && sleep 1"}
			},
		},
		{
			name: "native command shell defaults to true",
			task: func(ti *mesos.TaskInfo) { ti.Command = &mesos.CommandInfo{Value: ptr("env")} },
			want: func(lc *launchConfig) {
				lc.spec.Entrypoint = []string{"/bin/sh"}
				lc.spec.Cmd = []string{"-c", "env"}
			},
		},
		{
			name: "native argv command keeps the image entrypoint",
			task: func(ti *mesos.TaskInfo) { ti.Command = argvCommand("/bin/server", "--port", "8080") },
			want: func(lc *launchConfig) {
				lc.spec.Cmd = []string{"/bin/server", "--port", "8080"}
			},
		},
		{
			name: "native argv command without a value is just the arguments",
			task: func(ti *mesos.TaskInfo) { ti.Command = argvCommand("", "--port", "8080") },
			want: func(lc *launchConfig) {
				lc.spec.Cmd = []string{"--port", "8080"}
			},
		},
		{
			name: "native command user and VALUE environment",
			task: func(ti *mesos.TaskInfo) {
				ti.Command = argvCommand("", "run")
				ti.Command.User = ptr("nobody")
				ti.Command.Environment = &mesos.Environment{Variables: []mesos.Environment_Variable{
					{Name: "A", Value: ptr("1")},
					{Name: "B", Type: mesos.Environment_Variable_VALUE.Enum(), Value: ptr("two words")},
				}}
			},
			want: func(lc *launchConfig) {
				lc.spec.Cmd = []string{"run"}
				lc.spec.User = "nobody"
				lc.spec.Env = []string{"A=1", "B=two words"}
			},
		},
		{
			name: "docker.args replaces a native shell command and its /bin/sh",
			task: func(ti *mesos.TaskInfo) {
				ti.Command = shellCommand("echo native")
				ti.Labels = labels("docker.args", `["--verbose","serve"]`)
			},
			want: func(lc *launchConfig) {
				lc.spec.Cmd = []string{"--verbose", "serve"}
			},
		},
		{
			name: "docker.args replaces a native argv command",
			task: func(ti *mesos.TaskInfo) {
				ti.Command = argvCommand("/bin/native", "x")
				ti.Labels = labels("docker.args", `["serve"]`)
			},
			want: func(lc *launchConfig) { lc.spec.Cmd = []string{"serve"} },
		},
		{
			name: "docker.entrypoint overrides the native shell entrypoint",
			task: func(ti *mesos.TaskInfo) {
				ti.Command = shellCommand("echo hi")
				ti.Labels = labels("docker.entrypoint", `["/sbin/tini","--"]`)
			},
			want: func(lc *launchConfig) {
				lc.spec.Entrypoint = []string{"/sbin/tini", "--"}
				lc.spec.Cmd = []string{"-c", "echo hi"}
			},
		},
		{
			name: "docker.entrypoint and docker.args together",
			task: withLabels("docker.entrypoint", `["/app"]`, "docker.args", `["a","b c"]`),
			want: func(lc *launchConfig) {
				lc.spec.Entrypoint = []string{"/app"}
				lc.spec.Cmd = []string{"a", "b c"}
			},
		},
		{
			name: "docker.env labels come after the native environment, sorted",
			task: func(ti *mesos.TaskInfo) {
				ti.Command = argvCommand("", "run")
				ti.Command.Environment = &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "A", Value: ptr("native")}}}
				ti.Labels = labels("docker.env.B", "2", "docker.env.A", "label", "docker.env.EMPTY", "")
			},
			want: func(lc *launchConfig) {
				lc.spec.Cmd = []string{"run"}
				lc.spec.Env = []string{"A=native", "A=label", "B=2", "EMPTY="}
			},
		},
		{
			name:   "docker.network label overrides the native network",
			policy: func(p *Policy) { p.Operator.AllowHostNamespaces = true; p.Operator.AllowedNetworks = []string{"*"} },
			task: func(ti *mesos.TaskInfo) {
				ti.Container.Docker.Network = mesos.ContainerInfo_DockerInfo_BRIDGE.Enum()
				ti.Labels = labels("docker.network", "host")
			},
			want: func(lc *launchConfig) { lc.spec.Network = "host" },
		},
		{
			name:   "docker.network label names a user-defined network",
			policy: func(p *Policy) { p.Operator.AllowHostNamespaces = true; p.Operator.AllowedNetworks = []string{"*"} },
			task:   withLabels("docker.network", "backend"),
			want:   func(lc *launchConfig) { lc.spec.Network = "backend" },
		},
		{
			name:   "native network HOST",
			policy: func(p *Policy) { p.Operator.AllowHostNamespaces = true; p.Operator.AllowedNetworks = []string{"*"} },
			task:   func(ti *mesos.TaskInfo) { ti.Container.Docker.Network = mesos.ContainerInfo_DockerInfo_HOST.Enum() },
			want:   func(lc *launchConfig) { lc.spec.Network = "host" },
		},
		{
			name: "native network NONE",
			task: func(ti *mesos.TaskInfo) { ti.Container.Docker.Network = mesos.ContainerInfo_DockerInfo_NONE.Enum() },
			want: func(lc *launchConfig) { lc.spec.Network = "none" },
		},
		{
			name:   "native network USER takes the network_infos name",
			policy: func(p *Policy) { p.Operator.AllowHostNamespaces = true; p.Operator.AllowedNetworks = []string{"*"} },
			task: func(ti *mesos.TaskInfo) {
				ti.Container.Docker.Network = mesos.ContainerInfo_DockerInfo_USER.Enum()
				ti.Container.NetworkInfos = []mesos.NetworkInfo{{Name: ptr("overlay-1")}}
			},
			want: func(lc *launchConfig) { lc.spec.Network = "overlay-1" },
		},
		{
			name: "docker.init false",
			task: withLabels("docker.init", "false"),
			want: func(lc *launchConfig) { lc.spec.Init = false },
		},
		{
			name: "docker.init true",
			task: withLabels("docker.init", "true"),
		},
		{
			name: "kill_policy sets the kill grace",
			task: func(ti *mesos.TaskInfo) {
				ti.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(5 * time.Second)}}
			},
			want: func(lc *launchConfig) { lc.killGrace = 5 * time.Second },
		},
		{
			name: "kill.grace label overrides kill_policy",
			task: func(ti *mesos.TaskInfo) {
				ti.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(5 * time.Second)}}
				ti.Labels = labels("kill.grace", "250ms")
			},
			want: func(lc *launchConfig) { lc.killGrace = 250 * time.Millisecond },
		},
		{
			name: "kill.grace of zero",
			task: withLabels("kill.grace", "0s"),
			want: func(lc *launchConfig) { lc.killGrace = 0 },
		},
		{
			name: "other frameworks' labels are ignored",
			task: withLabels("marathon.foo", "bar", "dockerish", "x", "HAPROXY_0_VHOST", "a.example", "killer", "y"),
		},
		{
			name: "cpus 0.5: shares only, no CFS quota by default (as Mesos without --cgroups_enable_cfs)",
			task: func(ti *mesos.TaskInfo) { ti.Resources = []mesos.Resource{scalar("cpus", 0.5)} },
			want: func(lc *launchConfig) { lc.spec.CPUShares = 512 },
		},
		{
			name:   "cpus 0.5 with --cpu-quota",
			task:   func(ti *mesos.TaskInfo) { ti.Resources = []mesos.Resource{scalar("cpus", 0.5)} },
			policy: func(p *Policy) { p.CPUQuota = true },
			want: func(lc *launchConfig) {
				lc.spec.CPUShares = 512
				lc.spec.CPUQuota = 50000
				lc.spec.CPUPeriod = 100000
			},
		},
		{
			name:   "cpus summed over resources",
			task:   func(ti *mesos.TaskInfo) { ti.Resources = []mesos.Resource{scalar("cpus", 1), scalar("cpus", 1)} },
			policy: func(p *Policy) { p.CPUQuota = true },
			want: func(lc *launchConfig) {
				lc.spec.CPUShares = 2048
				lc.spec.CPUQuota = 200000
				lc.spec.CPUPeriod = 100000
			},
		},
		{
			name:   "tiny cpus keep the kernel minimums",
			task:   func(ti *mesos.TaskInfo) { ti.Resources = []mesos.Resource{scalar("cpus", 0.0001)} },
			policy: func(p *Policy) { p.CPUQuota = true },
			want: func(lc *launchConfig) {
				lc.spec.CPUShares = 2
				lc.spec.CPUQuota = 1000
				lc.spec.CPUPeriod = 100000
			},
		},
		{
			name: "huge cpus: shares capped at the kernel maximum",
			task: func(ti *mesos.TaskInfo) { ti.Resources = []mesos.Resource{scalar("cpus", 1000)} },
			want: func(lc *launchConfig) { lc.spec.CPUShares = 262144 },
		},
		{
			name: "limits.cpus sets a quota without --cpu-quota",
			task: func(ti *mesos.TaskInfo) {
				ti.Resources = []mesos.Resource{scalar("cpus", 0.5)}
				ti.Limits = map[string]mesos.Value_Scalar{"cpus": {Value: 2}}
			},
			want: func(lc *launchConfig) {
				lc.spec.CPUShares = 512
				lc.spec.CPUQuota = 200000
				lc.spec.CPUPeriod = 100000
			},
		},
		{
			name: "limits.cpus infinite: no quota even with --cpu-quota",
			task: func(ti *mesos.TaskInfo) {
				ti.Resources = []mesos.Resource{scalar("cpus", 0.5)}
				ti.Limits = map[string]mesos.Value_Scalar{"cpus": {Value: math.Inf(1)}}
			},
			policy: func(p *Policy) { p.CPUQuota = true },
			want:   func(lc *launchConfig) { lc.spec.CPUShares = 512 },
		},
		{
			name: "mem below the 32 MiB floor",
			task: func(ti *mesos.TaskInfo) { ti.Resources = []mesos.Resource{scalar("mem", 10)} },
			want: func(lc *launchConfig) {
				lc.spec.MemoryBytes = 32 << 20
				lc.spec.MemoryReservation = 32 << 20
				lc.memLimit = 32 << 20
			},
		},
		{
			name: "mem 256: reservation and hard limit",
			task: func(ti *mesos.TaskInfo) { ti.Resources = []mesos.Resource{scalar("mem", 256)} },
			want: func(lc *launchConfig) {
				lc.spec.MemoryBytes = 256 << 20
				lc.spec.MemoryReservation = 256 << 20
				lc.memLimit = 256 << 20
			},
		},
		{
			name: "limits.mem above mem: reservation mem, hard limit limits.mem",
			task: func(ti *mesos.TaskInfo) {
				ti.Resources = []mesos.Resource{scalar("mem", 64)}
				ti.Limits = map[string]mesos.Value_Scalar{"mem": {Value: 256}}
			},
			want: func(lc *launchConfig) {
				lc.spec.MemoryBytes = 256 << 20
				lc.spec.MemoryReservation = 64 << 20
				lc.memLimit = 256 << 20
			},
		},
		{
			name: "limits.mem infinite: no hard limit",
			task: func(ti *mesos.TaskInfo) {
				ti.Resources = []mesos.Resource{scalar("mem", 64)}
				ti.Limits = map[string]mesos.Value_Scalar{"mem": {Value: math.Inf(1)}}
			},
			want: func(lc *launchConfig) { lc.spec.MemoryReservation = 64 << 20 },
		},
		{
			name:   "pids limit from the policy",
			policy: func(p *Policy) { p.PidsLimit = 4096 },
			want:   func(lc *launchConfig) { lc.spec.PidsLimit = 4096 },
		},
		{
			name: "unknown limits are ignored",
			task: func(ti *mesos.TaskInfo) { ti.Limits = map[string]mesos.Value_Scalar{"gpus": {Value: math.NaN()}} },
		},
		{
			name: "port mappings inside the ports resource",
			task: func(ti *mesos.TaskInfo) {
				ti.Resources = []mesos.Resource{portsResource(mesos.Value_Range{Begin: 31000, End: 31009}, mesos.Value_Range{Begin: 31100, End: 31100})}
				ti.Container.Docker.PortMappings = []mesos.ContainerInfo_DockerInfo_PortMapping{
					portMapping(31000, 80, ""),
					portMapping(31009, 53, "UDP"),
					portMapping(31100, 443, "tcp"),
				}
			},
			want: func(lc *launchConfig) {
				lc.spec.Ports = []containerd.PortBinding{
					{ContainerPort: 80, HostPort: 31000, Protocol: "tcp"},
					{ContainerPort: 53, HostPort: 31009, Protocol: "udp"},
					{ContainerPort: 443, HostPort: 31100, Protocol: "tcp"},
				}
			},
		},
		{
			name:   "port mappings on a user-defined network",
			policy: func(p *Policy) { p.Operator.AllowHostNamespaces = true; p.Operator.AllowedNetworks = []string{"*"} },
			task: func(ti *mesos.TaskInfo) {
				ti.Resources = []mesos.Resource{portsResource(mesos.Value_Range{Begin: 31000, End: 31000})}
				ti.Container.Docker.PortMappings = []mesos.ContainerInfo_DockerInfo_PortMapping{portMapping(31000, 80, "")}
				ti.Labels = labels("docker.network", "backend")
			},
			want: func(lc *launchConfig) {
				lc.spec.Network = "backend"
				lc.spec.Ports = []containerd.PortBinding{{ContainerPort: 80, HostPort: 31000, Protocol: "tcp"}}
			},
		},
		{
			name:   "privileged allowed by policy",
			task:   func(ti *mesos.TaskInfo) { ti.Container.Docker.Privileged = ptr(true) },
			policy: func(p *Policy) { p.Operator.AllowPrivileged = true },
			want:   func(lc *launchConfig) { lc.spec.Privileged = true },
		},
		{
			name:   "host namespaces allowed by policy",
			task:   parameters("pid", "host", "ipc", "host", "uts", "host"),
			policy: func(p *Policy) { p.Operator.AllowHostNamespaces = true },
			want: func(lc *launchConfig) {
				lc.spec.PidMode, lc.spec.IpcMode, lc.spec.UTSMode = "host", "host", "host"
			},
		},
		{
			name:   "supported docker parameters",
			policy: func(p *Policy) { p.Operator.AllowHostNamespaces = true; p.Operator.AllowedNetworks = []string{"*"} },
			task:   parameters("user", "1000:1000", "workdir", "/srv", "hostname", "h1", "env", "X=1", "e", "Y=2", "network", "backend"),
			want: func(lc *launchConfig) {
				lc.spec.User = "1000:1000"
				lc.spec.WorkingDir = "/srv"
				lc.spec.Hostname = "h1"
				lc.spec.Env = []string{"X=1", "Y=2"}
				lc.spec.Network = "backend"
			},
		},
		{
			name: "volumes inside the sandbox",
			task: func(ti *mesos.TaskInfo) {
				ti.Container.Volumes = []mesos.Volume{
					hostVolume("data", "/data", mesos.RW),
					hostVolume("conf/app", "/etc/app", mesos.RO),
					hostVolume(testHostSandbox+"/cache", "/cache", mesos.RW),
					hostVolume("a/../b", "/b", mesos.RW),
				}
			},
			want: func(lc *launchConfig) {
				lc.spec.Mounts = []containerd.Mount{
					{HostPath: testHostSandbox + "/data", ContainerPath: "/data"},
					{HostPath: testHostSandbox + "/conf/app", ContainerPath: "/etc/app", ReadOnly: true},
					{HostPath: testHostSandbox + "/cache", ContainerPath: "/cache"},
					{HostPath: testHostSandbox + "/b", ContainerPath: "/b"},
				}
			},
		},
		{
			name: "host volume allowed by policy",
			task: func(ti *mesos.TaskInfo) {
				ti.Container.Volumes = []mesos.Volume{hostVolume("/etc/ssl/certs", "/etc/ssl/certs", mesos.RO)}
			},
			policy: func(p *Policy) { p.Operator.AllowHostMounts = true },
			want: func(lc *launchConfig) {
				lc.spec.Mounts = []containerd.Mount{{HostPath: "/etc/ssl/certs", ContainerPath: "/etc/ssl/certs", ReadOnly: true}}
			},
		},
		{
			name: "max_completion_time",
			task: func(ti *mesos.TaskInfo) {
				ti.MaxCompletionTime = &mesos.DurationInfo{Nanoseconds: int64(90 * time.Second)}
			},
			want: func(lc *launchConfig) { lc.maxCompletion = 90 * time.Second },
		},
		{
			name: "health labels",
			task: withLabels("health.type", "http", "health.port", "8080", "health.path", "/healthz", "health.failures", "5"),
			want: func(lc *launchConfig) {
				lc.health = &health.Spec{
					Type: health.HTTP, Port: 8080, Path: "/healthz", Scheme: "http",
					Delay: health.DefaultDelay, Interval: health.DefaultInterval, Timeout: health.DefaultTimeout,
					Grace: health.DefaultGrace, Failures: 5,
				}
			},
		},
		{
			name: "native health check",
			task: func(ti *mesos.TaskInfo) {
				ti.HealthCheck = &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 6379}}
			},
			want: func(lc *launchConfig) {
				lc.health = &health.Spec{
					Type: health.TCP, Port: 6379, Path: "/", Scheme: "http",
					Delay: health.DefaultDelay, Interval: health.DefaultInterval, Timeout: health.DefaultTimeout,
					Grace: health.DefaultGrace, Failures: health.DefaultFailures,
				}
			},
		},
		{
			name: "native generic check",
			task: func(ti *mesos.TaskInfo) {
				ti.Check = &mesos.CheckInfo{Type: mesos.CheckInfo_TCP, TCP: &mesos.CheckInfo_Tcp{Port: 6379}}
			},
			want: func(lc *launchConfig) {
				lc.check = &health.CheckSpec{
					Type: health.TCP, Port: 6379,
					Delay: 15 * time.Second, Interval: 10 * time.Second, Timeout: 20 * time.Second,
				}
			},
		},
		{
			name: "cmd health check on network none",
			task: withLabels("docker.network", "none", "health.type", "cmd", "health.cmd", `["pg_isready"]`),
			want: func(lc *launchConfig) {
				lc.spec.Network = "none"
				lc.health = &health.Spec{
					Type: health.Command, Cmd: []string{"pg_isready"}, Path: "/", Scheme: "http",
					Delay: health.DefaultDelay, Interval: health.DefaultInterval, Timeout: health.DefaultTimeout,
					Grace: health.DefaultGrace, Failures: health.DefaultFailures,
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := testTask()
			if tt.task != nil {
				tt.task(info)
			}
			p := testPolicy()
			if tt.policy != nil {
				tt.policy(&p)
			}
			want := wantFor()
			if tt.want != nil {
				tt.want(&want)
			}
			got, err := parseTask(info, p, testHostSandbox)
			if err != nil {
				t.Fatalf("parseTask() error = %v; want nil", err)
			}
			if !reflect.DeepEqual(got.spec, want.spec) {
				t.Errorf("parseTask() spec =\n%+v\nwant\n%+v", got.spec, want.spec)
			}
			if got.killGrace != want.killGrace {
				t.Errorf("parseTask() killGrace = %v; want %v", got.killGrace, want.killGrace)
			}
			if got.maxCompletion != want.maxCompletion {
				t.Errorf("parseTask() maxCompletion = %v; want %v", got.maxCompletion, want.maxCompletion)
			}
			if got.memLimit != want.memLimit {
				t.Errorf("parseTask() memLimit = %d; want %d", got.memLimit, want.memLimit)
			}
			if !reflect.DeepEqual(got.health, want.health) {
				t.Errorf("parseTask() health = %+v; want %+v", got.health, want.health)
			}
			if !reflect.DeepEqual(got.check, want.check) {
				t.Errorf("parseTask() check = %+v; want %+v", got.check, want.check)
			}
		})
	}
}

func TestParseTaskInvalid(t *testing.T) {
	tests := []struct {
		name   string
		task   func(*mesos.TaskInfo)
		policy func(*Policy)
		want   []string // substrings the error message must contain
	}{
		{
			name: "no image",
			task: func(ti *mesos.TaskInfo) { ti.Container = nil },
			want: []string{"no image", "docker.image"},
		},
		{
			name: "empty docker.image label",
			task: withLabels("docker.image", ""),
			want: []string{"docker.image"},
		},
		{
			name: "docker.args not JSON",
			task: withLabels("docker.args", `[serve`),
			want: []string{"docker.args", "JSON array"},
		},
		{
			name: "docker.args not an array of strings",
			task: withLabels("docker.args", `["a", 1]`),
			want: []string{"docker.args"},
		},
		{
			name: "docker.entrypoint not JSON",
			task: withLabels("docker.entrypoint", `/bin/sh -c`),
			want: []string{"docker.entrypoint", "JSON array"},
		},
		{
			name: "docker.init garbage",
			task: withLabels("docker.init", "maybe"),
			want: []string{"docker.init", `"maybe"`},
		},
		{
			name: "empty docker.network",
			task: withLabels("docker.network", ""),
			want: []string{"docker.network"},
		},
		{
			name: "docker.env label without a name",
			task: withLabels("docker.env.", "x"),
			want: []string{"docker.env."},
		},
		{
			name: "docker.env label name with =",
			task: withLabels("docker.env.A=B", "x"),
			want: []string{"docker.env.A=B"},
		},
		{
			name: "kill.grace not a duration",
			task: withLabels("kill.grace", "10"),
			want: []string{"kill.grace", `"10"`},
		},
		{
			name: "docker.force_pull not a bool",
			task: withLabels("docker.force_pull", "yes please"),
			want: []string{"docker.force_pull", `"yes please"`},
		},
		{
			name: "negative kill.grace",
			task: withLabels("kill.grace", "-1s"),
			want: []string{"kill.grace"},
		},
		{
			name: "unknown docker label",
			task: withLabels("marathon.ok", "1", "docker.imagee", "busybox"),
			want: []string{"unknown label", "docker.imagee"},
		},
		{
			name: "unknown kill label",
			task: withLabels("kill.signal", "SIGINT"),
			want: []string{"unknown label", "kill.signal"},
		},
		{
			name: "unknown health label",
			task: withLabels("health.type", "tcp", "health.port", "80", "health.intervall", "5s"),
			want: []string{"health.intervall"},
		},
		{
			name: "docker.env without the trailing dot",
			task: withLabels("docker.env", "A=1"),
			want: []string{"unknown label", "docker.env"},
		},
		{
			name: "container type MESOS",
			task: func(ti *mesos.TaskInfo) {
				ti.Container.Type = mesos.ContainerInfo_MESOS.Enum()
				ti.Container.Docker = nil
				ti.Labels = labels("docker.image", "busybox")
			},
			want: []string{"container.type", "MESOS"},
		},
		{
			name: "native network USER without network_infos",
			task: func(ti *mesos.TaskInfo) { ti.Container.Docker.Network = mesos.ContainerInfo_DockerInfo_USER.Enum() },
			want: []string{"USER", "network_infos"},
		},
		{
			name: "shell command without a value",
			task: func(ti *mesos.TaskInfo) { ti.Command = &mesos.CommandInfo{Shell: ptr(true)} },
			want: []string{"command.value"},
		},
		{
			name: "secret environment variable",
			task: func(ti *mesos.TaskInfo) {
				ti.Command = argvCommand("", "run")
				ti.Command.Environment = &mesos.Environment{Variables: []mesos.Environment_Variable{
					{Name: "TOKEN", Type: mesos.Environment_Variable_SECRET.Enum(), Secret: &mesos.Secret{}},
				}}
			},
			want: []string{"command.environment", "TOKEN"},
		},
		{
			name: "port mapping outside the ports resource",
			task: func(ti *mesos.TaskInfo) {
				ti.Resources = []mesos.Resource{portsResource(mesos.Value_Range{Begin: 31000, End: 31009})}
				ti.Container.Docker.PortMappings = []mesos.ContainerInfo_DockerInfo_PortMapping{
					portMapping(31000, 80, ""),
					portMapping(31010, 81, ""),
				}
			},
			want: []string{"host_port 31010"},
		},
		{
			name: "port mapping without a ports resource",
			task: func(ti *mesos.TaskInfo) {
				ti.Container.Docker.PortMappings = []mesos.ContainerInfo_DockerInfo_PortMapping{portMapping(8080, 80, "")}
			},
			want: []string{"host_port 8080"},
		},
		{
			name: "port mapping protocol",
			task: func(ti *mesos.TaskInfo) {
				ti.Resources = []mesos.Resource{portsResource(mesos.Value_Range{Begin: 31000, End: 31009})}
				ti.Container.Docker.PortMappings = []mesos.ContainerInfo_DockerInfo_PortMapping{portMapping(31000, 80, "sctp")}
			},
			want: []string{"protocol", `"sctp"`},
		},
		{
			name: "port mappings on the native host network",
			task: func(ti *mesos.TaskInfo) {
				ti.Resources = []mesos.Resource{portsResource(mesos.Value_Range{Begin: 31000, End: 31009})}
				ti.Container.Docker.Network = mesos.ContainerInfo_DockerInfo_HOST.Enum()
				ti.Container.Docker.PortMappings = []mesos.ContainerInfo_DockerInfo_PortMapping{portMapping(31000, 80, "")}
			},
			want: []string{"port_mappings", "host"},
		},
		{
			name: "port mappings on the host network by label",
			task: func(ti *mesos.TaskInfo) {
				ti.Resources = []mesos.Resource{portsResource(mesos.Value_Range{Begin: 31000, End: 31009})}
				ti.Container.Docker.PortMappings = []mesos.ContainerInfo_DockerInfo_PortMapping{portMapping(31000, 80, "")}
				ti.Labels = labels("docker.network", "host")
			},
			want: []string{"port_mappings", "host"},
		},
		{
			name: "port mappings on network none",
			task: func(ti *mesos.TaskInfo) {
				ti.Resources = []mesos.Resource{portsResource(mesos.Value_Range{Begin: 31000, End: 31009})}
				ti.Container.Docker.Network = mesos.ContainerInfo_DockerInfo_NONE.Enum()
				ti.Container.Docker.PortMappings = []mesos.ContainerInfo_DockerInfo_PortMapping{portMapping(31000, 80, "")}
			},
			want: []string{"port_mappings", "none"},
		},
		{
			name: "privileged refused",
			task: func(ti *mesos.TaskInfo) { ti.Container.Docker.Privileged = ptr(true) },
			want: []string{"privileged", "allow-privileged in the policy file"},
		},
		{
			name: "pid=host refused",
			task: parameters("pid", "host"),
			want: []string{"pid=host", "allow-host-namespaces in the policy file"},
		},
		{
			name: "ipc=host refused",
			task: parameters("ipc", "host"),
			want: []string{"ipc=host"},
		},
		{
			name: "uts=host refused",
			task: parameters("uts", "host"),
			want: []string{"uts=host"},
		},
		{
			name:   "pid of another container",
			task:   parameters("pid", "container:abc"),
			policy: func(p *Policy) { p.Operator.AllowHostNamespaces = true },
			want:   []string{"pid=container:abc", "allow-container-namespaces"},
		},
		{
			name: "network of another container (label)",
			task: func(ti *mesos.TaskInfo) { ti.Labels = labels("docker.network", "container:victim") },
			want: []string{"network=container:victim", "allow-container-namespaces"},
		},
		{
			name: "network of another container (parameter)",
			task: parameters("net", "container:victim"),
			want: []string{"network=container:victim", "allow-container-namespaces"},
		},
		{
			name:   "user-defined network not in the allow-list",
			task:   func(ti *mesos.TaskInfo) { ti.Labels = labels("docker.network", "backend") },
			policy: func(p *Policy) { p.Operator.AllowedNetworks = []string{"frontend"} },
			want:   []string{"network backend", "allowed-networks"},
		},
		{
			name: "host network",
			task: func(ti *mesos.TaskInfo) { ti.Labels = labels("docker.network", "host") },
			want: []string{"network=host", "allow-host-namespaces"},
		},
		{
			name: "userns=host",
			task: parameters("userns", "host"),
			want: []string{"userns=host"},
		},
		{
			name: "environment variable with an empty name",
			task: func(ti *mesos.TaskInfo) {
				ti.Command = &mesos.CommandInfo{Shell: ptr(false), Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "", Value: ptr("x")}}}}
			},
			want: []string{"command.environment", "bad name"},
		},
		{
			name: "environment variable with a NUL",
			task: func(ti *mesos.TaskInfo) {
				ti.Command = &mesos.CommandInfo{Shell: ptr(false), Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "A", Value: ptr("x\x00y")}}}}
			},
			want: []string{"command.environment", "NUL"},
		},
		{
			name: "volume over the root",
			task: func(ti *mesos.TaskInfo) { ti.Container.Volumes = []mesos.Volume{hostVolume("data", "/", mesos.RW)} },
			want: []string{"container_path", `"/"`},
		},
		{
			name: "volume over the sandbox mount",
			task: func(ti *mesos.TaskInfo) {
				ti.Container.Volumes = []mesos.Volume{hostVolume("data", "/mnt/mesos/sandbox", mesos.RW)}
			},
			want: []string{"container_path", "sandbox"},
		},
		{
			name: "negative kill_policy grace",
			task: func(ti *mesos.TaskInfo) {
				ti.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: -1}}
			},
			want: []string{"kill_policy", "negative"},
		},
		{
			name: "unsupported docker parameter",
			task: parameters("user", "1000", "cap-add", "SYS_ADMIN"),
			want: []string{`"cap-add"`, "not supported"},
		},
		{
			name: "env docker parameter without =",
			task: parameters("env", "NOVALUE"),
			want: []string{"env", `"NOVALUE"`},
		},
		{
			name: "absolute volume outside the sandbox",
			task: func(ti *mesos.TaskInfo) {
				ti.Container.Volumes = []mesos.Volume{hostVolume("/etc", "/host-etc", mesos.RO)}
			},
			want: []string{"/etc", "outside the task sandbox", "allow-host-mounts in the policy file"},
		},
		{
			name: "relative volume escaping the sandbox",
			task: func(ti *mesos.TaskInfo) {
				ti.Container.Volumes = []mesos.Volume{hostVolume("../../../../../../etc", "/host-etc", mesos.RO)}
			},
			want: []string{`"../../../../../../etc"`, "leaves the task sandbox"},
		},
		{
			name: "relative volume into a sibling task's sandbox",
			task: func(ti *mesos.TaskInfo) {
				ti.Container.Volumes = []mesos.Volume{hostVolume("../t2", "/t2", mesos.RW)}
			},
			want: []string{`"../t2"`, "leaves the task sandbox"},
		},
		{
			name: "absolute volume sharing the sandbox's prefix",
			task: func(ti *mesos.TaskInfo) {
				ti.Container.Volumes = []mesos.Volume{hostVolume(testHostSandbox+"0/data", "/data", mesos.RW)}
			},
			want: []string{testHostSandbox + "0/data", "outside the task sandbox"},
		},
		{
			name: "volume without a host path",
			task: func(ti *mesos.TaskInfo) {
				ti.Container.Volumes = []mesos.Volume{{ContainerPath: "/data", Mode: mesos.RW.Enum()}}
			},
			want: []string{"/data", "host_path"},
		},
		{
			name: "volume with a relative container path",
			task: func(ti *mesos.TaskInfo) {
				ti.Container.Volumes = []mesos.Volume{hostVolume("data", "data", mesos.RW)}
			},
			want: []string{"container_path", `"data"`},
		},
		{
			name: "zero max_completion_time",
			task: func(ti *mesos.TaskInfo) { ti.MaxCompletionTime = &mesos.DurationInfo{} },
			want: []string{"max_completion_time"},
		},
		{
			name: "health port not a number",
			task: withLabels("health.type", "http", "health.port", "http"),
			want: []string{"health.port", `"http"`},
		},
		{
			name: "unknown health type",
			task: withLabels("health.type", "grpc", "health.port", "80"),
			want: []string{"health.type", `"grpc"`},
		},
		{
			name: "health check without a type",
			task: withLabels("health.port", "80"),
			want: []string{"health.type"},
		},
		{
			name: "bad health interval",
			task: withLabels("health.type", "tcp", "health.port", "80", "health.interval", "often"),
			want: []string{"health.interval", `"often"`},
		},
		{
			name: "generic check without its tcp field",
			task: func(ti *mesos.TaskInfo) { ti.Check = &mesos.CheckInfo{Type: mesos.CheckInfo_TCP} },
			want: []string{"check.tcp"},
		},
		{
			name: "generic check on port 0",
			task: func(ti *mesos.TaskInfo) {
				ti.Check = &mesos.CheckInfo{Type: mesos.CheckInfo_HTTP, HTTP: &mesos.CheckInfo_Http{}}
			},
			want: []string{"check.http.port"},
		},
		{
			name: "native health check without its http field",
			task: func(ti *mesos.TaskInfo) { ti.HealthCheck = &mesos.HealthCheck{Type: mesos.HealthCheck_HTTP} },
			want: []string{"health_check.http"},
		},
		{
			name: "cpus math.NaN()",
			task: func(ti *mesos.TaskInfo) { ti.Resources = []mesos.Resource{scalar("cpus", math.NaN())} },
			want: []string{"resources.cpus"},
		},
		{
			name: "cpus -1",
			task: func(ti *mesos.TaskInfo) { ti.Resources = []mesos.Resource{scalar("cpus", -1)} },
			want: []string{"resources.cpus"},
		},
		{
			name: "cpus math.Inf(1)",
			task: func(ti *mesos.TaskInfo) { ti.Resources = []mesos.Resource{scalar("cpus", math.Inf(1))} },
			want: []string{"resources.cpus"},
		},
		{
			name: "cpus math.Inf(-1)",
			task: func(ti *mesos.TaskInfo) { ti.Resources = []mesos.Resource{scalar("cpus", math.Inf(-1))} },
			want: []string{"resources.cpus"},
		},
		{
			name: "cpus 1e300",
			task: func(ti *mesos.TaskInfo) { ti.Resources = []mesos.Resource{scalar("cpus", 1e300)} },
			want: []string{"resources.cpus"},
		},
		{
			name: "cpus 1e14",
			task: func(ti *mesos.TaskInfo) { ti.Resources = []mesos.Resource{scalar("cpus", 1e14)} },
			want: []string{"resources.cpus"},
		},
		{
			name: "mem math.NaN()",
			task: func(ti *mesos.TaskInfo) { ti.Resources = []mesos.Resource{scalar("mem", math.NaN())} },
			want: []string{"resources.mem"},
		},
		{
			name: "mem -64",
			task: func(ti *mesos.TaskInfo) { ti.Resources = []mesos.Resource{scalar("mem", -64)} },
			want: []string{"resources.mem"},
		},
		{
			name: "mem math.Inf(1)",
			task: func(ti *mesos.TaskInfo) { ti.Resources = []mesos.Resource{scalar("mem", math.Inf(1))} },
			want: []string{"resources.mem"},
		},
		{
			name: "mem 1e300",
			task: func(ti *mesos.TaskInfo) { ti.Resources = []mesos.Resource{scalar("mem", 1e300)} },
			want: []string{"resources.mem"},
		},
		{
			name: "limits.cpus math.NaN()",
			task: func(ti *mesos.TaskInfo) { ti.Limits = map[string]mesos.Value_Scalar{"cpus": {Value: math.NaN()}} },
			want: []string{"limits.cpus"},
		},
		{
			name: "limits.cpus -1",
			task: func(ti *mesos.TaskInfo) { ti.Limits = map[string]mesos.Value_Scalar{"cpus": {Value: -1}} },
			want: []string{"limits.cpus"},
		},
		{
			name: "limits.cpus math.Inf(-1)",
			task: func(ti *mesos.TaskInfo) { ti.Limits = map[string]mesos.Value_Scalar{"cpus": {Value: math.Inf(-1)}} },
			want: []string{"limits.cpus"},
		},
		{
			name: "limits.cpus 1e14",
			task: func(ti *mesos.TaskInfo) { ti.Limits = map[string]mesos.Value_Scalar{"cpus": {Value: 1e14}} },
			want: []string{"limits.cpus"},
		},
		{
			name: "limits.mem math.NaN()",
			task: func(ti *mesos.TaskInfo) { ti.Limits = map[string]mesos.Value_Scalar{"mem": {Value: math.NaN()}} },
			want: []string{"limits.mem"},
		},
		{
			name: "limits.mem -1",
			task: func(ti *mesos.TaskInfo) { ti.Limits = map[string]mesos.Value_Scalar{"mem": {Value: -1}} },
			want: []string{"limits.mem"},
		},
		{
			name: "limits.mem 1e300",
			task: func(ti *mesos.TaskInfo) { ti.Limits = map[string]mesos.Value_Scalar{"mem": {Value: 1e300}} },
			want: []string{"limits.mem"},
		},
		{
			name: "cpus summing to an absurd value",
			task: func(ti *mesos.TaskInfo) {
				ti.Resources = []mesos.Resource{scalar("cpus", 1e6), scalar("cpus", 1e6)}
			},
			want: []string{"resources.cpus"},
		},
		{
			name: "limits.mem below mem",
			task: func(ti *mesos.TaskInfo) {
				ti.Resources = []mesos.Resource{scalar("mem", 128)}
				ti.Limits = map[string]mesos.Value_Scalar{"mem": {Value: 64}}
			},
			want: []string{"limits.mem", "resources.mem"},
		},
		{
			name: "limits.cpus below cpus",
			task: func(ti *mesos.TaskInfo) {
				ti.Resources = []mesos.Resource{scalar("cpus", 2)}
				ti.Limits = map[string]mesos.Value_Scalar{"cpus": {Value: 1}}
			},
			want: []string{"limits.cpus", "resources.cpus"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := testTask()
			if tt.task != nil {
				tt.task(info)
			}
			p := testPolicy()
			if tt.policy != nil {
				tt.policy(&p)
			}
			_, err := parseTask(info, p, testHostSandbox)
			if !errors.Is(err, ErrInvalidTask) {
				t.Fatalf("parseTask() error = %v; want one wrapping ErrInvalidTask", err)
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("parseTask() error = %q; want it to mention %q", err, s)
				}
			}
		})
	}
}

// TestParseTaskHealthErrorKeepsItsSentinel checks that a bad health check is
// both an invalid task and an invalid health check, so that callers can tell
// the two apart.
func TestParseTaskHealthErrorKeepsItsSentinel(t *testing.T) {
	info := testTask()
	info.Labels = labels("health.type", "tcp")
	_, err := parseTask(info, testPolicy(), testHostSandbox)
	if !errors.Is(err, ErrInvalidTask) || !errors.Is(err, health.ErrInvalid) {
		t.Errorf("parseTask() error = %v; want one wrapping ErrInvalidTask and health.ErrInvalid", err)
	}
}

// TestParseTaskRepeatedLabel checks that the last of repeated label keys wins,
// as documented on taskLabels.
func TestParseTaskRepeatedLabel(t *testing.T) {
	info := testTask()
	info.Labels = labels("docker.image", "first", "docker.image", "second")
	got, err := parseTask(info, testPolicy(), testHostSandbox)
	if err != nil {
		t.Fatalf("parseTask() error = %v", err)
	}
	if got.spec.Image != "second" {
		t.Errorf("parseTask() image = %q; want %q", got.spec.Image, "second")
	}
}
