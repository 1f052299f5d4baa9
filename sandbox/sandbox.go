// Package sandbox lays out the files the executor keeps for each task in the
// Mesos sandbox: a directory per task ($MESOS_SANDBOX/tasks/<task_id>) and, in
// it, the task's stdout and stderr as size-capped, rotated log files, so that
// a chatty container cannot fill the agent's disk, and the directory the
// container sees as its sandbox (tasks/<task_id>/sandbox).
//
// A container runs as root and can write anything in its own directory, so
// every file operation here goes through directory descriptors with
// O_NOFOLLOW and O_NONBLOCK, and the log files sit outside the container's
// directory altogether.
//
// It does not decide when a sandbox is removed (that is the cleanup
// package's job) and it does not read container output itself; the caller
// copies Docker's log stream into a RotatingFile.
package sandbox

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// ErrInvalidTaskID means a task id cannot be used as a directory name: it is
// empty, "." or "..", or contains "/" or a NUL byte. Mesos itself accepts such
// ids, so the executor must check before joining one into a path.
var ErrInvalidTaskID = errors.New("task id cannot be used as a directory name")

// TaskDir returns $root/tasks/<taskID>, the task's directory in the sandbox
// at root. It does not create it. It rejects a task id that is empty, ".",
// "..", or contains "/" or a NUL byte, since any of those would put the
// directory elsewhere (or nowhere), and an empty root, which would make the
// path relative to the working directory.
func TaskDir(root, taskID string) (string, error) {
	if root == "" {
		return "", errors.New("task directory: empty sandbox root")
	}
	if taskID == "" || taskID == "." || taskID == ".." || strings.ContainsAny(taskID, "/\x00") {
		return "", fmt.Errorf("task directory for %q: %w", taskID, ErrInvalidTaskID)
	}
	return filepath.Join(root, "tasks", taskID), nil
}
