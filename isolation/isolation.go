// Package isolation decides, once at start, where the executor's task
// containers live in the cgroup tree, reads their cgroup statistics, and
// judges OOM kills.
//
//   - Decide detects the host (cgroup v1, v2 or hybrid, writable or not, the
//     executor's own cgroup, Docker's cgroup driver) and picks a Mode: nested
//     (every container under the executor's own cgroup, so the Mesos agent's
//     limits and accounting for the executor cover its tasks), slice (systemd
//     driver) or degraded (Docker's default parent, with the reason).
//   - Reader reads a container's counters from fixed-name cgroup files,
//     beneath a descriptor of the cgroupfs root, on demand with a small cache;
//     Collector exports them to Prometheus per task.
//   - DecideOOM and ApplyOOM turn Docker's OOM report and the cgroup's
//     oom_kill counter into the task's terminal status.
//
// Containers are still limited by the Docker daemon from the HostConfig the
// task package builds (shares, optional CFS quota, memory limit and
// reservation, pids limit); this package creates no limits of its own.
package isolation

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/cgroups/v3"
	"golang.org/x/sys/unix"
)

// Info describes the host's cgroups.
type Info struct {
	Mode        string   // "v2", "v1", "hybrid" or "none"
	Root        string   // the cgroupfs mount, normally /sys/fs/cgroup
	Writable    bool     // the executor can create cgroups there
	Controllers []string // memory, cpu, pids... that are mounted/enabled
	Warnings    []string // what does not work, for the log and /state
}

// String is the one-line summary logged at start.
func (i Info) String() string {
	w := "read-only"
	if i.Writable {
		w = "writable"
	}
	s := fmt.Sprintf("cgroup %s at %s (%s), controllers %s", i.Mode, i.Root, w, strings.Join(i.Controllers, ","))
	if len(i.Warnings) > 0 {
		s += "; " + strings.Join(i.Warnings, "; ")
	}
	return s
}

// Has reports whether a controller is available.
func (i Info) Has(controller string) bool {
	for _, c := range i.Controllers {
		if c == controller {
			return true
		}
	}
	return false
}

// Detect inspects the cgroupfs mounted at root ("" = /sys/fs/cgroup).
func Detect(root string) Info {
	if root == "" {
		root = "/sys/fs/cgroup"
	}
	info := Info{Root: root}
	if root == "/sys/fs/cgroup" {
		switch cgroups.Mode() {
		case cgroups.Unified:
			info.Mode = "v2"
		case cgroups.Hybrid:
			info.Mode = "hybrid"
		case cgroups.Legacy:
			info.Mode = "v1"
		default:
			info.Mode = "none"
		}
	} else {
		info.Mode = detectMode(root)
	}
	switch info.Mode {
	case "v2":
		b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
		if err == nil {
			info.Controllers = strings.Fields(string(b))
		}
	case "v1", "hybrid":
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if e.IsDir() && e.Name() != "unified" && !strings.HasPrefix(e.Name(), "name=") && e.Name() != "systemd" {
				info.Controllers = append(info.Controllers, e.Name())
			}
		}
	default:
		info.Warnings = append(info.Warnings, "no cgroup filesystem found: container limits depend on the Docker daemon alone and zombie counts by cgroup are unavailable")
		return info
	}
	info.Writable = unix.Access(root, unix.W_OK) == nil && !readOnlyMount(root)
	if !info.Writable {
		info.Warnings = append(info.Warnings, "cgroupfs is read-only: the executor cannot create cgroups of its own; Docker still applies container limits")
	}
	if !info.Has("memory") {
		info.Warnings = append(info.Warnings, "no memory controller: memory limits and OOM detection will not work")
	}
	return info
}

func detectMode(root string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return "none"
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "v2"
	}
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return "v2"
	}
	if _, err := os.Stat(filepath.Join(root, "memory")); err == nil {
		return "v1"
	}
	return "none"
}

func readOnlyMount(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return true
	}
	return st.Flags&unix.ST_RDONLY != 0
}

// ProcCgroupPaths parses /proc/<pid>/cgroup content: hierarchy id ->
// (controllers, path). It is used to find a container's cgroup from its pid.
func ProcCgroupPaths(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			return nil, errors.New("malformed /proc/<pid>/cgroup line: " + sc.Text())
		}
		if parts[1] == "" {
			out[""] = parts[2] // the v2 unified hierarchy
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, sc.Err()
}
