package cleanup

import (
	"errors"
	"strings"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/mdx-executor/mdx/containerd"
)

var (
	// ErrNotOwned means a container lacks this executor's ownership labels
	// (or, for an orphan, that its executor could not be proven dead), so
	// the cleanup refused to remove it.
	ErrNotOwned = errors.New("container not owned by this executor")
	// ErrDrainIncomplete is returned by Remover.Drain when its context ended
	// before every queued removal was done.
	ErrDrainIncomplete = errors.New("removal queue not drained")
)

// outcome is how one removal attempt ended.
type outcome int

const (
	outDone    outcome = iota // removed, already gone, or another caller is removing it
	outRefused                // not ours: never to be retried
	outRunning                // Docker refused without force: retry at once with force
	outBusy                   // a mount or device is still busy: back off, look for holders
	outRetry                  // the daemon answered with another error: back off
	outDown                   // no answer: check whether the daemon is up
)

// classify maps a Docker error from inspect or remove to an outcome. Docker
// says most of this only in the message, so the matching is on text that has
// been stable since Docker 1.x (daemon/delete.go, containerfs/rm.go).
func classify(err error) outcome {
	if err == nil || containerd.IsNotFound(err) {
		return outDone
	}
	msg := strings.ToLower(err.Error())
	if containerd.IsConflict(err) {
		switch {
		case strings.Contains(msg, "already in progress"):
			// A concurrent remove (another worker, the operator, a
			// previous timed-out call of ours) owns it now. If that
			// one fails the container is left "dead" and the sweep
			// queues it again.
			return outDone
		case strings.Contains(msg, "is running"), strings.Contains(msg, "running container"), strings.Contains(msg, "unpause"),
			strings.Contains(msg, "is restarting"), strings.Contains(msg, "stop the container"):
			return outRunning
		}
		return outRetry
	}
	if isBusy(msg) {
		return outBusy
	}
	if cerrdefs.IsInternal(err) || cerrdefs.IsUnavailable(err) || cerrdefs.IsInvalidArgument(err) ||
		cerrdefs.IsPermissionDenied(err) || cerrdefs.IsNotImplemented(err) || cerrdefs.IsUnknown(err) {
		return outRetry
	}
	// No HTTP status, or one this code does not know: the caller pings
	// the daemon before deciding whether this was a failure at all.
	return outDown
}

// isBusy recognises the "still held" family: EBUSY from unmount or rmdir,
// and devicemapper's own wording for a thin device that is still open.
func isBusy(lowerMsg string) bool {
	for _, s := range []string{"device or resource busy", "device is busy", "ebusy"} {
		if strings.Contains(lowerMsg, s) {
			return true
		}
	}
	return false
}
