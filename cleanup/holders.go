package cleanup

import (
	"fmt"
	"strings"
)

// Holder is a process whose mount namespace still holds one of a
// container's mounts (its root filesystem, shm, or a device), which is what
// makes a removal fail with "device or resource busy". The executor never
// unmounts anything in another namespace: it reports the holder, and the
// operator decides.
type Holder struct {
	PID int
	// Command is the process's command line (or its comm when the command
	// line is empty or unreadable), cut to 200 bytes.
	Command string
	// MountNS is the namespace as /proc/<pid>/ns/mnt names it, e.g.
	// "mnt:[4026532403]". Processes sharing it hold the same mounts.
	MountNS string
	// Mountpoint is the first matching mount as that namespace sees it.
	Mountpoint string
}

func (h Holder) String() string {
	return fmt.Sprintf("pid %d (%s) in %s at %s", h.PID, h.Command, h.MountNS, h.Mountpoint)
}

// formatHolders renders holders for one log field or a task message.
func formatHolders(hs []Holder) string {
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = h.String()
	}
	return strings.Join(parts, "; ")
}

// FormatHolders renders holders as one line, for a task's final message:
// "pid 42 (sleep 30) in mnt:[4026532403] at /var/lib/docker/.../merged; ...".
func FormatHolders(hs []Holder) string { return formatHolders(hs) }

// Caps on what one scan reports: enough to name the culprits, bounded so a
// namespace shared by thousands of processes cannot flood a log line.
const (
	maxHoldersPerNS = 16
	maxHolders      = 64
	maxCommandLen   = 200
)
