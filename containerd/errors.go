package containerd

import (
	"errors"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
)

var (
	// ErrNoLabels is returned by List and WatchExits when called without a
	// label filter: the adapter never looks at containers it cannot prove to
	// be the executor's own.
	ErrNoLabels = errors.New("a label filter is required")
)

// IsNotFound reports whether err says that a container or image does not
// exist.
func IsNotFound(err error) bool {
	return cerrdefs.IsNotFound(err)
}

// IsConflict reports whether err is a Docker 409, e.g. a container name that
// is already in use or a container that is not running.
func IsConflict(err error) bool {
	return cerrdefs.IsConflict(err)
}

// isNotRunning recognises the 409 that ContainerKill answers for a container
// that has already exited.
func isNotRunning(err error) bool {
	return IsConflict(err) && strings.Contains(err.Error(), "is not running")
}

// isRemovalInProgress recognises the 409 a second concurrent remove gets.
func isRemovalInProgress(err error) bool {
	return IsConflict(err) && strings.Contains(err.Error(), "already in progress")
}

// present turns an inspect's error into whether the object exists: not
// found is an answer, not an error.
func present(err error, what string) (bool, error) {
	switch {
	case err == nil:
		return true, nil
	case IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("inspect %s: %w", what, err)
	}
}
