package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mdx-executor/mdx/agent"
	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/policy"
	"github.com/mdx-executor/mdx/status"
)

var errHelp = errors.New("help requested")

// Config is everything the executor process needs, from flags and the
// environment, with every default set in parseConfig.
type Config struct {
	Agent agent.Config

	StatusSocket string
	LogFormat    string
	LogLevel     string
	DockerHost   string
	CgroupParent string
	CPUQuota     bool  // --cpu-quota: a CFS quota of cpus on every task
	PidsLimit    int64 // --pids-limit: every container's pids limit; 0 = none

	// PolicyFile is the operator's policy file; Narrowing is what flags and
	// EXECUTOR_* variables said of the policy settings, each of which can
	// only narrow what the file allows.
	PolicyFile string
	Narrowing  policy.Narrowing

	DefaultKillGrace time.Duration
	RemoveDelay      time.Duration
	IdleTimeout      time.Duration
	TaskLogMaxBytes  int64
	TaskLogMaxFiles  int
	DockerTimeout    time.Duration
	PullStallTimeout time.Duration
	// DockerLog bounds Docker's own copy of every task's output (the
	// sandbox files are the copy operators read; this one must not fill
	// the disk).
	DockerLog containerd.LogConfig

	HealthEveryFailure bool
	HealthMaxProbes    int

	CleanupInterval  time.Duration
	CreatedGrace     time.Duration
	SandboxRetention time.Duration
	RemoveOrphans    bool
	ImageGC          bool
	ImageGCUnused    time.Duration
	ImageGCDangling  bool

	ZombieThreshold int
	ZombieInterval  time.Duration

	ReconcileInterval time.Duration
	FinishedKept      int
	FinishedMaxAge    time.Duration
	FactsTimeout      time.Duration
	AckWait           time.Duration

	// StartWarnings are problems found before the logger existed, logged
	// first thing by run.
	StartWarnings []string
}

// envPrefix: every flag can also come from EXECUTOR_<NAME> (dashes become
// underscores), because an agent starts the executor with the environment
// of ExecutorInfo.command and operators often find that easier than
// arguments. A flag on the command line wins.
const envPrefix = "EXECUTOR_"

func parseConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("executor", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	wire := "protobuf"
	var heartbeat time.Duration
	fs.StringVar(&c.StatusSocket, "status-socket", "", "path of the read-only status socket (default $MESOS_SANDBOX/executor.sock)")
	fs.StringVar(&c.LogFormat, "log-format", "text", "executor log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", "info", "executor log level: debug, info, warn, error")
	fs.StringVar(&c.DockerHost, "docker-host", "", "Docker Engine address (default $DOCKER_HOST or unix:///var/run/docker.sock)")
	fs.StringVar(&c.CgroupParent, "cgroup-parent", "", "cgroup parent for task containers (default: chosen at start, see the README's Isolation section)")
	fs.BoolVar(&c.CPUQuota, "cpu-quota", false, "give every task a CFS quota of its cpus (hard cap), as the agent's --cgroups_enable_cfs (default: CPU shares only; TaskInfo.limits.cpus still sets one)")
	fs.Int64Var(&c.PidsLimit, "pids-limit", 4096, "pids limit of every task container, against fork bombs (0: none)")
	fs.StringVar(&c.PolicyFile, "policy-file", policy.DefaultFile, "the operator's policy file (JSON; used only if root-owned, not group/world-writable, outside every sandbox)")
	var allowPriv, allowHostNS, allowHostNet, allowHostMounts, allowContainerNS bool
	var allowedNets string
	fs.BoolVar(&allowPriv, policy.KeyAllowPrivileged, false, "false narrows the policy file's allow-privileged (a flag can never widen the file)")
	fs.BoolVar(&allowHostNS, policy.KeyAllowHostNamespaces, false, "false narrows the policy file's allow-host-namespaces")
	fs.BoolVar(&allowHostNet, policy.KeyAllowHostNetwork, false, "false narrows the policy file's allow-host-network")
	fs.BoolVar(&allowHostMounts, policy.KeyAllowHostMounts, false, "false narrows the policy file's allow-host-mounts")
	fs.BoolVar(&allowContainerNS, policy.KeyAllowContainerNamespaces, false, "false narrows the policy file's allow-container-namespaces")
	fs.StringVar(&allowedNets, policy.KeyAllowedNetworks, "", "comma-separated user-defined networks: narrows the policy file's allowed-networks")
	fs.DurationVar(&c.DefaultKillGrace, "default-kill-grace", 3*time.Second, "grace between the stop signal and SIGKILL when the task sets none")
	fs.DurationVar(&c.RemoveDelay, "remove-delay", time.Minute, "how long a finished task's container is kept before removal")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 0, "exit after this long without tasks once every update is acknowledged (0: never)")
	fs.Int64Var(&c.TaskLogMaxBytes, "task-log-max-size", 10<<20, "bytes per task stdout/stderr file before it is rotated")
	fs.IntVar(&c.TaskLogMaxFiles, "task-log-max-files", 5, "rotated task log files kept per stream")
	fs.DurationVar(&c.DockerTimeout, "docker-timeout", 30*time.Second, "deadline of one short Docker API call")
	fs.DurationVar(&c.PullStallTimeout, "pull-stall-timeout", containerd.DefaultPullStallTimeout, "an image pull that makes no progress for this long fails (negative: never)")
	fs.StringVar(&c.DockerLog.Driver, "docker-log-driver", containerd.DefaultLogDriver, "Docker log driver of task containers: json-file or local (both rotate)")
	fs.StringVar(&c.DockerLog.MaxSize, "docker-log-max-size", containerd.DefaultLogMaxSize, "size of one Docker log file of a task container before Docker rotates it (Docker notation: 10m, 512k)")
	fs.IntVar(&c.DockerLog.MaxFile, "docker-log-max-file", containerd.DefaultLogMaxFile, "Docker log files kept per task container")
	fs.BoolVar(&c.HealthEveryFailure, "health-every-failure", false, "send a TASK_RUNNING update for every failed health probe, as the built-in executors do (default: only changes of health)")
	fs.IntVar(&c.HealthMaxProbes, "health-max-concurrent", 32, "health and check probes running at once across all tasks")
	fs.DurationVar(&c.CleanupInterval, "cleanup-interval", 5*time.Minute, "interval of the sweep that re-queues lost removals, removes old task sandboxes and finds orphans")
	fs.DurationVar(&c.CreatedGrace, "created-grace", 5*time.Minute, "a container created but never started is removed after this")
	fs.DurationVar(&c.SandboxRetention, "sandbox-retention", 24*time.Hour, "a finished task's sandbox directory (and its logs) is removed after this")
	fs.BoolVar(&c.RemoveOrphans, "remove-orphans", false, "remove containers of dead executors of this project on the host (default: report them)")
	fs.BoolVar(&c.ImageGC, "image-gc", false, "remove images this executor launched tasks from once unused for --image-gc-unused")
	fs.DurationVar(&c.ImageGCUnused, "image-gc-unused", time.Hour, "how long an image must be unused before image collection removes it")
	fs.BoolVar(&c.ImageGCDangling, "image-gc-dangling", false, "image collection also removes dangling images")
	fs.IntVar(&c.ZombieThreshold, "zombie-threshold", 10, "log a warning when a task's container holds more zombie processes than this")
	fs.DurationVar(&c.ZombieInterval, "zombie-interval", 30*time.Second, "interval of the zombie count in task containers")
	fs.DurationVar(&c.ReconcileInterval, "reconcile-interval", time.Minute, "how often every running task is checked against Docker (also after every events stream reconnect)")
	fs.IntVar(&c.FinishedKept, "finished-tasks-kept", 1000, "records of finished tasks kept for /state, executor status and the sandbox sweep")
	fs.DurationVar(&c.FinishedMaxAge, "finished-tasks-max-age", 24*time.Hour, "how long a finished task's record is kept")
	fs.DurationVar(&c.FactsTimeout, "facts-timeout", 30*time.Second, "how long the inspects after a start may take to give the container's pid and address before the task fails")
	fs.DurationVar(&c.AckWait, "ack-wait", 10*time.Minute, "how long a finished task whose updates are unacknowledged stays in the live table")
	fs.StringVar(&wire, "wire-format", wire, "agent API encoding: protobuf or json")
	fs.DurationVar(&heartbeat, "agent-heartbeat", 30*time.Second, "interval of HEARTBEAT calls that detect a dead agent connection (negative: off)")

	// Environment first, so that flags on the command line override it.
	var envErr error
	set := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			set[f.Name] = true
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		return c, envErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Println("Usage: executor [flags]   (started by a Mesos agent; see the README)")
			fs.PrintDefaults()
			return c, errHelp
		}
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.PidsLimit < 0 {
		return c, fmt.Errorf("--pids-limit %d: want 0 (none) or more", c.PidsLimit)
	}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	boolIfSet := func(name string, v bool) *bool {
		if !set[name] {
			return nil
		}
		return &v
	}
	c.Narrowing = policy.Narrowing{
		AllowPrivileged:          boolIfSet(policy.KeyAllowPrivileged, allowPriv),
		AllowHostNamespaces:      boolIfSet(policy.KeyAllowHostNamespaces, allowHostNS),
		AllowHostNetwork:         boolIfSet(policy.KeyAllowHostNetwork, allowHostNet),
		AllowHostMounts:          boolIfSet(policy.KeyAllowHostMounts, allowHostMounts),
		AllowContainerNamespaces: boolIfSet(policy.KeyAllowContainerNamespaces, allowContainerNS),
	}
	if set[policy.KeyAllowedNetworks] {
		c.Narrowing.AllowedNetworks = []string{}
		for _, n := range strings.Split(allowedNets, ",") {
			if n = strings.TrimSpace(n); n != "" {
				c.Narrowing.AllowedNetworks = append(c.Narrowing.AllowedNetworks, n)
			}
		}
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return c, fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
	}
	if c.DockerLog.MaxFile < 1 {
		// 0 would mean "the default" to containerd; on the command line
		// it is a mistake.
		return c, fmt.Errorf("--docker-log-max-file %d: want at least 1", c.DockerLog.MaxFile)
	}
	if err := c.DockerLog.Validate(); err != nil {
		return c, fmt.Errorf("--docker-log-*: %w", err)
	}
	ac, err := agent.ConfigFromEnv(getenv)
	if err != nil {
		return c, err
	}
	switch wire {
	case "protobuf":
		ac.ContentType = agent.ContentTypeProtobuf
	case "json":
		ac.ContentType = agent.ContentTypeJSON
	default:
		return c, fmt.Errorf("--wire-format %q: want protobuf or json", wire)
	}
	ac.HeartbeatInterval = heartbeat
	c.Agent = ac
	if c.StatusSocket == "" {
		c.StatusSocket = status.DefaultSocketPath(getenv)
	}
	if c.StatusSocket == "" {
		c.StatusSocket = filepath.Join(ac.Sandbox, status.SocketName)
	}
	return c, nil
}
