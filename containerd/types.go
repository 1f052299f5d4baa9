package containerd

import "time"

// Ownership labels put on every container the executor creates. The namespace
// is the project's own so that nothing else on the host (the Mesos Docker
// containerizer in particular, which owns "mesos-*" names) mistakes them.
const (
	LabelPrefix      = "io.mdx."
	LabelFramework   = LabelPrefix + "framework_id"
	LabelExecutor    = LabelPrefix + "executor_id"
	LabelAgent       = LabelPrefix + "agent_id"
	LabelTask        = LabelPrefix + "task_id"
	LabelInstance    = LabelPrefix + "instance"     // random id of the executor process that created it
	LabelPID         = LabelPrefix + "executor_pid" // pid of that process, with LabelBootID proves liveness
	LabelBootID      = LabelPrefix + "boot_id"      // /proc/sys/kernel/random/boot_id of the host at creation
	LabelCreatedUnix = LabelPrefix + "created"      // unix seconds, for "orphaned for how long"

	// NamePrefix starts every container name. Never "mesos-": with
	// docker_kill_orphans on (the default) the agent's Docker containerizer
	// stops any "mesos-*" container it does not track.
	NamePrefix = "mdx-"

	// SandboxMountPoint is where a task's sandbox directory appears inside
	// its container, as with the Mesos Docker containerizer.
	SandboxMountPoint = "/mnt/mesos/sandbox"
)

// PortBinding maps a container port to a host port.
type PortBinding struct {
	ContainerPort uint32
	HostPort      uint32
	Protocol      string // "tcp" (default) or "udp"
}

// Mount is a bind mount from the host into the container.
type Mount struct {
	HostPath      string
	ContainerPath string
	ReadOnly      bool
}

// Spec is everything needed to create one task's container. The task package
// builds it; this package only translates it into the Docker API.
type Spec struct {
	Name       string            // container name (see ContainerName)
	Image      string            // image reference
	ForcePull  bool              // pull even when the image is present
	Entrypoint []string          // nil keeps the image's entrypoint
	Cmd        []string          // nil keeps the image's CMD
	Env        []string          // KEY=VALUE
	Labels     map[string]string // ownership labels and any others
	Network    string            // "bridge", "host", "none" or a user-defined network; "" = bridge
	Hostname   string
	User       string
	WorkingDir string
	Ports      []PortBinding
	Mounts     []Mount // includes the sandbox mount
	Init       bool    // run docker-init as PID 1

	CPUShares   int64 // HostConfig.CPUShares
	CPUQuota    int64 // HostConfig.CPUQuota (microseconds per CPUPeriod)
	CPUPeriod   int64 // HostConfig.CPUPeriod (microseconds)
	MemoryBytes int64 // HostConfig.Memory (hard limit); 0 = unlimited
	// MemoryReservation is HostConfig.MemoryReservation, the soft limit
	// (v1 memory.soft_limit_in_bytes, v2 memory.low); 0 = none.
	MemoryReservation int64
	PidsLimit         int64 // HostConfig.PidsLimit; 0 = unlimited

	Privileged   bool
	PidMode      string // "" or "host"
	IpcMode      string // "" or "host"
	UTSMode      string // "" or "host"
	UsernsMode   string // "" or "host"
	CgroupnsMode string // "", "private" or "host"

	CgroupParent string // from the isolation package; "" = Docker's default

	// Log bounds Docker's own copy of the container's output; the zero
	// value means the Client's Config.Log. Every container gets a rotated
	// log: none is ever created with Docker's unbounded default.
	Log LogConfig
}

// Info is what the executor needs to know of a container from one inspect.
type Info struct {
	ID         string
	Name       string
	Running    bool
	Status     string // Docker's state: created, running, exited, dead, ...
	Pid        int
	ExitCode   int
	OOMKilled  bool
	Error      string // Docker's State.Error, e.g. a start failure
	StopSignal string // from the image/container config; "" = SIGTERM
	IPs        []string
	StartedAt  time.Time
	FinishedAt time.Time
	Labels     map[string]string
	// LogPath is the daemon-side file of Docker's own log of the container
	// (json-file driver; "" for others), for operators and tests.
	LogPath string
}

// Exit is one container exit, confirmed by an inspect after the "die" event
// (or found by the reconciling list after the events stream was reopened).
// The same exit may be reported more than once; consumers must be idempotent.
type Exit struct {
	ContainerID string
	TaskID      string // from LabelTask
	ExitCode    int
	OOMKilled   bool
	FinishedAt  time.Time
	Error       string
	// Sent is when the exit watcher handed the exit over (zero for an exit
	// made elsewhere); the task loop's latency is measured from it.
	Sent time.Time
}

// Summary is one container from a labelled list.
type Summary struct {
	ID      string
	Names   []string
	State   string
	Labels  map[string]string
	Created time.Time
	// SandboxDir is the host directory mounted at SandboxMountPoint, if
	// any: the task's sandbox, inside its executor's sandbox.
	SandboxDir string
}
