package cleanup

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// FindHolders lists the processes whose mount namespace has a mount whose
// source, root, mount point or superblock options contain one of needles.
// It reads procRoot (normally /proc) only, one mountinfo per namespace
// (processes are grouped by their /proc/<pid>/ns/mnt link), and skips the
// namespaces of the calling process and of pid 1: those are the executor's
// and, normally, the daemon's own, where Docker unmounts before it removes,
// and listing every host process there would drown the real holder.
// Processes that vanish or cannot be read during the scan are skipped.
func FindHolders(procRoot string, needles []string) ([]Holder, error) {
	if len(needles) == 0 {
		return nil, nil
	}
	skip := map[string]bool{}
	for _, p := range []string{"self", "1"} {
		if ns, err := os.Readlink(filepath.Join(procRoot, p, "ns", "mnt")); err == nil {
			skip[ns] = true
		}
	}
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("scan mount namespaces: %w", err)
	}
	byNS := map[string][]int{}
	var order []string
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid <= 0 {
			continue
		}
		ns, err := os.Readlink(filepath.Join(procRoot, ent.Name(), "ns", "mnt"))
		if err != nil || skip[ns] {
			continue // gone, a kernel thread, or not ours to read
		}
		if _, ok := byNS[ns]; !ok {
			order = append(order, ns)
		}
		byNS[ns] = append(byNS[ns], pid)
	}

	filter := func(m *mountinfo.Info) (skip, stop bool) {
		for _, n := range needles {
			if strings.Contains(m.Mountpoint, n) || strings.Contains(m.Root, n) ||
				strings.Contains(m.Source, n) || strings.Contains(m.VFSOptions, n) {
				return false, false
			}
		}
		return true, false
	}
	var holders []Holder
	for _, ns := range order {
		pids := byNS[ns]
		slices.Sort(pids)
		mounts := namespaceMounts(procRoot, pids, filter)
		if len(mounts) == 0 {
			continue
		}
		for i, pid := range pids {
			if i == maxHoldersPerNS || len(holders) == maxHolders {
				break
			}
			holders = append(holders, Holder{
				PID: pid, Command: command(procRoot, pid), MountNS: ns, Mountpoint: mounts[0].Mountpoint,
			})
		}
	}
	slices.SortFunc(holders, func(a, b Holder) int { return a.PID - b.PID })
	return holders, nil
}

// namespaceMounts returns the matching mounts of the namespace, read from
// the first of its pids whose mountinfo can be read.
func namespaceMounts(procRoot string, pids []int, filter mountinfo.FilterFunc) []*mountinfo.Info {
	for _, pid := range pids {
		f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "mountinfo"))
		if err != nil {
			continue
		}
		mounts, err := mountinfo.GetMountsFromReader(f, filter)
		_ = f.Close()
		if err == nil {
			return mounts
		}
	}
	return nil
}

// command returns the process's command line, or its comm.
func command(procRoot string, pid int) string {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err == nil {
		b = bytes.TrimRight(b, "\x00")
		b = bytes.ReplaceAll(b, []byte{0}, []byte{' '})
	}
	if len(bytes.TrimSpace(b)) == 0 {
		c, cerr := os.ReadFile(filepath.Join(dir, "comm"))
		if cerr != nil {
			return "?" // exited during the scan
		}
		b = bytes.TrimSpace(c)
	}
	s := string(b)
	if len(s) > maxCommandLen {
		s = s[:maxCommandLen] + "..."
	}
	return s
}
