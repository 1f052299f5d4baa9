// Package localagent is a local Mesos agent that speaks the v1 executor HTTP
// API the way the real agent does (src/slave/http.cpp Http::executor,
// src/common/validation.cpp validateExecutorCall, src/slave/slave.cpp
// Slave::subscribe and Slave::statusUpdate), for the executor's tests and for
// `executor demo`.
//
// It serves one framework with one executor. It reproduces the agent's
// response codes, its validation messages, its RecordIO event stream in JSON
// or protobuf, its ACKNOWLEDGED rules (including the updates it never ACKs and
// the events it loses on a broken stream), and its recovery after a restart
// with checkpointing. Faults such as failed UPDATEs, withheld ACKs, dropped
// streams and agent restarts can be scripted.
//
// Non-goals: there is no master or scheduler (terminal updates are never
// acknowledged by a framework, so tasks stay "terminated" for ever), no
// containerizer, no JWT claims checks (Options.AuthToken compares the whole
// token), no LAUNCH_GROUP, no HEARTBEAT
// events (the real agent sends the first one after 30 minutes), and the agent
// never destroys the executor on its own, e.g. after a registration timeout.
package localagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/sirupsen/logrus"
)

// Defaults for the zero values of Options.
const (
	DefaultFrameworkID = "fw-local"
	DefaultExecutorID  = "exec-local"
	DefaultAgentID     = "agent-local"
	DefaultAddr        = "127.0.0.1:0"

	// DefaultReregistrationTimeout is the agent's
	// --executor_reregistration_timeout default (slave/constants.hpp).
	DefaultReregistrationTimeout = 2 * time.Second
)

// Hostname is the agent_info.hostname sent in SUBSCRIBED.
const Hostname = "localhost"

// ContainerID is the container_id sent in SUBSCRIBED.
const ContainerID = "local-container"

var (
	// ErrClosed is returned by Start and Restart after Close.
	ErrClosed = errors.New("local agent closed")
	// ErrNotStarted is returned by Restart before Start.
	ErrNotStarted = errors.New("local agent not started")
)

// Options configures an Agent. Zero values mean the documented defaults.
type Options struct {
	// FrameworkID, ExecutorID and AgentID default to "fw-local",
	// "exec-local" and "agent-local".
	FrameworkID, ExecutorID, AgentID string
	// Capabilities go into SUBSCRIBED.framework_info, e.g. TASK_KILLING_STATE
	// or PARTITION_AWARE (which turns agent-generated TASK_LOST into
	// TASK_DROPPED, as in the real agent).
	Capabilities []mesos.FrameworkInfo_Capability_Type
	// Checkpoint is framework_info.checkpoint; it also decides which
	// recovery variables Env sets.
	Checkpoint bool
	// Log receives one Debug line per call received and event sent; nil
	// discards.
	Log *logrus.Entry
	// Addr is the listen address, default "127.0.0.1:0".
	Addr string
	// AuthToken, when set, turns on executor authentication
	// (--authenticate_http_executors): every call must carry
	// "Authorization: Bearer <AuthToken>" or gets 401, as from the agent's
	// JWT authenticator, and Env passes the token to the executor in
	// MESOS_EXECUTOR_AUTHENTICATION_TOKEN.
	AuthToken string
	// ReregistrationTimeout is --executor_reregistration_timeout: after
	// Restart, non-SUBSCRIBE calls get 503 until it has passed and the
	// executor has re-subscribed. Env reports it as
	// MESOS_SUBSCRIPTION_BACKOFF_MAX. Default 2s.
	ReregistrationTimeout time.Duration
}

// Update is one status update as the agent saw it.
type Update struct {
	Status mesos.TaskStatus
	UUID   []byte
	// Raw holds the bytes of the Call_Update exactly as received, in
	// ContentType. It is nil for updates the agent generated itself
	// (Status.Source is SOURCE_AGENT then).
	Raw      []byte
	Received time.Time
	// Acked reports that the agent sent ACKNOWLEDGED for this update. An
	// ACK sent while no stream is open, or into a broken one, is lost, as
	// in the real agent.
	Acked       bool
	ContentType string
	// Replayed marks an update that came in SUBSCRIBE.unacknowledged_updates.
	Replayed bool
	// Duplicate marks an update whose uuid the agent had already received;
	// the agent ignored it (and ACKed it again if the task is known).
	Duplicate bool
}

// Agent is a local Mesos agent for one framework and one executor. Its
// methods are safe for concurrent use. Updates and tasks survive Stop and
// Restart, as they would in a checkpointing agent.
type Agent struct {
	opts Options
	log  *logrus.Entry

	// streamWG counts running SUBSCRIBE handlers and serveWG the Serve
	// goroutines, so that Stop and Close return only once no goroutine
	// still writes to a dead connection.
	streamWG sync.WaitGroup
	serveWG  sync.WaitGroup

	// mu guards everything that follows.
	mu     sync.Mutex
	closed bool
	// addr is the address bound by Start; Restart binds it again so that
	// the executor's MESOS_AGENT_ENDPOINT stays valid.
	addr string
	srv  *http.Server
	// stream is the executor's current SUBSCRIBE stream, nil before the
	// first SUBSCRIBE and while the agent is stopped.
	stream   *stream
	streams  map[*stream]struct{}
	streamID int

	// registering is the executor's REGISTERING state: true until its first
	// SUBSCRIBE and again after a restart, until it re-subscribes.
	registering bool
	// terminating is set by Shutdown: every later SUBSCRIBE gets SHUTDOWN.
	terminating bool
	// recovering is the agent's RECOVERING state after Restart.
	recovering   bool
	windowPassed bool
	window       *time.Timer

	tasks map[string]*task
	// queue holds the task ids whose LAUNCH waits for SUBSCRIBED, in order.
	queue   []string
	seen    map[string]bool // every status uuid received
	updates []Update
	// updated is closed and replaced whenever updates grows.
	updated chan struct{}

	subscribed     chan struct{}
	subscribeCount int
	subscribeCalls int // valid SUBSCRIBE calls answered with a stream
	lastSubscribe  *executor.Call_Subscribe

	// Scripted faults.
	forceRecovering bool
	failUpdateCode  int
	failUpdateN     int
	withholdAcks    bool
	subscribeCode   int
	subscribeBody   string
	subscribeN      int
	shutdownFirst   bool
	// withholdSubscribedN: streams still to be opened without SUBSCRIBED.
	withholdSubscribedN int
}

// task is what the agent knows about one task.
type task struct {
	info  mesos.TaskInfo
	state mesos.TaskState
	// queued: the LAUNCH has not been sent yet (Executor::queuedTasks).
	queued bool
	// terminated: a terminal update was applied; later updates are dropped
	// (Executor::terminatedTasks).
	terminated bool
}

// New returns an Agent; call Start to serve.
func New(opts Options) *Agent {
	if opts.FrameworkID == "" {
		opts.FrameworkID = DefaultFrameworkID
	}
	if opts.ExecutorID == "" {
		opts.ExecutorID = DefaultExecutorID
	}
	if opts.AgentID == "" {
		opts.AgentID = DefaultAgentID
	}
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.ReregistrationTimeout <= 0 {
		opts.ReregistrationTimeout = DefaultReregistrationTimeout
	}
	log := opts.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = logrus.NewEntry(l)
	}
	return &Agent{
		opts:        opts,
		log:         log.WithField("component", "localagent"),
		streams:     make(map[*stream]struct{}),
		registering: true,
		tasks:       make(map[string]*task),
		seen:        make(map[string]bool),
		updated:     make(chan struct{}),
		subscribed:  make(chan struct{}),
	}
}

// Start listens on Options.Addr and serves POST /api/v1/executor and its
// libprocess alias /slave(1)/api/v1/executor.
func (a *Agent) Start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	if a.srv != nil {
		return errors.New("local agent already started")
	}
	return a.serveLocked(a.opts.Addr)
}

// serveLocked binds addr and serves on it. a.mu must be held.
func (a *Agent) serveLocked(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	a.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(a.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	a.srv = srv
	a.serveWG.Add(1)
	go func() {
		defer a.serveWG.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.WithError(err).Warn("serve executor API")
		}
	}()
	return nil
}

// Endpoint returns the bound "ip:port" (MESOS_AGENT_ENDPOINT); empty before
// Start.
func (a *Agent) Endpoint() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addr
}

// Stop simulates the agent process dying: it closes the listener and every
// connection, including the SUBSCRIBE stream, abruptly. State is kept as a
// checkpointing agent would keep it: tasks still waiting for their LAUNCH
// count as launched from now on, and the executor must re-subscribe.
func (a *Agent) Stop() {
	a.mu.Lock()
	srv := a.srv
	if srv == nil {
		a.mu.Unlock()
		return
	}
	a.srv = nil
	a.stopLocked()
	a.mu.Unlock()

	if err := srv.Close(); err != nil {
		a.log.WithError(err).Debug("close server")
	}
	a.streamWG.Wait()
	a.serveWG.Wait()
}

// stopLocked ends all streams and forgets the recovery timer. a.mu must be
// held.
func (a *Agent) stopLocked() {
	for s := range a.streams {
		s.end(true)
	}
	a.stream = nil
	if a.window != nil {
		a.window.Stop()
		a.window = nil
	}
	// The agent checkpoints a task before queueing it and recovers it as
	// launched (Executor::recoverTask), so a task whose LAUNCH was never
	// sent is STAGING-but-launched after the restart, and becomes TASK_LOST
	// when the executor re-subscribes without it.
	for _, id := range a.queue {
		a.tasks[id].queued = false
	}
	a.queue = nil
	a.registering = true
}

// Restart stops the agent if it is running, then serves again on the same
// port as an agent recovering with checkpointing: SUBSCRIBE is accepted, but
// every other call (except HEARTBEAT) gets 503 until the executor has
// re-subscribed and Options.ReregistrationTimeout has passed.
func (a *Agent) Restart() error {
	a.Stop()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	if a.addr == "" {
		return ErrNotStarted
	}
	if err := a.serveLocked(a.addr); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	a.recovering = true
	a.windowPassed = false
	a.window = time.AfterFunc(a.opts.ReregistrationTimeout, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.windowPassed = true
		a.maybeRecoveredLocked()
	})
	return nil
}

// maybeRecoveredLocked leaves RECOVERING once the executor is back and the
// reregistration window is over. a.mu must be held.
func (a *Agent) maybeRecoveredLocked() {
	if a.recovering && a.windowPassed && !a.registering {
		a.recovering = false
		a.log.Debug("recovery complete")
	}
}

// Close stops the agent for good.
func (a *Agent) Close() error {
	a.Stop()
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	return nil
}

// Launch hands a task to the executor as a LAUNCH event: at once when the
// executor is subscribed, otherwise after its next SUBSCRIBED, as the agent
// queues tasks for a registering executor. The task is known to the agent
// as TASK_STAGING from now on. task.agent_id is set to this agent's id, as
// the master only accepts tasks for the offered agent.
func (a *Agent) Launch(t mesos.TaskInfo) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t.AgentID = mesos.AgentID{Value: a.opts.AgentID}
	id := t.TaskID.Value
	a.tasks[id] = &task{info: t, state: mesos.TASK_STAGING, queued: true}
	if a.registering || a.stream == nil {
		a.queue = append(a.queue, id)
		return
	}
	a.launchLocked(id)
}

// launchLocked sends the LAUNCH for a queued task. a.mu must be held.
func (a *Agent) launchLocked(id string) {
	t := a.tasks[id]
	if t == nil || !t.queued {
		return // killed before delivery
	}
	t.queued = false
	a.sendLocked(&executor.Event{
		Type:   executor.Event_LAUNCH,
		Launch: &executor.Event_Launch{Task: t.info},
	})
}

// Kill asks the executor to kill a task with an optional kill policy
// override. As in Slave::killTask: while the agent recovers, or after
// Shutdown, the kill is ignored; an unknown task gets an agent-generated
// TASK_LOST (TASK_DROPPED if PARTITION_AWARE); a task not yet delivered, or
// any task while the executor is not subscribed, gets an agent-generated
// TASK_KILLED with REASON_TASK_KILLED_DURING_LAUNCH; otherwise a KILL event is
// sent, and lost if the stream is broken.
func (a *Agent) Kill(taskID string, policy *mesos.KillPolicy) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.recovering {
		a.log.WithField("task_id", taskID).Debug("kill ignored: agent is recovering")
		return
	}
	t := a.tasks[taskID]
	switch {
	case t == nil:
		// The agent cannot tell which executor the task belongs to and
		// reports it as never launched.
		a.agentUpdateLocked(taskID, a.lostStateLocked(), mesos.REASON_EXECUTOR_TERMINATED,
			"Cannot find executor")
		return
	case a.terminating:
		return
	case t.queued || a.registering:
		// A terminal update for a task that is already terminated is
		// dropped by Executor::updateTaskState.
		if !t.terminated {
			a.agentUpdateLocked(taskID, mesos.TASK_KILLED, mesos.REASON_TASK_KILLED_DURING_LAUNCH,
				"Killed before delivery to the executor")
		}
		return
	}
	a.sendLocked(&executor.Event{
		Type: executor.Event_KILL,
		Kill: &executor.Event_Kill{TaskID: mesos.TaskID{Value: taskID}, KillPolicy: policy},
	})
}

// Shutdown sends SHUTDOWN (lost if no stream is open) and marks the executor
// TERMINATING: every later SUBSCRIBE is answered with SHUTDOWN only.
func (a *Agent) Shutdown() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.terminating = true
	a.sendLocked(&executor.Event{Type: executor.Event_SHUTDOWN})
}

// SendMessage sends a framework MESSAGE. Like the real agent it drops the
// message unless the agent is running and the executor subscribed.
func (a *Agent) SendMessage(data []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.recovering || a.registering || a.terminating {
		a.log.Debug("message dropped: executor not running")
		return
	}
	a.sendLocked(&executor.Event{
		Type:    executor.Event_MESSAGE,
		Message: &executor.Event_Message{Data: append([]byte(nil), data...)},
	})
}

// sendLocked queues an event on the current stream; with no stream it is
// lost, as Executor::send drops events for a disconnected executor. a.mu
// must be held.
func (a *Agent) sendLocked(ev *executor.Event) {
	if a.stream == nil {
		a.log.WithField("event", ev.Type.String()).Debug("event lost: no stream")
		return
	}
	a.stream.send(ev)
}

// Updates returns every update the agent accepted (202) or generated, in
// arrival order. Treat the statuses as read-only.
func (a *Agent) Updates() []Update {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Update(nil), a.updates...)
}

// WaitUpdate returns the first update, already received or future, for
// which match returns true, or the context's error.
func (a *Agent) WaitUpdate(ctx context.Context, match func(Update) bool) (Update, error) {
	next := 0
	for {
		a.mu.Lock()
		pending := a.updates[next:]
		ch := a.updated
		a.mu.Unlock()
		// match runs without the lock so that it may call back into a.
		for _, u := range pending {
			if match(u) {
				return u, nil
			}
		}
		next += len(pending)
		select {
		case <-ctx.Done():
			return Update{}, fmt.Errorf("wait for update: %w", ctx.Err())
		case <-ch:
		}
	}
}

// TaskState returns the latest state the agent knows for a task.
func (a *Agent) TaskState(taskID string) (mesos.TaskState, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.tasks[taskID]
	if !ok {
		return 0, false
	}
	return t.state, true
}

// Subscribed is closed when the executor first receives SUBSCRIBED.
func (a *Agent) Subscribed() <-chan struct{} { return a.subscribed }

// SubscribeCount returns how many SUBSCRIBE calls got SUBSCRIBED.
func (a *Agent) SubscribeCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.subscribeCount
}

// LastSubscribe returns the body of the last SUBSCRIBE that got SUBSCRIBED
// (its unacknowledged_updates and unacknowledged_tasks), or nil.
func (a *Agent) LastSubscribe() *executor.Call_Subscribe {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastSubscribe
}

// FailNextUpdates answers the next n valid UPDATE calls with code (e.g. 503)
// without recording them.
func (a *Agent) FailNextUpdates(code int, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failUpdateCode, a.failUpdateN = code, n
}

// WithholdAcks makes the agent accept updates without sending ACKNOWLEDGED
// while on. Turning it off re-sends nothing: the executor has to replay the
// updates in its next SUBSCRIBE, as with an ACK lost on a broken stream.
func (a *Agent) WithholdAcks(on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.withholdAcks = on
}

// DropStream closes the current SUBSCRIBE stream abruptly (the connection
// is closed without the final chunk). The agent still considers the
// executor subscribed, so events sent until it re-subscribes are lost.
func (a *Agent) DropStream() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stream != nil {
		a.stream.end(true)
	}
}

// SetRecovering makes every call get 503 "Agent has not finished recovery",
// as while the agent's containerizer recovers.
func (a *Agent) SetRecovering(on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.forceRecovering = on
}

// SetSubscribeStatus answers the next n valid SUBSCRIBE calls with code and
// body, e.g. 400 "Executor cannot be found".
func (a *Agent) SetSubscribeStatus(code int, body string, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.subscribeCode, a.subscribeBody, a.subscribeN = code, body, n
}

// ShutdownFirst answers the next SUBSCRIBE with a 200 stream whose only
// event is SHUTDOWN, then closes it, as an agent does for a terminating
// executor or framework.
func (a *Agent) ShutdownFirst() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.shutdownFirst = true
}

// WithholdSubscribed answers the next n valid SUBSCRIBE calls with 200 and a
// stream that stays open but never carries SUBSCRIBED (nor anything else),
// as when the event is lost between agent and executor. The agent's state
// does not change: the executor stays unsubscribed and must SUBSCRIBE again.
func (a *Agent) WithholdSubscribed(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.withholdSubscribedN = n
}

// SubscribeCalls returns how many valid SUBSCRIBE calls got a 200 stream,
// with or without SUBSCRIBED (SubscribeCount counts only the latter).
func (a *Agent) SubscribeCalls() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.subscribeCalls
}
