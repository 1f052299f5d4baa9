package cleanup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mdx-executor/mdx/containerd"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's start time. It is
// 100 on every Linux architecture Docker runs on (it is part of the ABI, not
// CONFIG_HZ), and reading it would take sysconf through cgo.
const clockTicks = 100

// startSlack absorbs the truncations between a process's start time and a
// container's creation label: the label is whole seconds, btime is whole
// seconds, and the start is in ticks after btime.
const startSlack = 2 * time.Second

// Liveness decides whether the executor process that created a container
// still runs on this host, from the container's LabelPID, LabelBootID,
// LabelInstance and LabelCreatedUnix labels and /proc.
//
// It assumes executors run in the host's pid namespace, as the Mesos agent
// starts them: a pid label written inside another pid namespace would be
// checked against the wrong process.
type Liveness struct {
	// ProcRoot is where /proc is mounted; default /proc. Tests use a fake.
	ProcRoot string
	// Instance is the calling executor's instance id: its own containers
	// are alive by definition. "" in the cleanup command.
	Instance string
}

// procState is what liveness needs of one pid.
type procState struct {
	exists bool
	zombie bool
	start  time.Time // zero when unknown
	comm   string
}

// ExecutorAlive reports whether the executor named by the labels is alive,
// and why. created is the container's creation time from the list, used
// when the creation label is missing. Whenever the labels or /proc cannot
// prove the executor dead, it is reported alive: a container is only ever
// an orphan on evidence.
func (l Liveness) ExecutorAlive(labels map[string]string, created time.Time) (bool, string) {
	root := l.ProcRoot
	if root == "" {
		root = DefaultProcRoot
	}
	hostBoot := readTrimmed(filepath.Join(root, "sys", "kernel", "random", "boot_id"))
	var p procState
	if pid, err := strconv.Atoi(labels[containerd.LabelPID]); err == nil && pid > 0 {
		p = readProc(root, pid)
	}
	return decideLiveness(labels, created, l.Instance, hostBoot, p)
}

// decideLiveness is ExecutorAlive without the I/O.
func decideLiveness(labels map[string]string, created time.Time, self, hostBoot string, p procState) (bool, string) {
	inst := labels[containerd.LabelInstance]
	if self != "" && inst == self {
		return true, "this executor"
	}
	pidLabel, bootLabel := labels[containerd.LabelPID], labels[containerd.LabelBootID]
	pid, err := strconv.Atoi(pidLabel)
	if err != nil || pid <= 0 || bootLabel == "" {
		return true, "no executor pid and boot id labels: cannot prove the executor dead"
	}
	if hostBoot == "" {
		return true, "this host's boot id is unreadable: cannot prove the executor dead"
	}
	if bootLabel != hostBoot {
		return false, fmt.Sprintf("executor pid %d ran before the host rebooted (boot id %s, now %s)", pid, short(bootLabel), short(hostBoot))
	}
	if !p.exists {
		return false, fmt.Sprintf("executor pid %d no longer exists", pid)
	}
	if p.zombie {
		return false, fmt.Sprintf("executor pid %d has exited (zombie)", pid)
	}
	c := createdAt(labels, created)
	if !p.start.IsZero() && !c.IsZero() && p.start.After(c.Add(startSlack)) {
		return false, fmt.Sprintf("pid %d is now %q, started %s, after the container was created %s: the executor is gone and its pid reused",
			pid, p.comm, p.start.UTC().Format(time.RFC3339), c.UTC().Format(time.RFC3339))
	}
	return true, fmt.Sprintf("executor pid %d (%s) is running", pid, p.comm)
}

// createdAt prefers the creation label (written by the executor) over the
// daemon's creation time.
func createdAt(labels map[string]string, created time.Time) time.Time {
	if s, ok := labels[containerd.LabelCreatedUnix]; ok {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
			return time.Unix(n, 0)
		}
	}
	return created
}

// readProc reads /proc/<pid>/stat. An unreadable but present process counts
// as existing with an unknown start time.
func readProc(root string, pid int) procState {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "stat"))
	if err != nil {
		// ESRCH: it exited while being read.
		return procState{exists: !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ESRCH)}
	}
	p := procState{exists: true}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return p
	}
	p.comm = string(b[open+1 : end])
	f := strings.Fields(string(b[end+1:]))
	if len(f) > 0 && f[0] == "Z" {
		p.zombie = true
	}
	// Field 22 (starttime) is f[19]: f[0] is field 3 (state).
	if len(f) > 19 {
		if ticks, err := strconv.ParseInt(f[19], 10, 64); err == nil {
			if bt := bootTime(root); !bt.IsZero() {
				p.start = bt.Add(time.Duration(ticks) * time.Second / clockTicks)
			}
		}
	}
	return p
}

// bootTime reads btime from /proc/stat.
func bootTime(root string) time.Time {
	f, err := os.Open(filepath.Join(root, "stat"))
	if err != nil {
		return time.Time{}
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "btime "); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return time.Unix(n, 0)
			}
		}
	}
	return time.Time{}
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
