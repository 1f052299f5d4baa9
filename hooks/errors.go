package hooks

import (
	"errors"
	"fmt"
)

// ErrUnsafeDir means a hooks directory is not root-owned or is writable by
// group or others: nothing in it is run.
var ErrUnsafeDir = errors.New("hooks directory is not root-owned or is writable by group or others")

// HookError is the failure of one hook. Its message names the hook and ends
// with the tail of its stderr, ready for a TASK_FAILED message.
type HookError struct {
	Hook       string // the hook's file name, e.g. "10-vlan"
	Status     int    // exit status (128+n for signal n); -1 if it did not run
	TimedOut   bool   // killed because its timeout passed
	Canceled   bool   // killed because the caller's ctx ended (e.g. KILL)
	StderrTail string // the last bytes of its stderr
	Err        error  // a start error, if any
}

func (e *HookError) Error() string {
	var what string
	switch {
	case e.TimedOut:
		what = "timed out and was killed"
	case e.Canceled:
		what = "was stopped"
	case e.Err != nil:
		what = "could not run: " + e.Err.Error()
	default:
		what = fmt.Sprintf("exited with status %d", e.Status)
	}
	msg := fmt.Sprintf("hook %s %s", e.Hook, what)
	if e.StderrTail != "" {
		msg += ": " + e.StderrTail
	}
	return msg
}

func (e *HookError) Unwrap() error { return e.Err }
