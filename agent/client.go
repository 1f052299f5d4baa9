package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/internal/backoff"
)

// Client is the executor's link to the agent. Create it with New, start it
// with Run, read agent events from Events and hand status updates to Update.
type Client struct {
	cfg        Config
	log        *logrus.Entry
	streamHTTP *http.Client // SUBSCRIBE: long-lived, no overall timeout
	callHTTP   *http.Client // UPDATE and HEARTBEAT: keep-alive, bounded
	events     chan *executor.Event
	wake       chan struct{} // nudges the sender; buffered 1

	// OnAck, when set before Run, is called for every acknowledged update
	// with the time from its creation to its ACK.
	OnAck func(taskID string, state mesos.TaskState, rtt time.Duration)
	// OnReject, when set before Run, is called for every update the agent
	// refused for good (400 or another 4xx that is not retried): the update
	// has left the outbox and will never be acknowledged, so the task
	// manager must not wait for its ACK.
	OnReject func(taskID string, state mesos.TaskState, uuid []byte, err error)

	// droppedEvents counts events refused by validateEvent and
	// rejectedUpdates the updates the agent refused for good.
	droppedEvents   atomic.Uint64
	rejectedUpdates atomic.Uint64

	mu sync.Mutex
	// mu guards everything that follows.
	outbox       []*pending // unacknowledged updates, oldest first
	unackedTasks []mesos.TaskInfo
	subscribed   bool
	gen          uint64             // counts accepted SUBSCRIBEs
	streamCancel context.CancelFunc // ends the current stream (dead-link detection)
	shutdown     bool               // SHUTDOWN received: a lost stream is no longer fatal
	reconnects   uint64
	changed      chan struct{} // closed and replaced whenever the outbox shrinks
}

// pending is one update waiting for its ACK. Its Call_Update is built once
// and never changed, so every resend and every SUBSCRIBE carries the same
// bytes and uuid.
type pending struct {
	update    executor.Call_Update
	uuid      string
	taskID    string
	state     mesos.TaskState
	created   time.Time
	delivered bool // accepted by the agent, by a 202 or inside a SUBSCRIBE
}

// Stats is a point-in-time view of the link for /state and /metrics.
type Stats struct {
	Connected  bool
	Unacked    []PendingUpdate
	Reconnects uint64
	// DroppedEvents counts events from the agent that lacked their payload
	// or a required id and were not passed on.
	DroppedEvents uint64
	// RejectedUpdates counts status updates the agent refused for good.
	RejectedUpdates uint64
}

// PendingUpdate describes one unacknowledged update.
type PendingUpdate struct {
	TaskID string
	State  mesos.TaskState
	UUID   string
	Age    time.Duration
}

// New returns a Client; it does not connect until Run.
func New(cfg Config, log *logrus.Entry) *Client {
	cfg = cfg.withDefaults()
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 10 * time.Second}
	dial := dialer.DialContext
	if cfg.DomainSocket != "" {
		sock := cfg.DomainSocket
		dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", sock)
		}
	}
	transport := func() *http.Transport {
		return &http.Transport{
			DialContext:         dial,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
			// The stream's response headers arrive at once; only the body
			// is long-lived.
			ResponseHeaderTimeout: 30 * time.Second,
		}
	}
	return &Client{
		cfg:        cfg,
		log:        log,
		streamHTTP: &http.Client{Transport: transport()},
		callHTTP:   &http.Client{Transport: transport(), Timeout: cfg.CallTimeout},
		events:     make(chan *executor.Event, 256),
		wake:       make(chan struct{}, 1),
		changed:    make(chan struct{}),
	}
}

// Events delivers the agent's events in stream order. HEARTBEAT, ERROR and
// event types this version does not know (UNKNOWN, or values added by a newer
// agent) are consumed and logged here; everything else is passed on.
func (c *Client) Events() <-chan *executor.Event { return c.events }

// Update queues a status update for the agent and returns its uuid. It fills
// in the fields the agent requires (a fresh random v4 uuid, SOURCE_EXECUTOR,
// executor_id, timestamp) and never blocks on the network: the update is
// sent, retried and replayed until the agent acknowledges it.
func (c *Client) Update(status mesos.TaskStatus) []byte {
	// The value copy still shares pointers and slices (Data, Message,
	// Labels, ...) with the caller; a later change by the caller would make
	// a resend or a replay differ from what the agent already has under the
	// same uuid. Deep-copy so the outbox owns its bytes.
	st := *proto.Clone(&status).(*mesos.TaskStatus)
	id := uuid.New()
	st.UUID = id[:]
	st.Source = mesos.SOURCE_EXECUTOR.Enum()
	st.ExecutorID = &mesos.ExecutorID{Value: c.cfg.ExecutorID}
	now := time.Now()
	ts := float64(now.UnixNano()) / 1e9
	st.Timestamp = &ts
	p := &pending{
		update:  executor.Call_Update{Status: st},
		uuid:    string(st.UUID),
		taskID:  st.TaskID.Value,
		state:   st.GetState(),
		created: now,
	}
	c.mu.Lock()
	c.outbox = append(c.outbox, p)
	c.mu.Unlock()
	c.nudge()
	// A copy: the caller must not be able to change the outbox's uuid.
	return append([]byte(nil), st.UUID...)
}

// Stats returns the link's state.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{Connected: c.subscribed, Reconnects: c.reconnects,
		DroppedEvents: c.droppedEvents.Load(), RejectedUpdates: c.rejectedUpdates.Load()}
	now := time.Now()
	for _, p := range c.outbox {
		s.Unacked = append(s.Unacked, PendingUpdate{
			TaskID: p.taskID, State: p.state, Age: now.Sub(p.created),
			UUID: uuid.UUID([]byte(p.uuid)).String(),
		})
	}
	return s
}

// Unacknowledged returns the number of updates the agent has not yet ACKed.
func (c *Client) Unacknowledged() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.outbox)
}

// WaitDrained blocks until every queued update is acknowledged or ctx ends.
func (c *Client) WaitDrained(ctx context.Context) error {
	for {
		c.mu.Lock()
		n, ch := len(c.outbox), c.changed
		c.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d status updates still unacknowledged: %w", n, ctx.Err())
		case <-ch:
		}
	}
}

func (c *Client) nudge() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run subscribes and keeps the link up until ctx ends (nil) or the link is
// lost for good (ErrDisconnected, ErrRecoveryTimeout, ErrUnknownExecutor). It
// closes Events when it returns.
func (c *Client) Run(ctx context.Context) error {
	defer close(c.events)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); c.sendLoop(ctx) }()

	// Until the first SUBSCRIBE is accepted the agent's registration timeout
	// applies; after a disconnect, one recovery deadline from the first
	// failure (not from the last attempt, which is the mesos-go mistake).
	deadline := time.Now().Add(c.cfg.RegistrationTimeout)
	everSubscribed := false
	for {
		subscribed, err := c.subscribeOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrUnknownExecutor) {
			return err
		}
		c.mu.Lock()
		shutdown := c.shutdown
		c.mu.Unlock()
		if subscribed {
			everSubscribed = true
			c.mu.Lock()
			c.reconnects++
			c.mu.Unlock()
			if !c.cfg.Checkpoint && !shutdown {
				// Keep the cause: "garbage in the event stream" and "agent
				// closed the event stream" call for different fixes.
				// Returned, so not logged as well (house style).
				return fmt.Errorf("%w: %w", ErrDisconnected, err)
			}
			c.log.WithError(err).Warn("lost the agent's event stream")
			deadline = time.Now().Add(c.cfg.RecoveryTimeout)
		} else if errors.Is(err, errNoSubscribed) {
			c.log.WithError(err).Warn("agent accepted SUBSCRIBE but sent no SUBSCRIBED; subscribing again")
		} else {
			c.log.WithError(err).Debug("subscribe attempt failed")
		}
		if time.Now().After(deadline) && !shutdown {
			if everSubscribed {
				return fmt.Errorf("%w (%s): %w", ErrRecoveryTimeout, c.cfg.RecoveryTimeout, err)
			}
			return fmt.Errorf("could not subscribe within %s: %w", c.cfg.RegistrationTimeout, err)
		}
		delay := c.retryDelay()
		if !subscribed && errors.Is(err, errNoSubscribed) {
			// The wait for SUBSCRIBED was this attempt's delay: SUBSCRIBE
			// goes out again at once, so once a second while the agent
			// keeps answering without SUBSCRIBED, as Mesos's own
			// executors do (doReliableRegistration).
			delay = 0
		}
		if err := sleepCtx(ctx, delay); err != nil {
			return nil
		}
	}
}

// retryDelay is uniform in [50ms, min(1s, SubscriptionBackoffMax)], so that
// at least one attempt lands in every re-registration window after an agent
// restart (an exponential backoff misses the 2 s default window).
func (c *Client) retryDelay() time.Duration {
	hi := min(time.Second, c.cfg.SubscriptionBackoffMax)
	lo := 50 * time.Millisecond
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo)
}

// errNoSubscribed ends a stream whose SUBSCRIBED event did not arrive within
// Config.SubscribedTimeout of the 200.
var errNoSubscribed = errors.New("no SUBSCRIBED event after the agent accepted SUBSCRIBE")

// session is one SUBSCRIBE's stream.
type session struct {
	included     []*pending // the updates replayed in this SUBSCRIBE
	unackedTasks int        // the number of tasks it reported
	cancel       context.CancelFunc
	// noSubscribed ends the stream when SUBSCRIBED is late; stopped by
	// the SUBSCRIBED event.
	noSubscribed *time.Timer
	subscribed   bool // SUBSCRIBED arrived; read and written by readStream only
}

// subscribeOnce makes one SUBSCRIBE and reads its stream until it ends. It
// reports whether the agent confirmed the subscription with SUBSCRIBED: a
// 200 alone is not a subscription (a stream that never says SUBSCRIBED is
// ended after Config.SubscribedTimeout and SUBSCRIBE is sent again).
func (c *Client) subscribeOnce(ctx context.Context) (bool, error) {
	c.mu.Lock()
	sub := &executor.Call_Subscribe{}
	included := make([]*pending, 0, len(c.outbox))
	for _, p := range c.outbox {
		sub.UnacknowledgedUpdates = append(sub.UnacknowledgedUpdates, p.update)
		included = append(included, p)
	}
	sub.UnacknowledgedTasks = append(sub.UnacknowledgedTasks, c.unackedTasks...)
	c.mu.Unlock()

	call := c.newCall(executor.Call_SUBSCRIBE)
	call.Subscribe = sub
	// The heartbeat ends a stream with its own failure as the cause, which
	// says more than the "context canceled" the stream's read then gets.
	streamCtx, cancelCause := context.WithCancelCause(ctx)
	cancel := func() { cancelCause(nil) }
	defer cancel()
	req, err := c.request(streamCtx, call)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", c.cfg.ContentType)
	resp, err := c.streamHTTP.Do(req)
	if err != nil {
		return false, fmt.Errorf("subscribe: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body := readSnippet(resp.Body)
		err := fmt.Errorf("subscribe: agent answered %s: %s", resp.Status, body)
		if resp.StatusCode == http.StatusBadRequest {
			// "Framework cannot be found" / "Executor cannot be found":
			// the agent has forgotten us; retrying would loop forever.
			return false, fmt.Errorf("%w: %s: %s", ErrUnknownExecutor, resp.Status, body)
		}
		return false, err
	}

	sess := &session{included: included, unackedTasks: len(sub.UnacknowledgedTasks), cancel: cancel}
	sess.noSubscribed = time.AfterFunc(c.cfg.SubscribedTimeout, func() {
		cancelCause(fmt.Errorf("%w within %s", errNoSubscribed, c.cfg.SubscribedTimeout))
	})
	defer sess.noSubscribed.Stop()
	defer func() {
		c.mu.Lock()
		c.subscribed = false
		c.streamCancel = nil
		c.mu.Unlock()
	}()

	hbDone := make(chan struct{})
	go func() { defer close(hbDone); c.heartbeatLoop(streamCtx, cancelCause) }()
	defer func() { cancel(); <-hbDone }()

	err = c.readStream(ctx, resp, sess)
	if cause := context.Cause(streamCtx); ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	return sess.subscribed, err
}

// onSubscribed makes the link subscribed once the stream's SUBSCRIBED event
// has arrived. It returns false when the event came after the deadline
// (the stream is being ended already).
func (c *Client) onSubscribed(sess *session) bool {
	if sess.subscribed {
		return true // a repeated SUBSCRIBED changes nothing
	}
	if !sess.noSubscribed.Stop() {
		return false
	}
	sess.subscribed = true
	c.mu.Lock()
	c.subscribed = true
	c.gen++
	c.streamCancel = sess.cancel
	for _, p := range sess.included {
		p.delivered = true
	}
	c.mu.Unlock()
	c.log.WithField("replayed_updates", len(sess.included)).WithField("unacknowledged_tasks", sess.unackedTasks).Info("subscribed to the agent")
	c.nudge()
	return true
}

func (c *Client) readStream(ctx context.Context, resp *http.Response, sess *session) error {
	// Decode by the media type the agent chose. Comparing the raw header
	// would decode "application/json; charset=utf-8" as protobuf and skip
	// every event one by one; anything that is neither type is not an
	// executor API stream at all (e.g. a proxy's error page with 200).
	ct := resp.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	decode := decoderFor(mt)
	if decode == nil {
		return fmt.Errorf("event stream has Content-Type %q, want %s or %s", ct, ContentTypeProtobuf, ContentTypeJSON)
	}
	fr := newFrameReader(resp.Body, c.cfg.MaxFrameSize)
	for {
		frame, err := fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("agent closed the event stream")
			}
			if ferr := frameError(err, c.cfg.MaxFrameSize); ferr != nil {
				return ferr
			}
			return fmt.Errorf("read event stream: %w", err)
		}
		ev, err := decode(frame)
		if errors.Is(err, errEventInvalid) && ev.GetType() == executor.Event_SUBSCRIBED {
			// Without its payload the subscription is not confirmed and
			// the task manager learns no framework capabilities: a
			// protocol error on this stream, which is then re-opened.
			c.droppedEvents.Add(1)
			return fmt.Errorf("protocol error in the event stream: %w", err)
		}
		if err != nil {
			// One undecodable or incomplete event must not take the
			// executor down (nor reach the task manager); the stream
			// framing is intact, so carry on with the next.
			c.droppedEvents.Add(1)
			c.log.WithError(err).WithField("frame_bytes", len(frame)).Error("dropped an event from the agent")
			continue
		}
		if ev.GetType() == executor.Event_SUBSCRIBED && !c.onSubscribed(sess) {
			return fmt.Errorf("%w within %s (it came later)", errNoSubscribed, c.cfg.SubscribedTimeout)
		}
		if !c.handleEvent(ev) {
			continue
		}
		select {
		case c.events <- ev:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// handleEvent updates the link's own state from an event and reports
// whether the event should be passed on.
func (c *Client) handleEvent(ev *executor.Event) bool {
	switch ev.GetType() {
	case executor.Event_HEARTBEAT:
		return false
	case executor.Event_ERROR:
		c.log.WithField("message", ev.GetError().GetMessage()).Warn("agent sent an ERROR event")
		return false
	case executor.Event_LAUNCH:
		if l := ev.GetLaunch(); l != nil {
			c.mu.Lock()
			c.addUnackedTaskLocked(l.Task)
			c.mu.Unlock()
		}
	case executor.Event_LAUNCH_GROUP:
		if l := ev.GetLaunchGroup(); l != nil {
			c.mu.Lock()
			for _, t := range l.TaskGroup.Tasks {
				c.addUnackedTaskLocked(t)
			}
			c.mu.Unlock()
		}
	case executor.Event_ACKNOWLEDGED:
		if a := ev.GetAcknowledged(); a != nil {
			c.acknowledge(a.TaskID.Value, a.UUID)
		}
	case executor.Event_SHUTDOWN:
		c.mu.Lock()
		c.shutdown = true
		c.mu.Unlock()
	case executor.Event_UNKNOWN:
		c.log.Warn("agent sent an event of unknown type; ignored")
		return false
	default:
		// protobuf keeps an enum value it does not know, so a newer
		// agent's event type arrives here with a bare number. Ignore it
		// as the protocol asks (MESOS-4997) instead of handing the task
		// manager an event it cannot interpret.
		if _, known := executor.Event_Type_name[int32(ev.GetType())]; !known {
			c.log.WithField("event_type", int32(ev.GetType())).Warn("agent sent an event type this executor does not know; ignored")
			return false
		}
	}
	return true
}

func (c *Client) addUnackedTaskLocked(t mesos.TaskInfo) {
	for _, u := range c.unackedTasks {
		if u.TaskID.Value == t.TaskID.Value {
			return
		}
	}
	c.unackedTasks = append(c.unackedTasks, t)
}

func (c *Client) acknowledge(taskID string, id []byte) {
	c.mu.Lock()
	var found *pending
	for i, p := range c.outbox {
		if p.uuid == string(id) {
			found = p
			c.outbox = append(c.outbox[:i:i], c.outbox[i+1:]...)
			break
		}
	}
	for i, t := range c.unackedTasks {
		if t.TaskID.Value == taskID {
			c.unackedTasks = append(c.unackedTasks[:i:i], c.unackedTasks[i+1:]...)
			break
		}
	}
	if found != nil {
		close(c.changed)
		c.changed = make(chan struct{})
	}
	c.mu.Unlock()
	if found == nil {
		// The agent re-ACKs duplicates; an unknown uuid is harmless.
		c.log.WithField("task_id", taskID).Debug("acknowledgement for an update not in the outbox")
		return
	}
	if c.OnAck != nil {
		c.OnAck(taskID, found.state, time.Since(found.created))
	}
}

// sendLoop delivers queued updates in creation order, which keeps each task's
// updates in order. A 503 (agent recovering) or a network error is retried
// with the same uuid; the update also stays in the outbox for the next
// SUBSCRIBE, so nothing depends on this loop winning.
func (c *Client) sendLoop(ctx context.Context) {
	bo := backoff.Exp{Base: 100 * time.Millisecond, Max: time.Second, Jitter: 0.5}
	for {
		p := c.nextToSend()
		if p == nil {
			select {
			case <-ctx.Done():
				return
			case <-c.wake:
			}
			continue
		}
		err := c.sendUpdate(ctx, p)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			bo.Reset()
			continue
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			c.rejectUpdate(p, err)
			continue
		}
		c.log.WithError(err).WithField("task_id", p.taskID).Debug("status update not accepted yet; will retry")
		delay := bo.Next()
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

func (c *Client) nextToSend() *pending {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.subscribed {
		return nil
	}
	for _, p := range c.outbox {
		if !p.delivered {
			return p
		}
	}
	return nil
}

// rejectUpdate handles an update the agent refused for good: it leaves the
// outbox (resending the same bytes gets the same answer), and since the
// agent will never ACK it, the refusal is logged, counted and reported.
func (c *Client) rejectUpdate(p *pending, err error) {
	c.dropUpdate(p)
	c.rejectedUpdates.Add(1)
	c.log.WithError(err).WithFields(logrus.Fields{"task_id": p.taskID, "state": p.state.String()}).
		Error("agent refused a status update; dropped, it will never be acknowledged")
	if c.OnReject != nil {
		c.OnReject(p.taskID, p.state, []byte(p.uuid), err)
	}
}

func (c *Client) dropUpdate(p *pending) {
	c.mu.Lock()
	for i, q := range c.outbox {
		if q == p {
			c.outbox = append(c.outbox[:i:i], c.outbox[i+1:]...)
			close(c.changed)
			c.changed = make(chan struct{})
			break
		}
	}
	c.mu.Unlock()
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func (c *Client) sendUpdate(ctx context.Context, p *pending) error {
	call := c.newCall(executor.Call_UPDATE)
	call.Update = &p.update
	code, body, err := c.post(ctx, call)
	if err != nil {
		return err
	}
	switch {
	case code == http.StatusAccepted || code == http.StatusOK:
		c.mu.Lock()
		p.delivered = true
		c.mu.Unlock()
		return nil
	case code == http.StatusServiceUnavailable, code == http.StatusForbidden, code == http.StatusNotFound, code >= 500:
		// 503: agent recovering; 403: not (re)subscribed yet; 404:
		// libprocess has not routed the endpoint yet while the agent
		// starts (SUBSCRIBE treats it as retryable too). All pass.
		return fmt.Errorf("update: agent answered %d: %s", code, body)
	default:
		return &permanentError{fmt.Errorf("update %s for task %s: agent answered %d: %s",
			p.state, p.taskID, code, body)}
	}
}

// heartbeatLoop sends HEARTBEAT calls while the stream is up. The agent's
// own heartbeat comes every 30 minutes and it never notices a dead stream, so
// a failing call is the quickest sign that the connection is gone: end the
// stream and let Run reconnect.
func (c *Client) heartbeatLoop(ctx context.Context, endStream context.CancelCauseFunc) {
	if c.cfg.HeartbeatInterval < 0 {
		return
	}
	t := time.NewTimer(c.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		code, body, err := c.post(ctx, c.newCall(executor.Call_HEARTBEAT))
		if ctx.Err() != nil {
			return
		}
		// Not logged here: the cause reaches Run, which logs it or, without
		// checkpointing, returns it.
		if err != nil {
			endStream(fmt.Errorf("heartbeat failed, the connection to the agent is dead: %w", err))
			return
		}
		if code >= 500 && code != http.StatusServiceUnavailable {
			endStream(fmt.Errorf("heartbeat failed: agent answered %d: %s", code, body))
			return
		}
		t.Reset(c.cfg.HeartbeatInterval)
	}
}

func (c *Client) newCall(t executor.Call_Type) *executor.Call {
	return &executor.Call{
		Type:        t,
		FrameworkID: mesos.FrameworkID{Value: c.cfg.FrameworkID},
		ExecutorID:  mesos.ExecutorID{Value: c.cfg.ExecutorID},
	}
}

func (c *Client) request(ctx context.Context, call *executor.Call) (*http.Request, error) {
	var body []byte
	var err error
	if c.cfg.ContentType == ContentTypeJSON {
		body, err = json.Marshal(call)
	} else {
		body, err = proto.Marshal(call)
	}
	if err != nil {
		return nil, fmt.Errorf("encode %s call: %w", call.Type, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build %s request: %w", call.Type, err)
	}
	req.Header.Set("Content-Type", c.cfg.ContentType)
	if c.cfg.AuthToken != "" {
		req.Header.Set("Authorization", "Bearer "+string(c.cfg.AuthToken))
	}
	// net/http never retries a POST that fails on a reused keep-alive
	// connection the agent has closed meanwhile (agent restart, idle
	// timeout): the caller gets "server closed idle connection" or EOF. For
	// HEARTBEAT that would end a healthy stream, and for UPDATE it costs a
	// backoff. Every call here is safe to repeat (an UPDATE keeps its uuid
	// and the agent drops duplicates; a second SUBSCRIBE replaces the
	// first), so mark them idempotent: a nil Idempotency-Key lets the
	// Transport retry on a fresh connection without sending the header.
	req.Header["Idempotency-Key"] = nil
	return req, nil
}

func (c *Client) post(ctx context.Context, call *executor.Call) (int, string, error) {
	req, err := c.request(ctx, call)
	if err != nil {
		return 0, "", &permanentError{err}
	}
	resp, err := c.callHTTP.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("%s call: %w", call.Type, err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, readSnippet(resp.Body), nil
}

// readSnippet reads a bounded prefix of an error body and drains the rest so
// the connection can be reused.
func readSnippet(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 4096))
	_, _ = io.Copy(io.Discard, io.LimitReader(r, 1<<20))
	return string(bytes.TrimSpace(b))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
