package reaper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// outputWaitDelay bounds how long Output keeps reading after the process has
// exited, for output still buffered in the pipe; a background child that
// inherited the pipe would otherwise hold Output until it exits too.
const outputWaitDelay = time.Second

// New prepares the process to reap its descendants: it sets
// PR_SET_CHILD_SUBREAPER, unless the process is PID 1 of its PID namespace
// (then it is that namespace's init and orphans come to it anyway). Call it
// early in main, before the first child starts, and run Run. A nil log
// discards.
func New(log *logrus.Entry) (*Reaper, error) {
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = logrus.NewEntry(l)
	}
	r := &Reaper{
		log:     log,
		stopped: make(chan struct{}),
		subs:    make(map[int]*Process),
	}
	if os.Getpid() == 1 {
		log.Info("running as PID 1: the executor is init of its PID namespace and reaps every orphan in it")
		return r, nil
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	log.Info("child subreaper set: orphaned descendants are re-parented to the executor and reaped")
	return r, nil
}

// Run is the process's one reaping loop: on every SIGCHLD, once at start and
// every few seconds it calls wait4(-1, WNOHANG) until no exited child is
// left, delivers the statuses of processes started through Start and counts
// the rest as orphans. It returns nil when ctx ends, after a last drain;
// from then on Start fails with ErrStopped and so do pending Waits.
// It returns ErrAlreadyRunning if a Run is already active in the process.
func (r *Reaper) Run(ctx context.Context) error {
	if !running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer running.Store(false)
	if !r.runCalled.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer func() {
		r.reapMu.Lock()
		close(r.stopped)
		r.reapMu.Unlock()
	}()

	// Subscribed before the first drain, so that an exit between the two
	// raises a signal we receive. One slot is enough: signals coalesce
	// anyway, and every drain reaps everything that has exited.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGCHLD)
	defer signal.Stop(sigs)

	timer := time.NewTimer(sweepInterval)
	defer timer.Stop()
	r.drain()
	for {
		select {
		case <-ctx.Done():
			r.drain()
			return nil
		case <-sigs:
			r.drain()
		case <-timer.C:
			r.drain()
			timer.Reset(sweepInterval)
		}
	}
}

// reapBatch is how many children drain reaps per hold of reapMu. Taking the
// lock once per child made a burst of exits queue behind every Start in
// flight (each holds the read lock across a fork and exec). Holding it for a
// whole flood would stall Start instead: wait4(-1) walks the list of live
// children before it finds a zombie, which with 1,500 live children costs
// ~0.3 ms per reaped child, so a batch holds the lock for ~20 ms at worst.
const reapBatch = 64

// reaped is one child reaped by drain.
type reaped struct {
	pid    int
	status int
	p      *Process // nil for an orphan
}

// drain reaps every child that has exited.
func (r *Reaper) drain() {
	batch := make([]reaped, 0, reapBatch)
	for {
		batch = batch[:0]
		more := r.reapLocked(&batch)
		for _, c := range batch {
			if c.p != nil {
				c.p.status = c.status
				close(c.p.done)
				r.reaped.Add(1)
				continue
			}
			r.orphans.Add(1)
			if r.log.Logger.IsLevelEnabled(logrus.DebugLevel) {
				r.log.WithFields(logrus.Fields{"pid": c.pid, "exit_status": c.status}).Debug("reaped orphan")
			}
		}
		if !more {
			return
		}
	}
}

// reapLocked takes reapMu and reaps up to reapBatch children into batch. It
// reports whether there may be more to reap.
func (r *Reaper) reapLocked(batch *[]reaped) bool {
	r.reapMu.Lock()
	defer r.reapMu.Unlock()
	for len(*batch) < reapBatch {
		var ws unix.WaitStatus
		// __WALL also reaps children whose exit signal is not SIGCHLD
		// (clone children), which would otherwise stay zombies for ever.
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WALL, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			// ECHILD: no children at all; 0: none has exited.
			return false
		}
		// Removed from subs before reapMu is released, and so before the
		// pid can be reused: Signal will not touch it any more.
		r.mu.Lock()
		p := r.subs[pid]
		delete(r.subs, pid)
		r.mu.Unlock()
		*batch = append(*batch, reaped{pid: pid, status: exitStatus(ws), p: p})
	}
	return true
}

// exitStatus is the exit code, or 128+signal for a killed process.
func exitStatus(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	// Stopped or continued: wait4 reports neither without WUNTRACED or
	// WCONTINUED; keep the raw value rather than inventing one.
	return int(ws)
}

// Start starts cmd and registers it, so that Run delivers its exit status to
// the returned Process and to nothing else. cmd must come from exec.Command,
// not exec.CommandContext (ErrCommandContext), and its Stdin, Stdout and
// Stderr must be nil or *os.File (ErrStdio): the reaper reaps the process, so
// the caller must never call cmd.Wait, and os/exec releases its context
// watcher, copying goroutines and pipes only in cmd.Wait. Use Output for
// captured output, and Process.Wait(ctx) plus Process.Signal for a deadline.
//
// Start may be called before Run starts; the exit is then delivered by Run's
// first drain.
func (r *Reaper) Start(cmd *exec.Cmd) (*Process, error) {
	if cmd.Cancel != nil || cmd.WaitDelay != 0 {
		return nil, ErrCommandContext
	}
	for _, s := range []any{cmd.Stdin, cmd.Stdout, cmd.Stderr} {
		if !isFileOrNil(s) {
			return nil, ErrStdio
		}
	}
	p := &Process{
		r:     r,
		cmd:   cmd,
		group: cmd.SysProcAttr != nil && cmd.SysProcAttr.Setpgid && cmd.SysProcAttr.Pgid == 0,
		done:  make(chan struct{}),
	}

	// The read lock is held from before the fork until the pid is in subs:
	// Run's drain takes the write lock around each wait4, so it cannot
	// reap this child in between even if the child exits at once. Without
	// the lock (measured in the design notes: 205 of 2000 lost) the status
	// would go to the orphan counter and Wait would never return. The
	// alternative, parking unclaimed statuses by pid for a while, would
	// hand an orphan's status to a new process that got its recycled pid.
	r.reapMu.RLock()
	defer r.reapMu.RUnlock()
	select {
	case <-r.stopped:
		return nil, ErrStopped
	default:
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p.Pid = cmd.Process.Pid
	r.mu.Lock()
	r.subs[p.Pid] = p
	r.mu.Unlock()
	return p, nil
}

// isFileOrNil reports whether v, one of a Cmd's stdio fields, is passed to
// the child as is, without a copying goroutine.
func isFileOrNil(v any) bool {
	switch f := v.(type) {
	case nil:
		return true
	case *os.File:
		return f != nil
	}
	return false
}

// Signal sends sig to the process if it has not been reaped yet, and returns
// os.ErrProcessDone otherwise. Unlike cmd.Process.Signal on a kernel without
// pidfds, it never signals a recycled pid: the reaper cannot reap the
// process, and so free its pid, while Signal runs.
func (p *Process) Signal(sig syscall.Signal) error {
	return p.kill(p.Pid, sig)
}

// SignalGroup sends sig to the process group the process leads (started with
// SysProcAttr.Setpgid), reaching the children it started too, e.g. to end a
// timed-out health check and everything it spawned. It returns
// ErrNotGroupLeader for other processes and os.ErrProcessDone once the leader
// has been reaped: from then on the group id could in principle be reused.
func (p *Process) SignalGroup(sig syscall.Signal) error {
	if !p.group {
		return ErrNotGroupLeader
	}
	return p.kill(-p.Pid, sig)
}

func (p *Process) kill(target int, sig syscall.Signal) error {
	r := p.r
	r.reapMu.RLock()
	defer r.reapMu.RUnlock()
	r.mu.Lock()
	live := r.subs[p.Pid] == p
	r.mu.Unlock()
	if !live {
		return os.ErrProcessDone
	}
	if err := unix.Kill(target, sig); err != nil {
		return fmt.Errorf("signal %d: %w", target, err)
	}
	return nil
}

// Output starts cmd through the reaper with its stdout and stderr on one
// pipe, and returns the first limit bytes of that output (the rest is read
// and dropped) with the exit status. cmd's Stdout and Stderr must be nil.
//
// When ctx ends first, Output kills the process (its whole group when it was
// started with SysProcAttr.Setpgid, which a command that starts children
// should be), waits for it and returns ctx's error with the status and the
// output so far. After the process exits Output reads what is left in the
// pipe for at most a second, so a background child that inherited the pipe
// cannot hold it.
func (r *Reaper) Output(ctx context.Context, cmd *exec.Cmd, limit int) ([]byte, int, error) {
	if cmd.Stdout != nil || cmd.Stderr != nil {
		return nil, -1, errors.New("reaper: Output needs a command without Stdout and Stderr")
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, -1, err
	}
	defer pr.Close()
	cmd.Stdout, cmd.Stderr = pw, pw
	p, err := r.Start(cmd)
	// The child has its own copy; ours must go so that the reader sees EOF
	// when the child and its descendants are done.
	_ = pw.Close()
	if err != nil {
		return nil, -1, err
	}

	out := &limitedBuffer{max: max(limit, 0)}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		_, _ = io.Copy(out, pr)
	}()

	status, werr := p.Wait(ctx)
	if werr != nil && ctx.Err() != nil {
		if p.group {
			_ = p.SignalGroup(unix.SIGKILL)
		} else {
			_ = p.Signal(unix.SIGKILL)
		}
		// SIGKILL cannot be caught; only a stopped reaper keeps this
		// from returning promptly.
		status, err = p.Wait(context.WithoutCancel(ctx))
		werr = errors.Join(werr, err)
	}
	timer := time.NewTimer(outputWaitDelay)
	select {
	case <-readDone:
	case <-timer.C:
		// Closing interrupts the blocked Read: os.Pipe files are pollable.
		_ = pr.Close()
		<-readDone
	}
	timer.Stop()
	return out.buf, status, werr
}

// limitedBuffer keeps the first max bytes written to it and reports every
// write as complete, so that the pipe is drained to its end.
type limitedBuffer struct {
	max int
	buf []byte
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
