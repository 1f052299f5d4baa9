package localagent

import (
	"net"
	"os"
	"os/user"
	"sort"
	"strconv"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Agent flag defaults that reach the executor's environment
// (slave/constants.hpp).
const (
	defaultRecoveryTimeout     = 15 * time.Minute
	defaultShutdownGracePeriod = 5 * time.Second
)

// Env returns the environment a real agent gives the executor
// (executorEnvironment in slave.cpp) as "KEY=value" pairs sorted by key:
// the MESOS_* variables, PATH and DOCKER_HOST when set in this process, then
// extra, which overrides. Call it after Start: the endpoint is part of it.
func (a *Agent) Env(sandboxDir string, extra map[string]string) []string {
	a.mu.Lock()
	addr := a.addr
	a.mu.Unlock()

	env := map[string]string{
		"MESOS_FRAMEWORK_ID":                   a.opts.FrameworkID,
		"MESOS_EXECUTOR_ID":                    a.opts.ExecutorID,
		"MESOS_AGENT_ENDPOINT":                 addr,
		"MESOS_SLAVE_PID":                      "slave(1)@" + addr,
		"MESOS_SLAVE_ID":                       a.opts.AgentID,
		"MESOS_DIRECTORY":                      sandboxDir,
		"MESOS_SANDBOX":                        sandboxDir,
		"MESOS_CHECKPOINT":                     "0",
		"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": FormatDuration(defaultShutdownGracePeriod),
	}
	if a.opts.Checkpoint {
		// The recovery variables exist only for checkpointing frameworks;
		// the C++ executor library refuses to start without them then.
		env["MESOS_CHECKPOINT"] = "1"
		env["MESOS_RECOVERY_TIMEOUT"] = FormatDuration(defaultRecoveryTimeout)
		env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = FormatDuration(a.opts.ReregistrationTimeout)
	}
	// The containerizer passes neither on its own; the Docker socket
	// location matters to this executor.
	for _, k := range []string{"PATH", "DOCKER_HOST"} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	if a.opts.AuthToken != "" {
		env["MESOS_EXECUTOR_AUTHENTICATION_TOKEN"] = a.opts.AuthToken
	}
	for k, v := range extra {
		env[k] = v
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

// FormatDuration writes d as stout's stringify(Duration) does: the largest
// unit in which the value is at least 1, with up to 15 significant digits,
// e.g. "15mins", "2secs", "1.5secs". mesos-go's lib/time.ParseDuration
// reads it back.
func FormatDuration(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	units := []struct {
		size time.Duration
		name string
	}{
		{7 * 24 * time.Hour, "weeks"},
		{24 * time.Hour, "days"},
		{time.Hour, "hrs"},
		{time.Minute, "mins"},
		{time.Second, "secs"},
		{time.Millisecond, "ms"},
		{time.Microsecond, "us"},
	}
	for _, u := range units {
		if d >= u.size {
			return sign + strconv.FormatFloat(float64(d)/float64(u.size), 'g', 15, 64) + u.name
		}
	}
	return sign + strconv.FormatInt(int64(d), 10) + "ns"
}

// Task builds a TaskInfo for tests: the id doubles as the name, the
// resources are cpus and mem (MB) scalars, and there is no ExecutorInfo.
// Launch replaces agent_id with the launching agent's id.
func Task(id string, labels map[string]string, cpus, memMB float64) mesos.TaskInfo {
	t := mesos.TaskInfo{
		Name:    id,
		TaskID:  mesos.TaskID{Value: id},
		AgentID: mesos.AgentID{Value: DefaultAgentID},
		Resources: []mesos.Resource{
			scalar("cpus", cpus),
			scalar("mem", memMB),
		},
	}
	if len(labels) > 0 {
		keys := make([]string, 0, len(labels))
		for k := range labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		t.Labels = &mesos.Labels{}
		for _, k := range keys {
			t.Labels.Labels = append(t.Labels.Labels, mesos.Label{Key: k, Value: proto.String(labels[k])})
		}
	}
	return t
}

func scalar(name string, v float64) mesos.Resource {
	return mesos.Resource{
		Name:   name,
		Type:   mesos.SCALAR.Enum(),
		Scalar: &mesos.Value_Scalar{Value: v},
	}
}

// splitPort returns the host and numeric port of "host:port".
func splitPort(addr string) (string, int32, bool) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, false
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil {
		return "", 0, false
	}
	return host, int32(n), true
}

// currentUser is framework_info.user: the scheduler's user, here ours.
func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "root"
}
