package reaper

import "errors"

var (
	// ErrStopped is returned by Start after Run has returned, and by
	// Process.Wait when Run returned before the process was reaped: nobody
	// reaps it any more.
	ErrStopped = errors.New("reaper stopped")
	// ErrAlreadyRunning is returned by Run when another Reaper's Run is active
	// in this process, or when Run is called a second time on one Reaper.
	ErrAlreadyRunning = errors.New("a reaper is already running in this process")
	// ErrStdio is returned by Start for a command whose Stdin, Stdout or
	// Stderr is neither nil nor an *os.File: os/exec would copy through
	// goroutines and pipes that only exec.Cmd.Wait joins and closes.
	ErrStdio = errors.New("command stdio must be nil or *os.File (use Reaper.Output for captured output)")
	// ErrCommandContext is returned by Start for a command with a Cancel
	// func or a WaitDelay (exec.CommandContext sets Cancel): os/exec
	// watches the context in a goroutine that only exec.Cmd.Wait stops.
	// Bound the wait with the ctx of Process.Wait instead.
	ErrCommandContext = errors.New("command has Cancel or WaitDelay (exec.CommandContext); use exec.Command and Process.Wait(ctx)")
	// ErrNotGroupLeader is returned by Process.SignalGroup for a process
	// that was not started as the leader of a new process group.
	ErrNotGroupLeader = errors.New("process is not a process group leader (set SysProcAttr.Setpgid)")
)
