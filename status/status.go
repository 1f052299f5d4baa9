// Package status serves the executor's local, read-only debug socket: an HTTP
// server on a Unix socket in the task sandbox that reports what the executor
// believes (GET /state, GET /tasks/{id}), its Prometheus metrics (GET /metrics)
// and Go profiles (GET /debug/pprof/), and the client side of
// `executor status` (RunCLI).
//
// The server owns no state. It reads everything from a Source on each request,
// so it never blocks or slows the task manager, and it never changes anything:
// every method other than GET and HEAD is refused. The JSON field names of
// State and Task are a public contract (see CONTRACT.md, "Status socket");
// fields may be added but never renamed.
//
// The socket lives at $MESOS_SANDBOX/executor.sock by default, a path that on
// a real agent is longer than the 108 bytes a Unix socket address can hold;
// Listen and Dial handle such paths (see Listen).
package status

import "time"

// State is what GET /state returns. The JSON names are a public contract.
type State struct {
	ExecutorID  string `json:"executor_id"`
	FrameworkID string `json:"framework_id"`
	AgentID     string `json:"agent_id,omitempty"`
	// Instance distinguishes executor processes that reuse one executor id
	// (for example after the agent relaunches it).
	Instance  string    `json:"instance,omitempty"`
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`

	// AgentConnected is true while the SUBSCRIBE stream to the agent is up.
	AgentConnected bool `json:"agent_connected"`
	// UnacknowledgedUpdates counts status updates sent to the agent and not
	// yet acknowledged; Unacknowledged lists them.
	UnacknowledgedUpdates int             `json:"unacknowledged_updates"`
	Unacknowledged        []PendingUpdate `json:"unacknowledged,omitempty"`

	Docker DockerState `json:"docker"`
	// Cgroups is the executor's parent cgroup, when it manages one.
	Cgroups string `json:"cgroups,omitempty"`
	// Isolation is the cgroup isolation in force, decided at start.
	Isolation *IsolationState `json:"isolation,omitempty"`

	// Policy is the operator's policy in force and where each setting came
	// from.
	Policy *PolicyState `json:"policy,omitempty"`

	// OrphansReaped counts processes re-parented to the executor (it is a
	// child subreaper) that it reaped.
	OrphansReaped uint64 `json:"orphans_reaped"`

	// Cleanup reports the container removal queue, the periodic sweep and
	// image collection (nil when the executor runs no cleanup).
	Cleanup *CleanupState `json:"cleanup,omitempty"`

	// Pulls lists the image pulls in flight (one per image, shared by every
	// task waiting for it).
	Pulls []Pull `json:"pulls,omitempty"`

	// Tasks is never null in the JSON: an executor without tasks reports [].
	// GET /state leaves out each task's History.
	Tasks []Task `json:"tasks"`
}

// PolicyState is the operator's policy: the file, what became of it, and
// every setting with its source (default, file or flag).
type PolicyState struct {
	File       string          `json:"file"`
	FileStatus string          `json:"file_status"`
	Settings   []PolicySetting `json:"settings"`
}

// PolicySetting is one setting of the policy in force.
type PolicySetting struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

// CleanupState is the storage cleanup's view: what waits for removal, what
// is stuck and who holds it, and orphans of dead executors on the host.
type CleanupState struct {
	QueueDepth         int            `json:"queue_depth"`
	Paused             bool           `json:"paused"` // the Docker daemon is unreachable
	Retries            uint64         `json:"retries"`
	Removed            uint64         `json:"removed"`
	OldestStuckSeconds float64        `json:"oldest_stuck_seconds"`
	Stuck              []StuckRemoval `json:"stuck,omitempty"`
	LastSweep          *time.Time     `json:"last_sweep,omitempty"`
	SandboxesRemoved   uint64         `json:"sandboxes_removed"`
	Orphans            []Orphan       `json:"orphans,omitempty"`
	// LiveInstances are other running instances of this same executor
	// (same framework and executor ids) on the Docker daemon; their
	// containers are left alone.
	LiveInstances []LiveInstance `json:"live_instances,omitempty"`
	ImagesTracked int            `json:"images_tracked"`
	ImagesRemoved uint64         `json:"images_removed"`
}

// StuckRemoval is a container whose removal keeps failing.
type StuckRemoval struct {
	ContainerID    string   `json:"container_id"`
	TaskID         string   `json:"task_id"`
	Attempts       int      `json:"attempts"`
	FailingSeconds float64  `json:"failing_seconds"`
	LastError      string   `json:"last_error"`
	Holders        []Holder `json:"holders,omitempty"`
}

// Holder is a process that holds a container's mounts in another mount
// namespace.
type Holder struct {
	PID        int    `json:"pid"`
	Command    string `json:"command"`
	MountNS    string `json:"mount_ns"`
	Mountpoint string `json:"mountpoint,omitempty"`
}

// Orphan is a container of this project whose executor is dead.
type Orphan struct {
	ContainerID string `json:"container_id"`
	TaskID      string `json:"task_id"`
	FrameworkID string `json:"framework_id"`
	ExecutorID  string `json:"executor_id"`
	State       string `json:"state"`
	Reason      string `json:"reason"`
}

// LiveInstance is another live executor instance with this executor's ids.
type LiveInstance struct {
	Instance   string `json:"instance"`
	PID        string `json:"pid"`
	Containers int    `json:"containers"`
	Reason     string `json:"reason"`
}

// PendingUpdate is one status update the agent has not acknowledged yet.
type PendingUpdate struct {
	TaskID string `json:"task_id"`
	// State is the Mesos task state name, e.g. "TASK_RUNNING".
	State string `json:"state"`
	UUID  string `json:"uuid"`
	// AgeSeconds is how long ago the update was first sent.
	AgeSeconds float64 `json:"age_seconds"`
}

// DockerState describes the Docker Engine the executor talks to.
type DockerState struct {
	APIVersion    string   `json:"api_version"`
	StorageDriver string   `json:"storage_driver"`
	CgroupVersion string   `json:"cgroup_version"`
	Warnings      []string `json:"warnings,omitempty"`
}

// Task is one task as the executor sees it.
type Task struct {
	TaskID string `json:"task_id"`
	// State is the Mesos task state name, e.g. "TASK_RUNNING".
	State       string `json:"state"`
	ContainerID string `json:"container_id"`
	// Healthy is null when the task has no health check, or when the check
	// has not reported yet.
	Healthy  *bool  `json:"healthy"`
	Image    string `json:"image,omitempty"`
	IP       string `json:"ip,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
	// Zombies counts zombie processes in the task's container (its PID
	// namespace) at the last scan.
	Zombies    int        `json:"zombies,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	Message    string     `json:"message,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// Stats is the task's container's cgroup counters, while it runs.
	Stats *TaskStats `json:"stats,omitempty"`
	// Networks are the task's CNI attachments (network.cni labels).
	Networks []TaskNetwork `json:"networks,omitempty"`
	// Launch is the step a gated task is at before its command runs:
	// "cni NAME", "hook NAME" or "release"; empty once released.
	Launch string `json:"launch,omitempty"`
	// History is the task's state transitions, oldest first. Only
	// GET /tasks/{id} includes it.
	History []HistoryEntry `json:"history,omitempty"`
}

// TaskNetwork is one CNI attachment of a task.
type TaskNetwork struct {
	Name   string   `json:"name"`
	IfName string   `json:"ifname"`
	IPs    []string `json:"ips,omitempty"`
}

// HistoryEntry is one state transition of a task.
type HistoryEntry struct {
	State   string    `json:"state"`
	Reason  string    `json:"reason,omitempty"`
	Message string    `json:"message,omitempty"`
	Time    time.Time `json:"time"`
}

// Source is what the server reads from; the executor's main composes it from
// the task manager's snapshot, the agent link and the Docker adapter.
//
// State is called once per request, possibly from many goroutines at once, so
// it must be cheap and safe for concurrent use. The server treats the returned
// value as read-only (it copies before changing anything), so a Source may
// return a shared immutable snapshot.
type Source interface {
	State() State
}

// TaskSource is an optional Source ability: one task with its History, so
// that GET /tasks/{id} need not build every task's history (and GET /state,
// which leaves history out, can skip it).
type TaskSource interface {
	Task(id string) (Task, bool)
}

// Pull is one image pull in flight.
type Pull struct {
	Image string `json:"image"`
	// TaskIDs are the tasks waiting for the image.
	TaskIDs []string `json:"task_ids"`
	// BytesDone and BytesTotal sum the layers' downloads; the total grows
	// as the daemon learns layer sizes.
	BytesDone      int64     `json:"bytes_done"`
	BytesTotal     int64     `json:"bytes_total"`
	StartedAt      time.Time `json:"started_at"`
	ElapsedSeconds float64   `json:"elapsed_seconds"`
	// Status is the daemon's latest progress line, e.g. "Downloading".
	Status string `json:"status,omitempty"`
}

// IsolationState is how task containers are grouped and limited: mode
// "nested" (under the executor's own cgroup), "slice" (a systemd slice of the
// executor's) or "degraded" (Docker's default parent, per-container limits
// only), with the reason.
type IsolationState struct {
	Mode         string   `json:"mode"`
	Reason       string   `json:"reason,omitempty"`
	CgroupParent string   `json:"cgroup_parent,omitempty"`
	Warnings     []string `json:"warnings,omitempty"`
}

// TaskStats is one sample of a task container's cgroup counters (read on
// demand, at most a few seconds old). Limits of 0 mean unlimited.
type TaskStats struct {
	CPUUserSeconds      float64   `json:"cpu_user_seconds"`
	CPUSystemSeconds    float64   `json:"cpu_system_seconds"`
	CPUThrottledPeriods uint64    `json:"cpu_throttled_periods,omitempty"`
	CPUThrottledSeconds float64   `json:"cpu_throttled_seconds,omitempty"`
	MemoryBytes         uint64    `json:"memory_bytes"`
	MemoryPeakBytes     uint64    `json:"memory_peak_bytes"`
	MemoryCacheBytes    uint64    `json:"memory_cache_bytes"`
	MemoryRSSBytes      uint64    `json:"memory_rss_bytes"`
	MemoryLimitBytes    uint64    `json:"memory_limit_bytes,omitempty"`
	Pids                uint64    `json:"pids"`
	PidsLimit           uint64    `json:"pids_limit,omitempty"`
	OOMKills            uint64    `json:"oom_kills"`
	ReadAt              time.Time `json:"read_at"`
}
