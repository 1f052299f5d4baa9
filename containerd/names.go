package containerd

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// maxTaskIDInName caps the readable task-id part of a container name. Docker
// sets no hard limit, but names show up in `docker ps`, in logs and in cgroup
// paths; the hash suffix keeps truncated names distinct.
const maxTaskIDInName = 64

// ContainerName returns the deterministic Docker name of a task's container:
// NamePrefix, the task id with every character Docker does not allow replaced
// by '_' (cut to 64 characters), '-', and 10 hex digits of a SHA-256 over all
// three ids.
//
// Determinism is the point: a create retried after a lost response gets a
// name conflict instead of a second container. The hash keeps two tasks apart
// whose ids sanitize or truncate to the same text, and tasks of different
// executors or frameworks apart on one daemon.
func ContainerName(frameworkID, executorID, taskID string) string {
	sum := sha256.Sum256([]byte(frameworkID + "\x00" + executorID + "\x00" + taskID))

	var b strings.Builder
	b.WriteString(NamePrefix)
	n := 0
	for _, r := range taskID {
		if n == maxTaskIDInName {
			break
		}
		if r < 0x80 && validNameChar(byte(r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		n++
	}
	if n > 0 {
		b.WriteByte('-')
	}
	b.WriteString(hex.EncodeToString(sum[:])[:10])
	return b.String()
}

// RunContainerName returns the Docker name of one run of a task's container:
// ContainerName followed by '-' and the run number. A framework may launch a
// finished task's id again, and the earlier run's container is kept for
// --remove-delay (longer when its removal is stuck): without the run number
// the new run's create fails with a name conflict. The name stays
// deterministic within a run, so a retried create still conflicts instead of
// making a second container.
func RunContainerName(frameworkID, executorID, taskID string, run uint64) string {
	return ContainerName(frameworkID, executorID, taskID) + "-" + strconv.FormatUint(run, 10)
}

// validNameChar reports whether Docker accepts c after the first character of
// a container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*). The first character is always
// from NamePrefix.
func validNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '.' || c == '-'
}
