package containerd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/docker/docker/pkg/jsonmessage"
)

// Reasons a pull's own context is cancelled, so that its error says why.
var (
	// ErrPullStalled marks a pull that made no progress for the stall
	// timeout.
	ErrPullStalled = errors.New("pull stalled")
	// errNoWaiters cancels a pull nobody waits for any more.
	errNoWaiters = errors.New("no task waits for the pull any more")
)

// pullFunc performs one pull of ref on ctx, reporting each progress message.
type pullFunc func(ctx context.Context, ref string, progress func(*jsonmessage.JSONMessage)) error

// pullCoordinator runs at most one pull per normalised reference and lets
// every caller that needs the image wait for it with its own context. The
// pull runs on a context of its own, cancelled when its last waiter leaves,
// when it stalls, or after the overall timeout. An entry lives exactly as
// long as its pull: the map never holds finished pulls.
type pullCoordinator struct {
	pull    pullFunc
	timeout time.Duration // overall bound of one pull
	stall   time.Duration // no progress for this long fails the pull
	now     func() time.Time

	// mu guards ops and every pullOp's waiters.
	mu  sync.Mutex
	ops map[string]*pullOp
}

// pullOp is one pull in flight.
type pullOp struct {
	ref     string
	started time.Time
	cancel  context.CancelCauseFunc
	done    chan struct{} // closed once err is set
	err     error

	waiters []*pullWaiter // guarded by pullCoordinator.mu
	prog    pullProgress
}

type pullWaiter struct{ taskID string }

func newPullCoordinator(pull pullFunc, timeout, stall time.Duration) *pullCoordinator {
	return &pullCoordinator{pull: pull, timeout: timeout, stall: stall, now: time.Now, ops: map[string]*pullOp{}}
}

// wait joins the pull of ref in flight, or starts one, and waits for it
// until it ends or ctx does. A caller whose ctx ends gets ctx's error at
// once; the pull goes on for the others and is cancelled when the last one
// has left.
func (pc *pullCoordinator) wait(ctx context.Context, ref, taskID string) error {
	op, w := pc.join(ref, taskID)
	select {
	case <-op.done:
		return op.err
	case <-ctx.Done():
		pc.leave(op, w)
		return fmt.Errorf("pull image %s: stopped waiting: %w", ref, ctx.Err())
	}
}

func (pc *pullCoordinator) join(ref, taskID string) (*pullOp, *pullWaiter) {
	w := &pullWaiter{taskID: taskID}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if op, ok := pc.ops[ref]; ok {
		op.waiters = append(op.waiters, w)
		return op, w
	}
	op := &pullOp{ref: ref, started: pc.now(), done: make(chan struct{}), waiters: []*pullWaiter{w}}
	pc.ops[ref] = op
	// The pull must not end with the caller that happened to start it:
	// its context is its own, bounded by the timeout and cancelled by the
	// last waiter to leave.
	ctx, cancel := context.WithCancelCause(context.Background())
	op.cancel = cancel
	go pc.run(ctx, op)
	return op, w
}

// leave removes w; the last waiter to leave cancels the pull and takes it
// out of the map at once, so a later caller starts a fresh pull instead of
// joining a dying one.
func (pc *pullCoordinator) leave(op *pullOp, w *pullWaiter) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if i := slices.Index(op.waiters, w); i >= 0 {
		op.waiters = slices.Delete(op.waiters, i, i+1)
	}
	if len(op.waiters) == 0 {
		if pc.ops[op.ref] == op {
			delete(pc.ops, op.ref)
		}
		op.cancel(errNoWaiters)
	}
}

func (pc *pullCoordinator) run(ctx context.Context, op *pullOp) {
	defer op.cancel(nil)
	if pc.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, pc.timeout,
			fmt.Errorf("pull image %s: not done after %s", op.ref, pc.timeout))
		defer cancel()
	}
	var stall *time.Timer
	if pc.stall > 0 {
		stall = time.AfterFunc(pc.stall, func() {
			op.cancel(fmt.Errorf("%w: no progress for %s", ErrPullStalled, pc.stall))
		})
		defer stall.Stop()
	}
	err := pc.pull(ctx, op.ref, func(msg *jsonmessage.JSONMessage) {
		if op.prog.observe(msg, pc.now()) && stall != nil {
			stall.Reset(pc.stall)
		}
	})
	if err != nil && ctx.Err() != nil {
		// Say why the pull's context ended (stalled, timed out, nobody
		// waiting) rather than a bare "context canceled".
		if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%w)", cause, err)
		}
	}
	pc.mu.Lock()
	if pc.ops[op.ref] == op {
		delete(pc.ops, op.ref)
	}
	op.err = err
	pc.mu.Unlock()
	close(op.done)
}

// snapshot returns the pulls in flight, oldest first.
func (pc *pullCoordinator) snapshot() []PullInfo {
	pc.mu.Lock()
	out := make([]PullInfo, 0, len(pc.ops))
	ops := make([]*pullOp, 0, len(pc.ops))
	for _, op := range pc.ops {
		info := PullInfo{Image: op.ref, StartedAt: op.started, Waiters: len(op.waiters)}
		for _, w := range op.waiters {
			if w.taskID != "" {
				info.TaskIDs = append(info.TaskIDs, w.taskID)
			}
		}
		out = append(out, info)
		ops = append(ops, op)
	}
	pc.mu.Unlock()
	for i, op := range ops {
		op.prog.fill(&out[i])
	}
	slices.SortFunc(out, func(a, b PullInfo) int { return a.StartedAt.Compare(b.StartedAt) })
	return out
}
