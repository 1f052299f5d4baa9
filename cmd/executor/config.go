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

	AllowPrivileged     bool
	AllowHostNamespaces bool
	AllowHostMounts     bool

	DefaultKillGrace time.Duration
	RemoveDelay      time.Duration
	IdleTimeout      time.Duration
	TaskLogMaxBytes  int64
	TaskLogMaxFiles  int
	DockerTimeout    time.Duration
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
	fs.StringVar(&c.CgroupParent, "cgroup-parent", "", "cgroup parent for task containers (default: Docker's)")
	fs.BoolVar(&c.AllowPrivileged, "allow-privileged", false, "allow tasks to run privileged containers")
	fs.BoolVar(&c.AllowHostNamespaces, "allow-host-namespaces", false, "allow tasks to use the host's pid, ipc or uts namespace")
	fs.BoolVar(&c.AllowHostMounts, "allow-host-mounts", false, "allow tasks to bind-mount host paths outside their sandbox")
	fs.DurationVar(&c.DefaultKillGrace, "default-kill-grace", 3*time.Second, "grace between the stop signal and SIGKILL when the task sets none")
	fs.DurationVar(&c.RemoveDelay, "remove-delay", time.Minute, "how long a finished task's container is kept before removal")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 0, "exit after this long without tasks once every update is acknowledged (0: never)")
	fs.Int64Var(&c.TaskLogMaxBytes, "task-log-max-size", 10<<20, "bytes per task stdout/stderr file before it is rotated")
	fs.IntVar(&c.TaskLogMaxFiles, "task-log-max-files", 5, "rotated task log files kept per stream")
	fs.DurationVar(&c.DockerTimeout, "docker-timeout", 30*time.Second, "deadline of one short Docker API call")
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
	fs.StringVar(&wire, "wire-format", wire, "agent API encoding: protobuf or json")
	fs.DurationVar(&heartbeat, "agent-heartbeat", 30*time.Second, "interval of HEARTBEAT calls that detect a dead agent connection (negative: off)")

	// Environment first, so that flags on the command line override it.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
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
