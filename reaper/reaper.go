package reaper

import (
	"context"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

// metricsNamespace is the executor's metric prefix (cmd/executor uses the
// same).
const metricsNamespace = "mesos_executor"

// sweepInterval is how often Run drains without a SIGCHLD. Signals are not
// queued (many exits can raise one SIGCHLD) but every drain empties the
// whole zombie list, so a lost exit can only come from a signal that never
// arrived at all, e.g. after some library reset SIGCHLD's disposition. The
// tick bounds how long such a zombie lives.
const sweepInterval = 5 * time.Second

// running is set while some Reaper's Run is active. It is process-wide state
// on purpose: SIGCHLD and wait4(-1) are process-wide, and two loops would
// steal each other's exit statuses.
var running atomic.Bool

// Reaper reaps every child of the process and delivers the exit statuses of
// the processes started through it. Create it with New, run Run in one
// goroutine for the life of the executor, and start every child with Start.
type Reaper struct {
	log *logrus.Entry

	// reapMu orders reaping against starting and signalling. Run holds it
	// for writing around each batch of wait4 calls and the removal of the
	// reaped pids from subs; Start holds it for reading across cmd.Start and the
	// registration of the pid, Signal across the liveness check and
	// kill(2). So a pid cannot be reaped between fork and registration
	// (its status would count as an orphan's and Wait would never
	// return), and a pid cannot be reaped, and so reused by another
	// process, between Signal's check and the kill.
	reapMu sync.RWMutex
	// stopped is closed when Run returns; guarded by reapMu for the close.
	stopped chan struct{}
	// runCalled is set by the first Run.
	runCalled atomic.Bool

	// mu guards subs. Concurrent Starts write it under reapMu's read lock.
	mu   sync.Mutex
	subs map[int]*Process

	orphans atomic.Uint64
	reaped  atomic.Uint64 // subscribed processes reaped
}

// Stats are the reaper's counters.
type Stats struct {
	// OrphansReaped counts reaped processes that were not started through
	// Start: orphans re-parented to the executor (or, a bug, children
	// started with plain os/exec).
	OrphansReaped uint64
	// Subscribers is the number of processes started through Start that
	// have not been reaped yet.
	Subscribers int
}

// Stats returns the current counters.
func (r *Reaper) Stats() Stats {
	r.mu.Lock()
	n := len(r.subs)
	r.mu.Unlock()
	return Stats{OrphansReaped: r.orphans.Load(), Subscribers: n}
}

// Collectors returns the reaper's Prometheus metrics, read at scrape time:
// mesos_executor_orphans_reaped_total, mesos_executor_children_reaped_total
// and mesos_executor_children_running.
func (r *Reaper) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Name:      "orphans_reaped_total",
			Help:      "Orphaned processes re-parented to the executor and reaped by it.",
		}, func() float64 { return float64(r.orphans.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Name:      "children_reaped_total",
			Help:      "Processes the executor started itself (health checks, helpers) and reaped.",
		}, func() float64 { return float64(r.reaped.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace,
			Name:      "children_running",
			Help:      "Processes the executor started itself that have not exited yet.",
		}, func() float64 { return float64(r.Stats().Subscribers) }),
	}
}

// Process is a child started through Reaper.Start.
type Process struct {
	// Pid is the process id. Use it rather than cmd.Process.Pid, which
	// Wait resets to -1 when it releases the os.Process.
	Pid int

	r     *Reaper
	cmd   *exec.Cmd
	group bool // the process leads a new process group

	// done is closed once status is set.
	done   chan struct{}
	status int

	release sync.Once
}

// Done returns a channel that is closed when the process has been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits until the process has been reaped and returns its exit status:
// the exit code, or 128+n for a process killed by signal n (as a shell and
// Docker report it). It returns early with ctx's error when ctx ends (the
// process keeps running; Signal it and Wait again), and with ErrStopped when
// Run has returned without reaping the process. Wait may be called any
// number of times, from any goroutine.
//
// Once the process is reaped, Wait releases cmd.Process (the pidfd os/exec
// holds for it), which sets cmd.Process.Pid to -1: use p.Pid, and never
// signal through cmd.Process.
func (p *Process) Wait(ctx context.Context) (int, error) {
	select {
	case <-p.done:
		return p.exited(), nil
	default:
	}
	select {
	case <-p.done:
		return p.exited(), nil
	case <-ctx.Done():
		return -1, ctx.Err()
	case <-p.r.stopped:
		// Run's last drain may have reaped it just before stopping.
		select {
		case <-p.done:
			return p.exited(), nil
		default:
			return -1, ErrStopped
		}
	}
}

// exited releases the os.Process once and returns the status. The pidfd
// os/exec keeps for the process would otherwise stay open until the garbage
// collector finds the os.Process, which the leak test would see. Release
// writes cmd.Process.Pid, so it runs in a caller of Wait, never in the
// reaping goroutine, which would race with the caller reading it.
func (p *Process) exited() int {
	p.release.Do(func() { _ = p.cmd.Process.Release() })
	return p.status
}
