package agent_test

import (
	"encoding/json"
	"github.com/mdx-executor/mdx/internal/testenv"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/recordio"

	"github.com/mdx-executor/mdx/agent"
)

// encodeEvent marshals ev in contentType without proto's required-field
// check, so that a test can send what a broken agent would.
func encodeEvent(t *testing.T, contentType string, ev *executor.Event) []byte {
	t.Helper()
	var b []byte
	var err error
	if contentType == agent.ContentTypeJSON {
		b, err = json.Marshal(ev)
	} else {
		b, err = proto.Marshal(ev)
	}
	if err != nil {
		t.Fatalf("encode %s: %v", ev.GetType(), err)
	}
	return b
}

// serveFrames answers SUBSCRIBE with frames and keeps the stream open.
func serveFrames(contentType string, frames [][]byte) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(http.StatusOK)
		out := recordio.NewWriter(w)
		for _, fr := range frames {
			_ = out.WriteFrame(fr)
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
}

// TestEventsWithoutPayloadDropped: events whose payload or ids are missing
// never reach the task manager (they used to panic it on a nil pointer);
// each is logged naming what is missing and counted, and the stream goes on.
func TestEventsWithoutPayloadDropped(t *testing.T) {
	t.Parallel()
	type bad struct {
		ev      *executor.Event
		missing string
		raw     []byte // sent instead of ev when set
	}
	for _, w := range wires {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			bads := []bad{
				{ev: &executor.Event{Type: executor.Event_LAUNCH}, missing: "LAUNCH event without launch"},
				{ev: &executor.Event{Type: executor.Event_LAUNCH_GROUP}, missing: "LAUNCH_GROUP event without launch_group"},
				{ev: &executor.Event{Type: executor.Event_KILL}, missing: "KILL event without kill"},
				{ev: &executor.Event{Type: executor.Event_ACKNOWLEDGED}, missing: "ACKNOWLEDGED event without acknowledged"},
				{ev: &executor.Event{Type: executor.Event_MESSAGE}, missing: "MESSAGE event without message"},
				{ev: &executor.Event{Type: executor.Event_ERROR}, missing: "ERROR event without error"},
				{ev: &executor.Event{Type: executor.Event_LAUNCH_GROUP, LaunchGroup: &executor.Event_LaunchGroup{}},
					missing: "LAUNCH_GROUP event without launch_group.task_group.tasks"},
			}
			if w.contentType == agent.ContentTypeProtobuf {
				// The fuzzer's find, byte for byte: type LAUNCH, nothing else.
				bads[0].raw = []byte{0x08, 0x02}
			} else {
				bads[0].raw = []byte(`{"type":"LAUNCH"}`)
				// Required fields inside a payload are only enforced by
				// protobuf; JSON needs the ids checked.
				bads = append(bads,
					bad{ev: &executor.Event{Type: executor.Event_LAUNCH, Launch: &executor.Event_Launch{Task: mesos.TaskInfo{Name: "no id"}}},
						missing: "LAUNCH event without launch.task.task_id"},
					bad{ev: &executor.Event{Type: executor.Event_KILL, Kill: &executor.Event_Kill{}},
						missing: "KILL event without kill.task_id"},
					bad{ev: &executor.Event{Type: executor.Event_ACKNOWLEDGED, Acknowledged: &executor.Event_Acknowledged{TaskID: mesos.TaskID{Value: "t1"}}},
						missing: "ACKNOWLEDGED event without acknowledged.uuid"},
					bad{raw: []byte(`{"type":"LAUNCH_GROUP","launch_group":{"task_group":{"tasks":[{"name":"x"}]}}}`),
						missing: "LAUNCH_GROUP event without launch_group.task_group.tasks[0].task_id"},
				)
			}
			frames := [][]byte{encodeEvent(t, w.contentType, subscribedEvent())}
			for _, b := range bads {
				if b.raw != nil {
					frames = append(frames, b.raw)
				} else {
					frames = append(frames, encodeEvent(t, w.contentType, b.ev))
				}
			}
			frames = append(frames, encodeEvent(t, w.contentType,
				&executor.Event{Type: executor.Event_MESSAGE, Message: &executor.Event_Message{Data: []byte("after")}}))

			f := newFront(t, "", "")
			f.subscribe = serveFrames(w.contentType, frames)
			cfg := baseConfig(f.addr())
			cfg.ContentType = w.contentType
			var logs testenv.SyncBuffer
			r := run(t, cfg, testLog(t, &logs))
			r.next(t, executor.Event_SUBSCRIBED)
			// Events are delivered in stream order, so the next one is the
			// last frame only if every bad one was dropped.
			select {
			case ev := <-r.c.Events():
				if ev.GetType() != executor.Event_MESSAGE || string(ev.GetMessage().GetData()) != "after" {
					t.Fatalf("got %s event %v, want only MESSAGE:after after SUBSCRIBED", ev.GetType(), ev)
				}
			case <-time.After(waitTimeout):
				t.Fatal("no MESSAGE:after")
			}
			if got := r.c.Stats().DroppedEvents; got != uint64(len(bads)) {
				t.Errorf("Stats().DroppedEvents = %d, want %d", got, len(bads))
			}
			out := logs.String()
			for _, b := range bads {
				if !strings.Contains(out, b.missing) {
					t.Errorf("log does not say %q", b.missing)
				}
			}
			if n := len(f.seen(executor.Call_SUBSCRIBE)); n != 1 || !r.running() {
				t.Errorf("%d SUBSCRIBEs, running %v: the stream should have carried on", n, r.running())
			}
		})
	}
}

// TestSubscribedWithoutPayload: a SUBSCRIBED without its payload is a
// protocol error on that stream: nothing is passed on, the link is not
// subscribed, and SUBSCRIBE goes out again.
func TestSubscribedWithoutPayload(t *testing.T) {
	t.Parallel()
	for _, w := range wires {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			f := newFront(t, "", "")
			f.subscribe = serveFrames(w.contentType, [][]byte{
				encodeEvent(t, w.contentType, &executor.Event{Type: executor.Event_SUBSCRIBED}),
				encodeEvent(t, w.contentType, &executor.Event{Type: executor.Event_MESSAGE, Message: &executor.Event_Message{Data: []byte("x")}}),
			})
			cfg := baseConfig(f.addr())
			cfg.ContentType = w.contentType
			cfg.Checkpoint = false // not a lost link either: never subscribed
			var logs testenv.SyncBuffer
			r := run(t, cfg, testLog(t, &logs))
			eventually(t, "a second SUBSCRIBE", func() bool { return len(f.seen(executor.Call_SUBSCRIBE)) >= 2 })
			select {
			case ev := <-r.c.Events():
				t.Fatalf("event %s passed on from a stream without a valid SUBSCRIBED", ev.GetType())
			default:
			}
			eventually(t, "two bad SUBSCRIBEDs counted as dropped", func() bool { return r.c.Stats().DroppedEvents >= 2 })
			if r.c.Stats().Connected || !r.running() {
				t.Errorf("Connected %v, running %v (%v); want not connected and still trying", r.c.Stats().Connected, r.running(), r.err)
			}
			want := strconv.Quote("protocol error in the event stream: invalid event: SUBSCRIBED event without subscribed")
			if !strings.Contains(logs.String(), want[1:len(want)-1]) {
				t.Errorf("log does not name the protocol error:\n%s", logs.String())
			}
		})
	}
}
