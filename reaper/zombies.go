package reaper

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// DefaultProcRoot is where CountZombies reads processes when given "".
const DefaultProcRoot = "/proc"

// CountZombies counts the zombie processes (state Z) of each container in one
// pass over procRoot/*/stat. initPids maps a task id to the host pid of its
// container's PID 1 (Docker's State.Pid); a zombie belongs to a container
// when its PID namespace (the procRoot/<pid>/ns/pid link) is that of the
// container's PID 1. A zombie whose own link cannot be read is attributed
// through its parent's, which is alive by definition.
//
// The result has an entry for every task whose namespace could be read, 0
// when it has no zombies. Tasks are left out when their PID 1 is gone (the
// container stopped) or when they share the caller's own PID namespace
// (PidMode host), where a zombie cannot be told apart from the host's.
// Processes that vanish during the scan are skipped; only a procRoot that
// cannot be listed is an error. procRoot "" means DefaultProcRoot.
func CountZombies(procRoot string, initPids map[string]int) (map[string]int, error) {
	if procRoot == "" {
		procRoot = DefaultProcRoot
	}
	counts := make(map[string]int, len(initPids))
	// Several tasks can share one namespace (PidMode container:).
	tasksByNS := make(map[string][]string, len(initPids))
	// Absent in a fake procRoot; then nothing is excluded.
	ownNS, _ := os.Readlink(filepath.Join(procRoot, "self", "ns", "pid"))
	for id, pid := range initPids {
		if pid <= 0 {
			continue
		}
		ns, err := os.Readlink(filepath.Join(procRoot, strconv.Itoa(pid), "ns", "pid"))
		if err != nil || ns == ownNS {
			continue
		}
		tasksByNS[ns] = append(tasksByNS[ns], id)
		counts[id] = 0
	}

	dir, err := os.Open(procRoot)
	if err != nil {
		return nil, fmt.Errorf("count zombies: %w", err)
	}
	names, err := dir.Readdirnames(-1)
	dir.Close()
	if err != nil {
		return nil, fmt.Errorf("count zombies: list %s: %w", procRoot, err)
	}
	if len(tasksByNS) == 0 {
		return counts, nil
	}
	for _, name := range names {
		if !isPid(name) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procRoot, name, "stat"))
		if err != nil {
			continue // exited (and reaped) since the listing
		}
		state, ppid, ok := parseStat(b)
		if !ok || state != 'Z' {
			continue
		}
		ns, err := os.Readlink(filepath.Join(procRoot, name, "ns", "pid"))
		if err != nil {
			ns, err = os.Readlink(filepath.Join(procRoot, strconv.Itoa(ppid), "ns", "pid"))
			if err != nil {
				continue
			}
		}
		for _, id := range tasksByNS[ns] {
			counts[id]++
		}
	}
	return counts, nil
}

// isPid reports whether a /proc entry name is a process id.
func isPid(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return false
		}
	}
	return true
}

// parseStat returns the state and the parent pid from the contents of
// /proc/<pid>/stat: "pid (comm) state ppid ...". comm is the executable's
// name, up to 15 bytes chosen by whoever started it, and may hold spaces and
// parentheses, so the fields are found after the last ')'.
func parseStat(b []byte) (state byte, ppid int, ok bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	fields := bytes.Fields(b[i+1:])
	if len(fields) < 2 || len(fields[0]) != 1 {
		return 0, 0, false
	}
	ppid, err := strconv.Atoi(string(fields[1]))
	if err != nil {
		return 0, 0, false
	}
	return fields[0][0], ppid, true
}
