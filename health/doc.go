// Package health implements Mesos health checks and generic checks for the
// executor's tasks.
//
// Parse turns TaskInfo.health_check and the health.* task labels into one
// Spec with the Mesos defaults (delay 15s, interval 10s, timeout 20s, 3
// consecutive failures, grace 10s), labels winning over native fields;
// ParseCheck does the same for TaskInfo.check (delay 15s, interval 10s,
// timeout 20s).
//
// A Supervisor runs every task's checks with the semantics of the Mesos
// checkers (src/checks in apache/mesos): the delay and the grace period count
// from Start, the interval from the end of one probe to the start of the
// next, a timeout is a failure, failures are ignored while a task that has
// never passed is in its grace period, and the consecutive-failures threshold
// asks for a kill, once. Unlike the built-in executors it forks nothing per
// probe: HTTP(S) and TCP probes are made from Go, to 127.0.0.1 from inside
// the container's own network namespace whatever its network mode, as the
// Mesos checkers do; command probes go through the Docker exec API (an
// Execer).
//
// A task's probes can never reach the host or another container: the
// namespace is opened once per task through /proc/<pid>, after checking
// that the pid is in the container's cgroup, and held until the task's
// checks stop, so a reused pid or bridge IP cannot redirect them; every dial
// is to a loopback IP literal; redirects are followed, as curl -L does in
// Mesos, only to the loopback. It also reports only changes of health unless told otherwise,
// spreads first probes with jitter and caps the probes running at once.
package health
