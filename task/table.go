package task

import (
	"fmt"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/sandbox"
)

// phase is the manager's view of one task run, finer than the Mesos state it
// reports: Mesos has one STARTING for "pulling", "creating" and "starting".
type phase int

const (
	phaseLaunching phase = iota // STARTING sent; prepare/pull/create/start in flight
	phaseRunning                // the container runs (RUNNING sent unless a kill came first)
	phaseExiting                // its exit is known; the log stream drains or a late OOM report is awaited
	phaseTerminal               // the terminal update is sent; nothing changes any more
)

func (p phase) String() string {
	switch p {
	case phaseLaunching:
		return "launching"
	case phaseRunning:
		return "running"
	case phaseExiting:
		return "exiting"
	case phaseTerminal:
		return "terminal"
	}
	return fmt.Sprintf("phase(%d)", int(p))
}

// phaseMoves lists the phases each phase may move to.
var phaseMoves = map[phase][]phase{
	phaseLaunching: {phaseRunning, phaseTerminal},
	phaseRunning:   {phaseExiting, phaseTerminal},
	phaseExiting:   {phaseTerminal},
}

// enter moves the task to phase p, or says why it cannot.
func (t *task) enter(p phase) error {
	for _, next := range phaseMoves[t.phase] {
		if next == p {
			t.phase = p
			return nil
		}
	}
	return fmt.Errorf("task %s cannot move from %s to %s", t.id, t.phase, p)
}

type killCause int

const (
	causeFramework killCause = iota + 1
	causeShutdown
	causeMaxCompletion
	causeHealth
)

func (c killCause) String() string {
	return [...]string{"", "framework", "shutdown", "max_completion_time", "health"}[c]
}

// killState is a kill in progress: why, and when SIGKILL is due.
type killState struct {
	cause    killCause
	deadline time.Time
}

// oomState records what is known of an OOM kill, whose report from Docker
// can trail the exit.
type oomState int

const (
	oomUnknown  oomState = iota
	oomReported          // Docker or the cgroup said OOM
	oomWaited            // a SIGKILL exit waited once for a late report
)

// task is one run of a task id. It is owned by the Manager's loop goroutine.
type task struct {
	id     string
	gen    uint64 // the run's number in this executor, unique
	info   *mesos.TaskInfo
	cfg    launchConfig
	log    *logrus.Entry
	state  mesos.TaskState
	phase  phase
	reason string
	msg    string

	containerID string
	ip          string // the first address: Docker's, else the first CNI one
	dockerIP    string
	gated       *gated // a gated run's gate and CNI results, until Stop
	launchStep  string // a gated run's current step ("cni NAME", "hook NAME", "release")
	pid         int
	stopSignal  string
	healthy     *bool
	checkStatus *mesos.CheckStatusInfo // carried on every update once set
	healthWhy   string                 // the failing probe's message when a health kill started
	exitCode    *int
	startedAt   time.Time
	finishedAt  time.Time
	history     []HistoryEntry
	unacked     map[string]struct{} // uuids of updates the agent has not acknowledged

	files        *sandbox.TaskFiles // the run's log files, from the launch
	cancelLaunch func()
	cancelLogs   func()
	logsDone     chan struct{}
	exitSeen     chan struct{}    // closed by the loop when the container's exit is known
	pendingExit  *containerd.Exit // an exit seen before the start was confirmed
	oom          oomState

	kill         *killState // nil until a kill starts
	killTimer    *time.Timer
	timerGen     int
	maxTimer     *time.Timer
	removeQueued bool
}

func (t *task) killing() bool { return t.kill != nil }

func (t *task) started() bool { return t.phase == phaseRunning || t.phase == phaseExiting }

// release stops the task's timers and cancels its launch and log follower.
// The log follower closes the files when it ends.
func (t *task) release() {
	for _, tm := range []*time.Timer{t.killTimer, t.maxTimer} {
		if tm != nil {
			tm.Stop()
		}
	}
	if t.cancelLaunch != nil {
		t.cancelLaunch()
	}
	if t.cancelLogs != nil {
		t.cancelLogs()
	}
}

// record is what stays of a task once it has left the table: enough for
// /state, `executor status`, the sandbox sweep and a late KILL.
type record struct {
	view View
	gen  uint64
}

// finishedTable holds records of finished tasks, bounded by count and age:
// a FIFO of ids in the order they finished.
type finishedTable struct {
	max    int
	maxAge time.Duration
	byID   map[string]record
	order  []finishedRef
}

type finishedRef struct {
	id  string
	gen uint64
	at  time.Time
}

func newFinishedTable(max int, maxAge time.Duration) *finishedTable {
	return &finishedTable{max: max, maxAge: maxAge, byID: map[string]record{}}
}

// add keeps r and returns the ids of the records it pushed out.
func (f *finishedTable) add(r record, now time.Time) []string {
	f.byID[r.view.TaskID] = r
	f.order = append(f.order, finishedRef{id: r.view.TaskID, gen: r.gen, at: now})
	return f.trim(now)
}

func (f *finishedTable) get(id string) (record, bool) {
	r, ok := f.byID[id]
	return r, ok
}

func (f *finishedTable) remove(id string) { delete(f.byID, id) }

// trim drops the oldest records beyond the count or the age, and returns the
// ids dropped.
func (f *finishedTable) trim(now time.Time) []string {
	var dropped []string
	for len(f.order) > 0 {
		head := f.order[0]
		r, live := f.byID[head.id]
		live = live && r.gen == head.gen
		if live && len(f.byID) <= f.max && now.Sub(head.at) <= f.maxAge {
			break
		}
		f.order = f.order[1:]
		if live {
			delete(f.byID, head.id)
			dropped = append(dropped, head.id)
		}
	}
	// Reslicing from the front leaks the head of the backing array; copy
	// once it is mostly garbage.
	if cap(f.order) > 64 && len(f.order) < cap(f.order)/4 {
		f.order = append([]finishedRef(nil), f.order...)
	}
	return dropped
}
