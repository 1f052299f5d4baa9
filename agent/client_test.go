package agent_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mdx-executor/mdx/internal/testenv"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/recordio"

	"github.com/mdx-executor/mdx/agent"
	"github.com/mdx-executor/mdx/agent/localagent"
)

var wires = []struct {
	name        string
	contentType string
}{
	{"protobuf", agent.ContentTypeProtobuf},
	{"json", agent.ContentTypeJSON},
}

func status(taskID string, state mesos.TaskState) mesos.TaskStatus {
	return mesos.TaskStatus{TaskID: mesos.TaskID{Value: taskID}, State: state.Enum()}
}

// launch has the agent launch a task and waits for its LAUNCH event.
func launch(t *testing.T, la *localagent.Agent, r *runner, task mesos.TaskInfo) {
	t.Helper()
	la.Launch(task)
	ev := r.next(t, executor.Event_LAUNCH)
	if got := ev.GetLaunch().Task.TaskID.Value; got != task.TaskID.Value {
		t.Fatalf("LAUNCH for %q, want %q", got, task.TaskID.Value)
	}
}

func waitUpdate(t *testing.T, la *localagent.Agent, id []byte) localagent.Update {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	u, err := la.WaitUpdate(ctx, func(u localagent.Update) bool { return bytes.Equal(u.UUID, id) })
	if err != nil {
		t.Fatalf("agent never received update %x: %v", id, err)
	}
	return u
}

func TestSubscribeLaunchUpdateAck(t *testing.T) {
	t.Parallel()
	for _, w := range wires {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			la := startAgent(t, localagent.Options{Checkpoint: true})
			cfg := baseConfig(la.Endpoint())
			cfg.ContentType = w.contentType
			r := run(t, cfg, nil)

			sub := r.next(t, executor.Event_SUBSCRIBED)
			if got := sub.GetSubscribed().GetContainerID().GetValue(); got != localagent.ContainerID {
				t.Errorf("SUBSCRIBED container_id = %q, want %q", got, localagent.ContainerID)
			}
			launch(t, la, r, localagent.Task("t1", nil, 0.1, 32))

			before := time.Now()
			id := r.c.Update(status("t1", mesos.TASK_RUNNING))
			if len(id) != 16 {
				t.Fatalf("uuid has %d bytes, want 16", len(id))
			}
			parsed, err := uuid.FromBytes(id)
			if err != nil || parsed.Version() != 4 || parsed.Variant() != uuid.RFC4122 {
				t.Fatalf("uuid %x: version %v variant %v err %v; want a random RFC 4122 v4", id, parsed.Version(), parsed.Variant(), err)
			}

			u := waitUpdate(t, la, id)
			if u.ContentType != w.contentType {
				t.Errorf("update sent as %q, want %q", u.ContentType, w.contentType)
			}
			if got := u.Status.GetSource(); got != mesos.SOURCE_EXECUTOR {
				t.Errorf("source = %v, want SOURCE_EXECUTOR", got)
			}
			if got := u.Status.GetExecutorID().GetValue(); got != localagent.DefaultExecutorID {
				t.Errorf("executor_id = %q, want %q", got, localagent.DefaultExecutorID)
			}
			if u.Status.Timestamp == nil {
				t.Fatal("timestamp not set")
			}
			ts := time.Unix(0, int64(u.Status.GetTimestamp()*1e9))
			if ts.Before(before.Add(-time.Millisecond)) || ts.After(time.Now()) {
				t.Errorf("timestamp %v not between %v and now", ts, before)
			}

			ack := r.next(t, executor.Event_ACKNOWLEDGED)
			if !bytes.Equal(ack.GetAcknowledged().UUID, id) {
				t.Errorf("ACKNOWLEDGED uuid %x, want %x", ack.GetAcknowledged().UUID, id)
			}
			drained(t, r.c)
			if st, _ := la.TaskState("t1"); st != mesos.TASK_RUNNING {
				t.Errorf("agent has t1 in %v, want TASK_RUNNING", st)
			}
			if s := r.c.Stats(); !s.Connected || len(s.Unacked) != 0 || s.Reconnects != 0 {
				t.Errorf("Stats = %+v, want connected, nothing unacked, no reconnects", s)
			}
		})
	}
}

// TestUpdateOwnsItsStatus: the caller may reuse its TaskStatus and the
// returned uuid; neither may change what the outbox sends or replays.
func TestUpdateOwnsItsStatus(t *testing.T) {
	t.Parallel()
	la := startAgent(t, localagent.Options{Checkpoint: true})
	r := run(t, baseConfig(la.Endpoint()), nil)
	r.next(t, executor.Event_SUBSCRIBED)
	launch(t, la, r, localagent.Task("t1", nil, 0.1, 32))

	// Hold the update back so that the caller's changes happen before it
	// is sent.
	la.SetRecovering(true)
	st := status("t1", mesos.TASK_RUNNING)
	st.Data = []byte("original")
	st.Message = proto.String("original")
	id := r.c.Update(st)
	want := append([]byte(nil), id...)
	copy(st.Data, "mutated!")
	*st.Message = "mutated"
	id[0] ^= 0xff
	la.SetRecovering(false)

	u := waitUpdate(t, la, want)
	if string(u.Status.Data) != "original" || u.Status.GetMessage() != "original" {
		t.Errorf("agent got data %q message %q, want both %q", u.Status.Data, u.Status.GetMessage(), "original")
	}
	drained(t, r.c)
}

// TestEventsFiltered runs against a scripted agent that sends what the local
// agent never does: HEARTBEAT, UNKNOWN, an event type from a newer Mesos,
// ERROR, and a frame that does not decode.
func TestEventsFiltered(t *testing.T) {
	t.Parallel()
	for _, w := range wires {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			encode := func(ev *executor.Event) []byte {
				var b []byte
				var err error
				if w.contentType == agent.ContentTypeJSON {
					b, err = json.Marshal(ev)
				} else {
					b, err = proto.Marshal(ev)
				}
				if err != nil {
					t.Error(err)
				}
				return b
			}
			frames := [][]byte{
				encode(subscribedEvent()),
				encode(&executor.Event{Type: executor.Event_HEARTBEAT}),
				encode(&executor.Event{Type: executor.Event_UNKNOWN}),
				encode(&executor.Event{Type: executor.Event_Type(99)}),
				encode(&executor.Event{Type: executor.Event_ERROR, Error: &executor.Event_Error{Message: "boom"}}),
				encode(&executor.Event{Type: executor.Event_MESSAGE, Message: &executor.Event_Message{Data: []byte("one")}}),
				[]byte("\xff\xff\xff not an event {"),
				encode(&executor.Event{Type: executor.Event_MESSAGE, Message: &executor.Event_Message{Data: []byte("two")}}),
			}
			f := newFront(t, "", "")
			f.subscribe = func(rw http.ResponseWriter, req *http.Request) {
				rw.Header().Set("Content-Type", w.contentType)
				rw.WriteHeader(http.StatusOK)
				out := recordio.NewWriter(rw)
				for _, fr := range frames {
					_ = out.WriteFrame(fr)
				}
				rw.(http.Flusher).Flush()
				<-req.Context().Done()
			}
			cfg := baseConfig(f.addr())
			cfg.ContentType = w.contentType
			r := run(t, cfg, nil)

			var got []string
			for len(got) < 3 {
				select {
				case ev := <-r.c.Events():
					s := ev.GetType().String()
					if m := ev.GetMessage(); m != nil {
						s += ":" + string(m.Data)
					}
					got = append(got, s)
				case <-time.After(waitTimeout):
					t.Fatalf("events so far %v; want SUBSCRIBED, MESSAGE:one, MESSAGE:two", got)
				}
			}
			if want := "SUBSCRIBED MESSAGE:one MESSAGE:two"; strings.Join(got, " ") != want {
				t.Errorf("events %v, want %s", got, want)
			}
			select {
			case ev := <-r.c.Events():
				t.Errorf("unexpected extra event %v", ev.GetType())
			case <-time.After(50 * time.Millisecond):
			}
			if !r.running() {
				t.Fatalf("Run returned: %v", r.err)
			}
		})
	}
}

func subscribedEvent() *executor.Event {
	fw := mesos.FrameworkID{Value: localagent.DefaultFrameworkID}
	agentID := mesos.AgentID{Value: localagent.DefaultAgentID}
	return &executor.Event{
		Type: executor.Event_SUBSCRIBED,
		Subscribed: &executor.Event_Subscribed{
			ExecutorInfo: mesos.ExecutorInfo{
				ExecutorID:  mesos.ExecutorID{Value: localagent.DefaultExecutorID},
				FrameworkID: &fw,
			},
			FrameworkInfo: mesos.FrameworkInfo{User: "root", Name: "scripted", ID: &fw},
			AgentInfo:     mesos.AgentInfo{Hostname: "localhost", ID: &agentID},
			ContainerID:   &mesos.ContainerID{Value: "c1"},
		},
	}
}

// TestUpdate503RetriedWithSameUUID: an UPDATE refused with 503 is sent
// again, unchanged, until the agent takes it.
func TestUpdate503RetriedWithSameUUID(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusServiceUnavailable, http.StatusNotFound} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			t.Parallel()
			testUpdateRetried(t, code)
		})
	}
}

// testUpdateRetried: an UPDATE refused with a passing code (503 while the
// agent recovers, 404 while libprocess starts) is retried with its uuid.
func testUpdateRetried(t *testing.T, code int) {
	la := startAgent(t, localagent.Options{Checkpoint: true})
	f := newFront(t, "http://"+la.Endpoint(), "")
	r := run(t, baseConfig(f.addr()), nil)
	r.next(t, executor.Event_SUBSCRIBED)
	launch(t, la, r, localagent.Task("t1", nil, 0.1, 32))

	la.FailNextUpdates(code, 3)
	start := time.Now()
	id := r.c.Update(status("t1", mesos.TASK_RUNNING))
	waitUpdate(t, la, id)
	drained(t, r.c)
	// How fast the retries are is the backoff's business (its schedule is
	// unit-tested); here only that they get through.
	t.Logf("three %ds got through in %v", code, time.Since(start))

	sent := f.seen(executor.Call_UPDATE)
	if len(sent) != 4 {
		t.Errorf("UPDATE sent %d times, want 4 (3 refused + 1 accepted)", len(sent))
	}
	for i, c := range sent {
		if !bytes.Equal(c.UUID, id) {
			t.Errorf("attempt %d carried uuid %x, want %x", i, c.UUID, id)
		}
	}
	var n int
	for _, u := range la.Updates() {
		if bytes.Equal(u.UUID, id) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("agent recorded %d updates with uuid %x, want 1", n, id)
	}
	if la.SubscribeCount() != 1 {
		t.Errorf("SubscribeCount = %d: a %d on UPDATE must not cost the stream", la.SubscribeCount(), code)
	}
}

// TestReplayIsByteIdentical: updates whose ACKs never arrived go back in the
// next SUBSCRIBE exactly as first sent, with every task not yet ACKed.
func TestReplayIsByteIdentical(t *testing.T) {
	t.Parallel()
	for _, w := range wires {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			la := startAgent(t, localagent.Options{Checkpoint: true})
			cfg := baseConfig(la.Endpoint())
			cfg.ContentType = w.contentType
			r := run(t, cfg, nil)
			r.next(t, executor.Event_SUBSCRIBED)
			la.WithholdAcks(true)
			launch(t, la, r, localagent.Task("t1", nil, 0.1, 32))
			launch(t, la, r, localagent.Task("t2", nil, 0.1, 32))

			st := status("t1", mesos.TASK_RUNNING)
			st.Data = []byte{0, 1, 2, 0xff}
			st.Labels = &mesos.Labels{Labels: []mesos.Label{{Key: "k", Value: proto.String("v")}}}
			ids := [][]byte{
				r.c.Update(status("t1", mesos.TASK_STARTING)),
				r.c.Update(st),
			}
			raw := map[string][]byte{}
			for _, id := range ids {
				u := waitUpdate(t, la, id)
				if len(u.Raw) == 0 {
					t.Fatal("agent recorded no raw bytes")
				}
				raw[string(id)] = u.Raw
			}
			s := r.c.Stats()
			if len(s.Unacked) != 2 || s.Unacked[0].UUID != uuid.UUID(ids[0]).String() ||
				s.Unacked[1].UUID != uuid.UUID(ids[1]).String() || s.Unacked[1].State != mesos.TASK_RUNNING {
				t.Fatalf("Stats.Unacked = %+v, want the two updates in creation order", s.Unacked)
			}

			la.WithholdAcks(false)
			la.DropStream()
			eventually(t, "re-subscription", func() bool { return la.SubscribeCount() == 2 })

			sub := la.LastSubscribe()
			if len(sub.UnacknowledgedUpdates) != 2 {
				t.Fatalf("SUBSCRIBE carried %d updates, want 2", len(sub.UnacknowledgedUpdates))
			}
			for i, cu := range sub.UnacknowledgedUpdates {
				if !bytes.Equal(cu.Status.UUID, ids[i]) {
					t.Errorf("unacknowledged_updates[%d] uuid %x, want %x (creation order)", i, cu.Status.UUID, ids[i])
				}
				var b []byte
				var err error
				if w.contentType == agent.ContentTypeJSON {
					// Through the pointer, as the client encodes: mesos-go's
					// ffjson marshaller (floats as 1.2e+09) is on *Call_Update.
					b, err = json.Marshal(&cu)
				} else {
					b, err = proto.Marshal(&cu)
				}
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b, raw[string(cu.Status.UUID)]) {
					t.Errorf("unacknowledged_updates[%d] re-encoded differs from the UPDATE:\n got %q\nwant %q", i, b, raw[string(cu.Status.UUID)])
				}
			}
			// The bytes on the wire, as the agent recorded them.
			var replayed int
			for _, u := range la.Updates() {
				if !u.Replayed {
					continue
				}
				replayed++
				if !bytes.Equal(u.Raw, raw[string(u.UUID)]) {
					t.Errorf("replayed update %x differs on the wire:\n got %q\nwant %q", u.UUID, u.Raw, raw[string(u.UUID)])
				}
			}
			if replayed != 2 {
				t.Errorf("agent saw %d replayed updates, want 2", replayed)
			}
			if got := taskIDs(sub.UnacknowledgedTasks); got != "t1 t2" {
				t.Errorf("unacknowledged_tasks = [%s], want [t1 t2]", got)
			}

			drained(t, r.c)
			if st, _ := la.TaskState("t1"); st != mesos.TASK_RUNNING {
				t.Errorf("agent has t1 in %v, want TASK_RUNNING", st)
			}
			// t1 is ACKed now; t2 never had an update and must stay.
			la.DropStream()
			eventually(t, "second re-subscription", func() bool { return la.SubscribeCount() == 3 })
			sub = la.LastSubscribe()
			if len(sub.UnacknowledgedUpdates) != 0 || taskIDs(sub.UnacknowledgedTasks) != "t2" {
				t.Errorf("third SUBSCRIBE: %d updates, tasks [%s]; want 0 and [t2]",
					len(sub.UnacknowledgedUpdates), taskIDs(sub.UnacknowledgedTasks))
			}
		})
	}
}

func taskIDs(ts []mesos.TaskInfo) string {
	var ids []string
	for _, t := range ts {
		ids = append(ids, t.TaskID.Value)
	}
	return strings.Join(ids, " ")
}

func TestLostStreamWithoutCheckpointIsFatal(t *testing.T) {
	t.Parallel()
	la := startAgent(t, localagent.Options{})
	cfg := baseConfig(la.Endpoint())
	cfg.Checkpoint = false
	r := run(t, cfg, nil)
	r.next(t, executor.Event_SUBSCRIBED)
	la.DropStream()
	err := r.wait(t, 2*time.Second)
	if !errors.Is(err, agent.ErrDisconnected) {
		t.Fatalf("Run = %v, want ErrDisconnected", err)
	}
	if la.SubscribeCount() != 1 {
		t.Errorf("SubscribeCount = %d, want 1: no reconnect without checkpointing", la.SubscribeCount())
	}
}

// TestReconnectQuickly: with checkpointing a dropped stream is replaced well
// inside the agent's re-registration window, and no update is lost.
func TestReconnectQuickly(t *testing.T) {
	t.Parallel()
	la := startAgent(t, localagent.Options{Checkpoint: true})
	cfg := baseConfig(la.Endpoint())
	cfg.SubscriptionBackoffMax = 2 * time.Second // the agent's default window
	r := run(t, cfg, nil)
	r.next(t, executor.Event_SUBSCRIBED)
	launch(t, la, r, localagent.Task("t1", nil, 0.1, 32))
	launch(t, la, r, localagent.Task("t2", nil, 0.1, 32))
	r.c.Update(status("t1", mesos.TASK_RUNNING))
	drained(t, r.c)

	dropped := time.Now()
	la.DropStream()
	// Sent while the stream is down or being replaced: either the UPDATE's
	// ACK is lost in the dead stream or the update rides in SUBSCRIBE.
	r.c.Update(status("t1", mesos.TASK_FINISHED))
	r.c.Update(status("t2", mesos.TASK_RUNNING))
	eventually(t, "re-subscription", func() bool { return la.SubscribeCount() == 2 })
	// That an attempt lands in every SubscriptionBackoffMax window is
	// retryDelay's bound, tested in TestRetryDelayBound; timing it here
	// would only measure the machine's load.
	t.Logf("re-subscribed %v after the stream dropped", time.Since(dropped))
	r.next(t, executor.Event_SUBSCRIBED)
	drained(t, r.c)
	for id, want := range map[string]mesos.TaskState{"t1": mesos.TASK_FINISHED, "t2": mesos.TASK_RUNNING} {
		if st, _ := la.TaskState(id); st != want {
			t.Errorf("agent has %s in %v, want %v", id, st, want)
		}
	}
	if s := r.c.Stats(); s.Reconnects != 1 || !s.Connected {
		t.Errorf("Stats = %+v, want connected after 1 reconnect", s)
	}
}

// TestAgentRestart: the agent restarts on the same port and answers 503 to
// everything but SUBSCRIBE until the executor is back and the re-registration
// window has passed.
func TestAgentRestart(t *testing.T) {
	t.Parallel()
	const window = 500 * time.Millisecond
	la := startAgent(t, localagent.Options{Checkpoint: true, ReregistrationTimeout: window})
	cfg := baseConfig(la.Endpoint())
	cfg.HeartbeatInterval = 50 * time.Millisecond // keep-alive connections in use across the restart
	cfg.SubscriptionBackoffMax = 2 * time.Second  // the agent's default window
	r := run(t, cfg, nil)
	r.next(t, executor.Event_SUBSCRIBED)
	launch(t, la, r, localagent.Task("t1", nil, 0.1, 32))
	launch(t, la, r, localagent.Task("t2", nil, 0.1, 32))
	r.c.Update(status("t1", mesos.TASK_RUNNING))
	drained(t, r.c)

	restarted := time.Now()
	if err := la.Restart(); err != nil {
		t.Fatal(err)
	}
	queued := r.c.Update(status("t1", mesos.TASK_FINISHED))
	eventually(t, "re-subscription", func() bool { return la.SubscribeCount() == 2 })
	// Inside the window: refused with 503 until it ends.
	late := r.c.Update(status("t2", mesos.TASK_RUNNING))
	drained(t, r.c)

	waitUpdate(t, la, queued)
	if u := waitUpdate(t, la, late); u.Received.Before(restarted.Add(window)) {
		t.Errorf("agent accepted an UPDATE %v after the restart, inside its %v recovery window",
			u.Received.Sub(restarted), window)
	}
	for id, want := range map[string]mesos.TaskState{"t1": mesos.TASK_FINISHED, "t2": mesos.TASK_RUNNING} {
		if st, _ := la.TaskState(id); st != want {
			t.Errorf("agent has %s in %v, want %v", id, st, want)
		}
	}
	if !r.running() {
		t.Fatalf("Run returned: %v", r.err)
	}
}

// TestStaleKeepAliveConnection: a server closing a kept-alive connection just
// as the client reuses it must cost neither the stream (HEARTBEAT) nor a
// backoff (UPDATE): the transport retries on a fresh connection.
func TestStaleKeepAliveConnection(t *testing.T) {
	t.Parallel()
	la := startAgent(t, localagent.Options{Checkpoint: true})
	f := newFront(t, "http://"+la.Endpoint(), "")
	cfg := baseConfig(f.addr())
	cfg.HeartbeatInterval = 20 * time.Millisecond
	r := run(t, cfg, nil)
	r.next(t, executor.Event_SUBSCRIBED)
	launch(t, la, r, localagent.Task("t1", nil, 0.1, 32))
	eventually(t, "two heartbeats", func() bool { return len(f.seen(executor.Call_HEARTBEAT)) >= 2 })

	for range 3 {
		f.set(func(f *front) { f.closeReused = true })
		eventually(t, "the stale connection to be hit", func() bool {
			var armed bool
			f.set(func(f *front) { armed = f.closeReused })
			return !armed
		})
	}
	n := len(f.seen(executor.Call_HEARTBEAT))
	eventually(t, "more heartbeats", func() bool { return len(f.seen(executor.Call_HEARTBEAT)) >= n+3 })
	if got := len(f.seen(executor.Call_SUBSCRIBE)); got != 1 {
		t.Errorf("%d SUBSCRIBEs: a stale keep-alive connection ended the stream", got)
	}

	if got := r.c.Stats().Reconnects; got != 0 {
		t.Errorf("Reconnects = %d, want 0", got)
	}
}

// TestStaleKeepAliveConnectionUpdate: the same for an UPDATE, which must get
// through at once rather than after the sender's error backoff.
func TestStaleKeepAliveConnectionUpdate(t *testing.T) {
	t.Parallel()
	la := startAgent(t, localagent.Options{Checkpoint: true})
	f := newFront(t, "http://"+la.Endpoint(), "")
	var logs testenv.SyncBuffer
	r := run(t, baseConfig(f.addr()), testLog(t, &logs))
	r.next(t, executor.Event_SUBSCRIBED)
	launch(t, la, r, localagent.Task("t1", nil, 0.1, 32))
	r.c.Update(status("t1", mesos.TASK_STARTING))
	drained(t, r.c) // leaves an idle keep-alive connection

	f.set(func(f *front) { f.closeReused = true })
	id := r.c.Update(status("t1", mesos.TASK_RUNNING))
	waitUpdate(t, la, id)
	drained(t, r.c)
	var armed bool
	f.set(func(f *front) { armed = f.closeReused })
	if armed {
		t.Fatal("the UPDATE did not reuse the kept-alive connection; the test proves nothing")
	}
	if strings.Contains(logs.String(), "will retry") {
		t.Errorf("the UPDATE failed on the stale connection and waited for a retry:\n%s", logs.String())
	}
}

func TestRecoveryTimeout(t *testing.T) {
	t.Parallel()
	la := startAgent(t, localagent.Options{Checkpoint: true})
	cfg := baseConfig(la.Endpoint())
	cfg.RecoveryTimeout = time.Second
	r := run(t, cfg, nil)
	r.next(t, executor.Event_SUBSCRIBED)
	stopped := time.Now()
	la.Stop()
	err := r.wait(t, 4*time.Second)
	if !errors.Is(err, agent.ErrRecoveryTimeout) {
		t.Fatalf("Run = %v, want ErrRecoveryTimeout", err)
	}
	if d := time.Since(stopped); d < 900*time.Millisecond {
		t.Errorf("gave up after %v, before the 1s recovery timeout", d)
	}
}

func TestUnknownExecutorIsFatal(t *testing.T) {
	t.Parallel()
	t.Run("first subscribe", func(t *testing.T) {
		t.Parallel()
		la := startAgent(t, localagent.Options{Checkpoint: true})
		f := newFront(t, "http://"+la.Endpoint(), "")
		la.SetSubscribeStatus(http.StatusBadRequest, "Executor cannot be found", 1)
		r := run(t, baseConfig(f.addr()), nil)
		err := r.wait(t, time.Second)
		if !errors.Is(err, agent.ErrUnknownExecutor) || !strings.Contains(err.Error(), "Executor cannot be found") {
			t.Fatalf("Run = %v, want ErrUnknownExecutor with the agent's message", err)
		}
		if n := len(f.seen(executor.Call_SUBSCRIBE)); n != 1 {
			t.Errorf("%d SUBSCRIBE attempts, want 1", n)
		}
	})
	t.Run("after a reconnect", func(t *testing.T) {
		t.Parallel()
		la := startAgent(t, localagent.Options{Checkpoint: true})
		r := run(t, baseConfig(la.Endpoint()), nil)
		r.next(t, executor.Event_SUBSCRIBED)
		la.SetSubscribeStatus(http.StatusBadRequest, "Framework cannot be found", 1)
		la.DropStream()
		if err := r.wait(t, 2*time.Second); !errors.Is(err, agent.ErrUnknownExecutor) {
			t.Fatalf("Run = %v, want ErrUnknownExecutor", err)
		}
	})
}

// TestShutdownFirst: an agent that answers SUBSCRIBE with SHUTDOWN only and
// then closes the stream; even without checkpointing that close is expected
// and not a lost link.
func TestShutdownFirst(t *testing.T) {
	t.Parallel()
	la := startAgent(t, localagent.Options{})
	la.ShutdownFirst()
	cfg := baseConfig(la.Endpoint())
	cfg.Checkpoint = false
	r := run(t, cfg, nil)
	r.next(t, executor.Event_SHUTDOWN)
	// The next SUBSCRIBE is a normal one: the client got past the close.
	r.next(t, executor.Event_SUBSCRIBED)
	if !r.running() {
		t.Fatalf("Run returned %v after SHUTDOWN's stream closed", r.err)
	}
	// The executor can still report its tasks' end.
	launch(t, la, r, localagent.Task("t1", nil, 0.1, 32))
	r.c.Update(status("t1", mesos.TASK_KILLED))
	drained(t, r.c)
}

func TestSubscribeRetriedWhileAgentRecovers(t *testing.T) {
	t.Parallel()
	la := startAgent(t, localagent.Options{Checkpoint: true})
	f := newFront(t, "http://"+la.Endpoint(), "")
	la.SetRecovering(true)
	r := run(t, baseConfig(f.addr()), nil)
	eventually(t, "two refused SUBSCRIBEs", func() bool { return len(f.seen(executor.Call_SUBSCRIBE)) >= 2 })
	if !r.running() {
		t.Fatalf("Run returned on 503: %v", r.err)
	}
	la.SetRecovering(false)
	r.next(t, executor.Event_SUBSCRIBED)
}

// TestBadStream: a subscribed stream that turns into something that is not
// RecordIO: the stream is closed with an error naming the problem and the
// link reconnects (with checkpointing) or gives up (without), as for any
// broken stream. The headers of 2^63 and above used to panic inside
// mesos-go's reader and kill the executor.
func TestBadStream(t *testing.T) {
	t.Parallel()
	sub, err := proto.Marshal(subscribedEvent())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, body, want string
	}{
		{"garbage size", "abc\n", "bad frame size"},
		{"size with a sign", "+12\nabcdefghijkl", "bad frame size"},
		{"size with spaces", " 12\nabcdefghijkl", "bad frame size"},
		{"empty size", "\nabc", "bad frame size"},
		{"size too long", "000000000000000000000000001\nx", "bad frame size"},
		{"size beyond int64", "10000000000000000000\nx", "oversized frame"},
		{"size beyond uint64", "99999999999999999999\nx", "oversized frame"},
		{"oversized frame", "999999999999\n" + strings.Repeat("x", 2<<20), "oversized frame"},
		// Below mesos-go's 16 KiB starting buffer its own limit never fired.
		{"oversized small frame", "1025\n" + strings.Repeat("x", 1025), "oversized frame"},
		{"truncated frame", "10\nabc", "underrun"},
		{"truncated size", "10", "underrun"},
	}
	for _, tt := range tests {
		serve := func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", agent.ContentTypeProtobuf)
			w.WriteHeader(http.StatusOK)
			_, _ = fmt.Fprintf(w, "%d\n%s%s", len(sub), sub, tt.body)
		}
		t.Run(tt.name+"/no checkpoint", func(t *testing.T) {
			t.Parallel()
			f := newFront(t, "", "")
			f.subscribe = serve
			cfg := baseConfig(f.addr())
			cfg.Checkpoint = false
			cfg.MaxFrameSize = 1024
			r := run(t, cfg, nil)
			err := r.wait(t, waitTimeout)
			if !errors.Is(err, agent.ErrDisconnected) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v, want ErrDisconnected naming %q", err, tt.want)
			}
		})
		t.Run(tt.name+"/checkpoint", func(t *testing.T) {
			t.Parallel()
			f := newFront(t, "", "")
			f.subscribe = serve
			var logs testenv.SyncBuffer
			cfg := baseConfig(f.addr())
			cfg.MaxFrameSize = 1024
			r := run(t, cfg, testLog(t, &logs))
			eventually(t, "a reconnect", func() bool { return len(f.seen(executor.Call_SUBSCRIBE)) >= 2 })
			if !r.running() {
				t.Fatalf("Run returned: %v", r.err)
			}
			// logrus quotes the error field, escaping the want's quotes.
			quoted := strconv.Quote(tt.want)
			if !strings.Contains(logs.String(), quoted[1:len(quoted)-1]) {
				t.Errorf("log does not name the problem %q:\n%s", tt.want, logs.String())
			}
		})
	}
}

// TestNotAnEventStream: a 200 to SUBSCRIBE that is not an executor API
// stream (a proxy's error page) is not a subscription: SUBSCRIBE is sent
// again, even without checkpointing, and the reason is logged.
func TestNotAnEventStream(t *testing.T) {
	t.Parallel()
	f := newFront(t, "", "")
	f.subscribe = func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		_, _ = fmt.Fprint(w, "<html>proxy error</html>")
	}
	var logs testenv.SyncBuffer
	cfg := baseConfig(f.addr())
	cfg.Checkpoint = false
	r := run(t, cfg, testLog(t, &logs))
	eventually(t, "a second SUBSCRIBE", func() bool { return len(f.seen(executor.Call_SUBSCRIBE)) >= 2 })
	if !r.running() {
		t.Fatalf("Run returned: %v", r.err)
	}
	if want := `Content-Type \"text/html\"`; !strings.Contains(logs.String(), want) {
		t.Errorf("log does not name the problem %s:\n%s", want, logs.String())
	}
}

// TestLargeLaunch: a LAUNCH above mesos-go's 4 MiB default frame limit.
func TestLargeLaunch(t *testing.T) {
	t.Parallel()
	for _, w := range wires {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			la := startAgent(t, localagent.Options{Checkpoint: true})
			cfg := baseConfig(la.Endpoint())
			cfg.ContentType = w.contentType
			r := run(t, cfg, nil)
			r.next(t, executor.Event_SUBSCRIBED)
			task := localagent.Task("big", nil, 0.1, 32)
			task.Data = make([]byte, 6<<20)
			_, _ = rand.Read(task.Data)
			la.Launch(task)
			// Encoding and decoding 8 MiB of base64 JSON under -race on
			// a loaded machine takes seconds.
			ev := r.nextWithin(t, executor.Event_LAUNCH, 30*time.Second)
			if !bytes.Equal(ev.GetLaunch().Task.Data, task.Data) {
				t.Fatalf("LAUNCH data: got %d bytes, want the 6 MiB sent", len(ev.GetLaunch().Task.Data))
			}
		})
	}
}

// TestAuthorization: the token goes on every call and into no log line.
func TestAuthorization(t *testing.T) {
	t.Parallel()
	const token = "eyJhbGciOiJIUzI1NiJ9.eyJjaWQiOiJjMSJ9.c2lnbmF0dXJl"
	la := startAgent(t, localagent.Options{Checkpoint: true})
	f := newFront(t, "http://"+la.Endpoint(), "")
	cfg := baseConfig(f.addr())
	cfg.AuthToken = token
	cfg.HeartbeatInterval = 20 * time.Millisecond
	var logs testenv.SyncBuffer
	r := run(t, cfg, testLog(t, &logs))
	r.next(t, executor.Event_SUBSCRIBED)
	launch(t, la, r, localagent.Task("t1", nil, 0.1, 32))
	la.FailNextUpdates(http.StatusServiceUnavailable, 1) // a retry, logged
	r.c.Update(status("t1", mesos.TASK_RUNNING))
	drained(t, r.c)
	eventually(t, "heartbeats", func() bool { return len(f.seen(executor.Call_HEARTBEAT)) >= 2 })
	la.DropStream() // a lost stream, logged
	eventually(t, "re-subscription", func() bool { return la.SubscribeCount() == 2 })

	f.mu.Lock()
	calls := append([]seenCall(nil), f.calls...)
	f.mu.Unlock()
	kinds := map[executor.Call_Type]bool{}
	for _, c := range calls {
		kinds[c.Type] = true
		if c.Auth != "Bearer "+token {
			t.Errorf("%s call sent Authorization %q, want the bearer token", c.Type, c.Auth)
		}
	}
	for _, k := range []executor.Call_Type{executor.Call_SUBSCRIBE, executor.Call_UPDATE, executor.Call_HEARTBEAT} {
		if !kinds[k] {
			t.Errorf("no %s call seen", k)
		}
	}
	out := logs.String()
	if out == "" {
		t.Fatal("nothing logged; the check below would prove nothing")
	}
	if strings.Contains(out, token) || strings.Contains(out, "eyJjaWQiOiJjMSJ9") {
		t.Errorf("the token appears in the log:\n%s", out)
	}
}

// TestHeartbeatDetectsDeadAgent: the agent dies but its stream stays open
// and silent (a half-open TCP connection, or a proxy in between). Only the
// HEARTBEAT call notices.
func TestHeartbeatDetectsDeadAgent(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T, heartbeat time.Duration) (*localagent.Agent, *runner) {
		la := startAgent(t, localagent.Options{})
		f := newFront(t, "http://"+la.Endpoint(), "")
		f.set(func(f *front) { f.halfOpen = true })
		cfg := baseConfig(f.addr())
		cfg.Checkpoint = false
		cfg.HeartbeatInterval = heartbeat
		r := run(t, cfg, nil)
		r.next(t, executor.Event_SUBSCRIBED)
		return la, r
	}
	t.Run("heartbeat 100ms", func(t *testing.T) {
		t.Parallel()
		la, r := setup(t, 100*time.Millisecond)
		stopped := time.Now()
		la.Stop()
		// The error naming the heartbeat is the proof; the control below
		// shows nothing else notices. The wait only catches a hang.
		if err := r.wait(t, 30*time.Second); !errors.Is(err, agent.ErrDisconnected) || !strings.Contains(err.Error(), "heartbeat") {
			t.Fatalf("Run = %v, want ErrDisconnected naming the failed heartbeat", err)
		}
		t.Logf("dead agent noticed %v after it stopped", time.Since(stopped))
	})
	t.Run("control: no heartbeat", func(t *testing.T) {
		t.Parallel()
		la, r := setup(t, -1)
		la.Stop()
		time.Sleep(500 * time.Millisecond)
		if !r.running() || !r.c.Stats().Connected {
			t.Fatalf("the half-open stream was noticed without heartbeats (Run: %v); the test proves nothing", r.err)
		}
	})
}

// TestDomainSocket: the agent's executor API on a unix socket, reached with
// the /slave(N)/ path the agent requires there.
func TestDomainSocket(t *testing.T) {
	t.Parallel()
	la := startAgent(t, localagent.Options{Checkpoint: true})
	sock := filepath.Join(t.TempDir(), "agent.sock")
	f := newFront(t, "http://"+la.Endpoint(), sock)
	env := map[string]string{
		"MESOS_FRAMEWORK_ID":  localagent.DefaultFrameworkID,
		"MESOS_EXECUTOR_ID":   localagent.DefaultExecutorID,
		"MESOS_SLAVE_PID":     "slave(1)@192.0.2.1:5051", // not reachable: the socket must be used
		"MESOS_DOMAIN_SOCKET": sock,
		"MESOS_SANDBOX":       t.TempDir(),
		"MESOS_CHECKPOINT":    "1",
	}
	cfg, err := agent.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	cfg.HeartbeatInterval = -1
	r := run(t, cfg, nil)
	r.next(t, executor.Event_SUBSCRIBED)
	launch(t, la, r, localagent.Task("t1", nil, 0.1, 32))
	r.c.Update(status("t1", mesos.TASK_RUNNING))
	drained(t, r.c)
	for _, c := range append(f.seen(executor.Call_SUBSCRIBE), f.seen(executor.Call_UPDATE)...) {
		if c.Path != localagent.SlaveAPIPath {
			t.Errorf("%s sent to %q, want %q", c.Type, c.Path, localagent.SlaveAPIPath)
		}
	}
}
