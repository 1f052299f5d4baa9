package localagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/recordio"
	mesostime "github.com/mesos/mesos-go/api/v1/lib/time"
	"github.com/sirupsen/logrus"
)

const waitTimeout = 5 * time.Second

// start returns a running agent that is closed with the test.
func start(t *testing.T, opts Options) *Agent {
	t.Helper()
	a := New(opts)
	if err := a.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// testLog sends the agent's Debug log to t.Log.
func testLog(t *testing.T) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(testWriter{t})
	l.SetLevel(logrus.DebugLevel)
	return logrus.NewEntry(l)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func url(a *Agent) string { return "http://" + a.Endpoint() + APIPath }

// post sends one call and returns the status code and body.
func post(t *testing.T, target, contentType, accept string, body []byte) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func encode(t *testing.T, contentType string, c *executor.Call) []byte {
	t.Helper()
	var (
		b   []byte
		err error
	)
	if contentType == MediaTypeJSON {
		b, err = json.Marshal(c)
	} else {
		b, err = proto.Marshal(c)
	}
	if err != nil {
		t.Fatalf("encode call: %v", err)
	}
	return b
}

// send posts c as protobuf and requires want.
func send(t *testing.T, a *Agent, c *executor.Call, want int) {
	t.Helper()
	if code, body := post(t, url(a), MediaTypeProtobuf, "", encode(t, MediaTypeProtobuf, c)); code != want {
		t.Fatalf("%s: got %d %q, want %d", c.Type, code, body, want)
	}
}

func ids(typ executor.Call_Type) executor.Call {
	return executor.Call{
		ExecutorID:  mesos.ExecutorID{Value: DefaultExecutorID},
		FrameworkID: mesos.FrameworkID{Value: DefaultFrameworkID},
		Type:        typ,
	}
}

func updateCall(taskID string, state mesos.TaskState) *executor.Call {
	id := uuid.New()
	c := ids(executor.Call_UPDATE)
	c.Update = &executor.Call_Update{Status: mesos.TaskStatus{
		TaskID:     mesos.TaskID{Value: taskID},
		State:      state.Enum(),
		Source:     mesos.SOURCE_EXECUTOR.Enum(),
		ExecutorID: &mesos.ExecutorID{Value: DefaultExecutorID},
		Timestamp:  proto.Float64(float64(time.Now().Unix())),
		UUID:       id[:],
	}}
	return &c
}

func subscribeCall(sub *executor.Call_Subscribe) *executor.Call {
	c := ids(executor.Call_SUBSCRIBE)
	c.Subscribe = sub
	return &c
}

// events is the client side of a SUBSCRIBE stream.
type events struct {
	contentType string
	ch          chan *executor.Event
	done        chan struct{}
	err         error // the read error that ended the stream; nil for EOF
}

// subscribe opens a stream and requires 200.
func subscribe(t *testing.T, target, contentType, accept string, sub *executor.Call_Subscribe) *events {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(encode(t, contentType, subscribeCall(sub))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("SUBSCRIBE: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("SUBSCRIBE: got %d %q, want 200", resp.StatusCode, b)
	}
	e := &events{
		contentType: resp.Header.Get("Content-Type"),
		ch:          make(chan *executor.Event, 100),
		done:        make(chan struct{}),
	}
	t.Cleanup(func() {
		resp.Body.Close()
		<-e.done
	})
	go func() {
		defer close(e.done)
		defer close(e.ch)
		r := recordio.NewReader(resp.Body)
		for {
			frame, err := r.ReadFrame()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					e.err = err
				}
				return
			}
			ev := new(executor.Event)
			if e.contentType == MediaTypeJSON {
				err = json.Unmarshal(frame, ev)
			} else {
				err = proto.Unmarshal(frame, ev)
			}
			if err != nil {
				e.err = err
				return
			}
			e.ch <- ev
		}
	}()
	return e
}

// next returns the next event and requires its type.
func (e *events) next(t *testing.T, want executor.Event_Type) *executor.Event {
	t.Helper()
	select {
	case ev, ok := <-e.ch:
		if !ok {
			t.Fatalf("stream ended (err %v), want %s", e.err, want)
		}
		if ev.Type != want {
			t.Fatalf("got event %s, want %s", ev.Type, want)
		}
		return ev
	case <-time.After(waitTimeout):
		t.Fatalf("no event, want %s", want)
	}
	return nil
}

// end waits for the stream to end and returns its read error (nil = EOF).
func (e *events) end(t *testing.T) error {
	t.Helper()
	select {
	case <-e.done:
	case <-time.After(waitTimeout):
		t.Fatal("stream did not end")
	}
	for ev := range e.ch {
		t.Fatalf("unexpected event %s before the end of the stream", ev.Type)
	}
	return e.err
}

func (e *events) ack(t *testing.T, c *executor.Call) {
	t.Helper()
	ev := e.next(t, executor.Event_ACKNOWLEDGED)
	if got, want := ev.Acknowledged.UUID, c.Update.Status.UUID; !bytes.Equal(got, want) {
		t.Fatalf("ACKNOWLEDGED uuid %x, want %x", got, want)
	}
	if got, want := ev.Acknowledged.TaskID.Value, c.Update.Status.TaskID.Value; got != want {
		t.Fatalf("ACKNOWLEDGED task %q, want %q", got, want)
	}
}

func wantState(t *testing.T, a *Agent, taskID string, want mesos.TaskState) {
	t.Helper()
	if got, ok := a.TaskState(taskID); !ok || got != want {
		t.Fatalf("TaskState(%s) = %s, %v; want %s", taskID, got, ok, want)
	}
}

func TestSubscribeLaunchUpdateAck(t *testing.T) {
	a := start(t, Options{
		Capabilities: []mesos.FrameworkInfo_Capability_Type{mesos.FrameworkInfo_Capability_TASK_KILLING_STATE},
		Checkpoint:   true,
		Log:          testLog(t),
	})
	a.Launch(Task("t1", map[string]string{"k": "v"}, 0.1, 32))
	wantState(t, a, "t1", mesos.TASK_STAGING)

	ev := subscribe(t, url(a), MediaTypeProtobuf, MediaTypeProtobuf, &executor.Call_Subscribe{})
	if ev.contentType != MediaTypeProtobuf {
		t.Fatalf("stream Content-Type %q, want %q", ev.contentType, MediaTypeProtobuf)
	}
	sub := ev.next(t, executor.Event_SUBSCRIBED).Subscribed
	fw := sub.FrameworkInfo
	if fw.GetID().Value != DefaultFrameworkID || !fw.GetCheckpoint() || fw.Name == "" ||
		len(fw.Capabilities) != 1 || fw.Capabilities[0].Type != mesos.FrameworkInfo_Capability_TASK_KILLING_STATE {
		t.Errorf("framework_info = %v", fw)
	}
	if sub.ExecutorInfo.ExecutorID.Value != DefaultExecutorID || sub.ExecutorInfo.GetFrameworkID().Value != DefaultFrameworkID {
		t.Errorf("executor_info = %v", sub.ExecutorInfo)
	}
	if sub.AgentInfo.GetID().Value != DefaultAgentID || sub.AgentInfo.Hostname != Hostname {
		t.Errorf("agent_info = %v", sub.AgentInfo)
	}
	if sub.GetContainerID().Value != ContainerID {
		t.Errorf("container_id = %v", sub.ContainerID)
	}
	launch := ev.next(t, executor.Event_LAUNCH).Launch.Task
	if launch.TaskID.Value != "t1" || launch.AgentID.Value != DefaultAgentID || launch.Labels == nil {
		t.Errorf("launched task = %v", launch)
	}
	select {
	case <-a.Subscribed():
	default:
		t.Error("Subscribed() not closed after SUBSCRIBED")
	}

	c := updateCall("t1", mesos.TASK_RUNNING)
	send(t, a, c, http.StatusAccepted)
	ev.ack(t, c)
	wantState(t, a, "t1", mesos.TASK_RUNNING)
	ups := a.Updates()
	if len(ups) != 1 {
		t.Fatalf("Updates() has %d entries, want 1", len(ups))
	}
	raw, _ := proto.Marshal(c.Update)
	if u := ups[0]; !u.Acked || !bytes.Equal(u.UUID, c.Update.Status.UUID) || !bytes.Equal(u.Raw, raw) ||
		u.ContentType != MediaTypeProtobuf || u.Status.GetState() != mesos.TASK_RUNNING {
		t.Errorf("recorded update = %+v", u)
	}

	// Subscribed: events go out at once.
	a.Launch(Task("t2", nil, 0.1, 32))
	ev.next(t, executor.Event_LAUNCH)
	grace := int64(time.Second)
	a.Kill("t2", &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: grace}})
	if k := ev.next(t, executor.Event_KILL).Kill; k.TaskID.Value != "t2" || k.KillPolicy.GetGracePeriod().Nanoseconds != grace {
		t.Errorf("KILL = %v", k)
	}
	a.SendMessage([]byte("hi"))
	if m := ev.next(t, executor.Event_MESSAGE).Message; string(m.Data) != "hi" {
		t.Errorf("MESSAGE data %q", m.Data)
	}
	a.Shutdown()
	ev.next(t, executor.Event_SHUTDOWN)
	if n := a.SubscribeCount(); n != 1 {
		t.Errorf("SubscribeCount() = %d, want 1", n)
	}
}

func TestValidation(t *testing.T) {
	a := start(t, Options{})
	a.Launch(Task("t1", nil, 0.1, 32))
	subscribe(t, url(a), MediaTypeProtobuf, "", &executor.Call_Subscribe{})

	pb := func(c *executor.Call) func(*testing.T) []byte {
		return func(t *testing.T) []byte { return encode(t, MediaTypeProtobuf, c) }
	}
	raw := func(s string) func(*testing.T) []byte {
		return func(*testing.T) []byte { return []byte(s) }
	}
	withStatus := func(f func(*mesos.TaskStatus)) *executor.Call {
		c := updateCall("t1", mesos.TASK_RUNNING)
		f(&c.Update.Status)
		return c
	}
	withType := func(typ executor.Call_Type, f func(*executor.Call)) *executor.Call {
		c := ids(typ)
		if f != nil {
			f(&c)
		}
		return &c
	}
	heartbeat := encode(t, MediaTypeProtobuf, withType(executor.Call_HEARTBEAT, nil))
	// Field 3 (type) is the varint 0x18 0x04 in the encoding above.
	noType := bytes.Replace(heartbeat, []byte{0x18, 0x04}, nil, 1)
	v0 := uuid.New()
	v0[6] &= 0x0f

	for _, tc := range []struct {
		name        string
		method      string // default POST
		path        string // default APIPath
		contentType string // default protobuf; "-" for none
		accept      string
		body        func(*testing.T) []byte
		wantCode    int
		wantBody    string
	}{
		{name: "GET", method: http.MethodGet, body: raw(""), wantCode: 405},
		{name: "unknown path", path: "/api/v1/scheduler", body: pb(updateCall("t1", mesos.TASK_RUNNING)), wantCode: 404},
		{name: "no Content-Type", contentType: "-", body: pb(updateCall("t1", mesos.TASK_RUNNING)), wantCode: 400, wantBody: "Expecting 'Content-Type' to be present"},
		{name: "text/plain", contentType: "text/plain", body: raw("x"), wantCode: 415},
		{name: "JSON with parameters", contentType: MediaTypeJSON + "; charset=utf-8", body: raw("{}"), wantCode: 415},
		{name: "garbage protobuf", body: raw("\xff\xff\xff"), wantCode: 400, wantBody: "Failed to parse body into Call protobuf"},
		{name: "garbage JSON", contentType: MediaTypeJSON, body: raw("{"), wantCode: 400, wantBody: "Failed to parse body into JSON"},
		{name: "protobuf missing executor_id", body: raw("\x18\x04"), wantCode: 400, wantBody: "Failed to parse body into Call protobuf"},
		{name: "JSON missing executor_id", contentType: MediaTypeJSON, body: raw(`{"type":"HEARTBEAT","framework_id":{"value":"fw-local"}}`), wantCode: 400, wantBody: "executor_id"},
		{name: "JSON missing framework_id", contentType: MediaTypeJSON, body: raw(`{"type":"HEARTBEAT","executor_id":{"value":"exec-local"}}`), wantCode: 400, wantBody: "framework_id"},
		{name: "JSON missing type", contentType: MediaTypeJSON, body: raw(`{"executor_id":{"value":"exec-local"},"framework_id":{"value":"fw-local"}}`), wantCode: 400, wantBody: "Expecting 'type' to be present"},
		{name: "protobuf missing type", body: raw(string(noType)), wantCode: 400, wantBody: "Expecting 'type' to be present"},
		{name: "SUBSCRIBE without subscribe", body: pb(withType(executor.Call_SUBSCRIBE, nil)), wantCode: 400, wantBody: "Expecting 'subscribe' to be present"},
		{name: "SUBSCRIBE accepting recordio", accept: "application/recordio", body: pb(subscribeCall(&executor.Call_Subscribe{})), wantCode: 406},
		{name: "SUBSCRIBE refusing both with q=0", accept: MediaTypeJSON + ";q=0, " + MediaTypeProtobuf + ";q=0", body: pb(subscribeCall(&executor.Call_Subscribe{})), wantCode: 406},
		{name: "SUBSCRIBE unknown executor", body: pb(func() *executor.Call {
			c := subscribeCall(&executor.Call_Subscribe{})
			c.ExecutorID.Value = "other"
			return c
		}()), wantCode: 400, wantBody: "Executor cannot be found"},
		{name: "UPDATE without update", body: pb(withType(executor.Call_UPDATE, nil)), wantCode: 400, wantBody: "Expecting 'update' to be present"},
		{name: "uuid missing", body: pb(withStatus(func(s *mesos.TaskStatus) { s.UUID = nil })), wantCode: 400, wantBody: "Expecting 'uuid' to be present"},
		{name: "uuid as text", body: pb(withStatus(func(s *mesos.TaskStatus) { s.UUID = []byte(uuid.NewString() + "x") })), wantCode: 400, wantBody: "Not a valid UUID"},
		{name: "uuid version 0", body: pb(withStatus(func(s *mesos.TaskStatus) { s.UUID = v0[:] })), wantCode: 400, wantBody: "Not a valid UUID"},
		{name: "status executor_id differs", body: pb(withStatus(func(s *mesos.TaskStatus) { s.ExecutorID.Value = "other" })), wantCode: 400, wantBody: "does not match ExecutorID in TaskStatus"},
		{name: "source unset", body: pb(withStatus(func(s *mesos.TaskStatus) { s.Source = nil })), wantCode: 400, wantBody: "expecting 'SOURCE_EXECUTOR'"},
		{name: "source agent", body: pb(withStatus(func(s *mesos.TaskStatus) { s.Source = mesos.SOURCE_AGENT.Enum() })), wantCode: 400, wantBody: "invalid source"},
		{name: "TASK_STAGING", body: pb(withStatus(func(s *mesos.TaskStatus) { s.State = mesos.TASK_STAGING.Enum() })), wantCode: 400, wantBody: "Received TASK_STAGING"},
		{name: "check_status without type", body: pb(withStatus(func(s *mesos.TaskStatus) { s.CheckStatus = &mesos.CheckStatusInfo{} })), wantCode: 400, wantBody: "must specify 'type'"},
		{name: "check_status COMMAND without command", body: pb(withStatus(func(s *mesos.TaskStatus) {
			s.CheckStatus = &mesos.CheckStatusInfo{Type: mesos.CheckInfo_COMMAND.Enum()}
		})), wantCode: 400, wantBody: "Expecting 'command' to be set"},
		{name: "MESSAGE without message", body: pb(withType(executor.Call_MESSAGE, nil)), wantCode: 400, wantBody: "Expecting 'message' to be present"},
		{name: "unknown framework", body: pb(func() *executor.Call {
			c := updateCall("t1", mesos.TASK_RUNNING)
			c.FrameworkID.Value = "other"
			return c
		}()), wantCode: 400, wantBody: "Framework cannot be found"},
		{name: "unknown executor", body: pb(func() *executor.Call {
			c := updateCall("t1", mesos.TASK_RUNNING)
			c.ExecutorID.Value = "other"
			c.Update.Status.ExecutorID = nil
			return c
		}()), wantCode: 400, wantBody: "Executor cannot be found"},
		{name: "HEARTBEAT with dummy ids", body: pb(withType(executor.Call_HEARTBEAT, func(c *executor.Call) {
			c.ExecutorID.Value, c.FrameworkID.Value = "dummy", "dummy"
		})), wantCode: 202},
		{name: "UNKNOWN", body: pb(withType(executor.Call_UNKNOWN, nil)), wantCode: 501},
		{name: "MESSAGE", body: pb(withType(executor.Call_MESSAGE, func(c *executor.Call) {
			c.Message = &executor.Call_Message{Data: []byte("x")}
		})), wantCode: 202},
		{name: "valid UPDATE on the libprocess path", path: SlaveAPIPath, body: pb(updateCall("t1", mesos.TASK_RUNNING)), wantCode: 202},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body(t)
			method, path, ct := tc.method, tc.path, tc.contentType
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = APIPath
			}
			if ct == "" {
				ct = MediaTypeProtobuf
			}
			req, err := http.NewRequest(method, "http://"+a.Endpoint()+path, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if ct != "-" {
				req.Header.Set("Content-Type", ct)
			}
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantCode || !strings.Contains(string(got), tc.wantBody) {
				t.Errorf("got %d %q, want %d containing %q", resp.StatusCode, got, tc.wantCode, tc.wantBody)
			}
		})
	}
}

func TestNotSubscribed(t *testing.T) {
	a := start(t, Options{})
	a.Launch(Task("t1", nil, 0.1, 32))
	for _, tc := range []struct {
		name string
		call *executor.Call
		want int
	}{
		{"UPDATE", updateCall("t1", mesos.TASK_RUNNING), http.StatusForbidden},
		{"UNKNOWN", func() *executor.Call { c := ids(executor.Call_UNKNOWN); return &c }(), http.StatusForbidden},
		{"HEARTBEAT", func() *executor.Call { c := ids(executor.Call_HEARTBEAT); return &c }(), http.StatusAccepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(t, url(a), MediaTypeProtobuf, "", encode(t, MediaTypeProtobuf, tc.call))
			if code != tc.want {
				t.Fatalf("got %d %q, want %d", code, body, tc.want)
			}
			if code == http.StatusForbidden && body != "Executor is not subscribed" {
				t.Errorf("body %q", body)
			}
		})
	}
}

func TestNegotiate(t *testing.T) {
	for _, tc := range []struct {
		accept []string
		want   string // "" = 406
	}{
		{nil, MediaTypeJSON},
		{[]string{MediaTypeProtobuf}, MediaTypeProtobuf},
		{[]string{"*/*"}, MediaTypeJSON},
		{[]string{"application/*"}, MediaTypeJSON},
		{[]string{MediaTypeJSON + ";q=0", "*/*"}, MediaTypeProtobuf},
		{[]string{"application/*;q=0.5, " + MediaTypeJSON + ";q=0"}, MediaTypeProtobuf},
		{[]string{"application/recordio"}, ""},
		{[]string{"text/*, application/*;q=0"}, ""},
	} {
		t.Run(strings.Join(tc.accept, "|"), func(t *testing.T) {
			got, ok := negotiate(tc.accept)
			if !ok {
				got = ""
			}
			if got != tc.want {
				t.Errorf("negotiate(%q) = %q, want %q", tc.accept, got, tc.want)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	a := start(t, Options{Capabilities: []mesos.FrameworkInfo_Capability_Type{mesos.FrameworkInfo_Capability_PARTITION_AWARE}})
	a.Launch(Task("t1", nil, 0.1, 32))
	// No Accept header: the agent picks JSON.
	ev := subscribe(t, "http://"+a.Endpoint()+SlaveAPIPath, MediaTypeJSON, "", &executor.Call_Subscribe{})
	if ev.contentType != MediaTypeJSON {
		t.Fatalf("stream Content-Type %q, want %q", ev.contentType, MediaTypeJSON)
	}
	sub := ev.next(t, executor.Event_SUBSCRIBED).Subscribed
	if caps := sub.FrameworkInfo.Capabilities; len(caps) != 1 || caps[0].Type != mesos.FrameworkInfo_Capability_PARTITION_AWARE {
		t.Errorf("capabilities = %v", caps)
	}
	ev.next(t, executor.Event_LAUNCH)

	c := updateCall("t1", mesos.TASK_STARTING)
	body := encode(t, MediaTypeJSON, c)
	if code, msg := post(t, url(a), MediaTypeJSON, "", body); code != http.StatusAccepted {
		t.Fatalf("UPDATE: got %d %q", code, msg)
	}
	ev.ack(t, c)
	u := a.Updates()[0]
	var back executor.Call_Update
	if err := json.Unmarshal(u.Raw, &back); err != nil || !bytes.Equal(back.Status.UUID, c.Update.Status.UUID) {
		t.Errorf("Raw %q does not hold the update (%v)", u.Raw, err)
	}
	if u.ContentType != MediaTypeJSON {
		t.Errorf("ContentType %q", u.ContentType)
	}

	// A JSON call may ask for a protobuf stream.
	ev2 := subscribe(t, url(a), MediaTypeJSON, MediaTypeProtobuf, &executor.Call_Subscribe{})
	if ev2.contentType != MediaTypeProtobuf {
		t.Fatalf("stream Content-Type %q, want protobuf", ev2.contentType)
	}
	ev2.next(t, executor.Event_SUBSCRIBED)
	if err := ev.end(t); err != nil {
		t.Errorf("replaced stream ended with %v, want a clean EOF", err)
	}
}

func TestUpdateDispositions(t *testing.T) {
	a := start(t, Options{})
	a.Launch(Task("t1", nil, 0.1, 32))
	ev := subscribe(t, url(a), MediaTypeProtobuf, "", &executor.Call_Subscribe{})
	ev.next(t, executor.Event_SUBSCRIBED)
	ev.next(t, executor.Event_LAUNCH)

	ghost := updateCall("ghost", mesos.TASK_RUNNING)
	send(t, a, ghost, http.StatusAccepted)
	otherAgent := updateCall("t1", mesos.TASK_FAILED)
	otherAgent.Update.Status.AgentID = &mesos.AgentID{Value: "other"}
	send(t, a, otherAgent, http.StatusAccepted)
	running := updateCall("t1", mesos.TASK_RUNNING)
	send(t, a, running, http.StatusAccepted)
	// The stream is ordered, so neither earlier update was ACKed.
	ev.ack(t, running)
	wantState(t, a, "t1", mesos.TASK_RUNNING)

	send(t, a, running, http.StatusAccepted) // duplicate uuid
	ev.ack(t, running)
	finished := updateCall("t1", mesos.TASK_FINISHED)
	send(t, a, finished, http.StatusAccepted)
	ev.ack(t, finished)
	late := updateCall("t1", mesos.TASK_FAILED)
	send(t, a, late, http.StatusAccepted)
	ev.ack(t, late)
	wantState(t, a, "t1", mesos.TASK_FINISHED)
	if _, ok := a.TaskState("ghost"); ok {
		t.Error("the agent knows the task it was never given")
	}

	ups := a.Updates()
	want := []struct{ acked, dup bool }{{false, false}, {false, false}, {true, false}, {true, true}, {true, false}, {true, false}}
	if len(ups) != len(want) {
		t.Fatalf("Updates() has %d entries, want %d", len(ups), len(want))
	}
	for i, w := range want {
		if ups[i].Acked != w.acked || ups[i].Duplicate != w.dup {
			t.Errorf("update %d (%s %s): Acked %v Duplicate %v, want %v %v", i,
				ups[i].Status.TaskID.Value, ups[i].Status.GetState(), ups[i].Acked, ups[i].Duplicate, w.acked, w.dup)
		}
	}
}

func TestFailNextUpdates(t *testing.T) {
	a := start(t, Options{})
	a.Launch(Task("t1", nil, 0.1, 32))
	ev := subscribe(t, url(a), MediaTypeProtobuf, "", &executor.Call_Subscribe{})
	ev.next(t, executor.Event_SUBSCRIBED)
	ev.next(t, executor.Event_LAUNCH)

	a.FailNextUpdates(http.StatusServiceUnavailable, 2)
	c := updateCall("t1", mesos.TASK_RUNNING)
	send(t, a, c, http.StatusServiceUnavailable)
	send(t, a, c, http.StatusServiceUnavailable)
	send(t, a, c, http.StatusAccepted)
	ev.ack(t, c)
	if ups := a.Updates(); len(ups) != 1 || ups[0].Duplicate {
		t.Fatalf("Updates() = %+v, want only the accepted one", ups)
	}
}

func TestWithholdAcks(t *testing.T) {
	a := start(t, Options{Checkpoint: true})
	task := Task("t1", nil, 0.1, 32)
	a.Launch(task)
	ev := subscribe(t, url(a), MediaTypeProtobuf, "", &executor.Call_Subscribe{})
	ev.next(t, executor.Event_SUBSCRIBED)
	ev.next(t, executor.Event_LAUNCH)

	a.WithholdAcks(true)
	starting := updateCall("t1", mesos.TASK_STARTING)
	send(t, a, starting, http.StatusAccepted)
	a.WithholdAcks(false)
	running := updateCall("t1", mesos.TASK_RUNNING)
	send(t, a, running, http.StatusAccepted)
	ev.ack(t, running) // nothing re-sent for starting
	if u := a.Updates()[0]; u.Acked {
		t.Error("withheld update recorded as Acked")
	}

	// The executor replays what was never ACKed; the agent ACKs the
	// duplicate again on the new stream.
	ev2 := subscribe(t, url(a), MediaTypeProtobuf, "", &executor.Call_Subscribe{
		UnacknowledgedTasks:   []mesos.TaskInfo{task},
		UnacknowledgedUpdates: []executor.Call_Update{*starting.Update},
	})
	if err := ev.end(t); err != nil {
		t.Errorf("old stream ended with %v, want a clean EOF", err)
	}
	ev2.next(t, executor.Event_SUBSCRIBED)
	ev2.ack(t, starting)
	ups := a.Updates()
	raw, _ := proto.Marshal(starting.Update)
	if u := ups[len(ups)-1]; !u.Replayed || !u.Duplicate || !u.Acked || !bytes.Equal(u.Raw, raw) {
		t.Errorf("replayed update recorded as %+v", u)
	}
	// As in the agent, a duplicate still sets the task's latest state.
	wantState(t, a, "t1", mesos.TASK_STARTING)
	if got := a.LastSubscribe(); len(got.UnacknowledgedUpdates) != 1 || len(got.UnacknowledgedTasks) != 1 {
		t.Errorf("LastSubscribe() = %v", got)
	}
	if n := a.SubscribeCount(); n != 2 {
		t.Errorf("SubscribeCount() = %d, want 2", n)
	}
}

func TestDropStream(t *testing.T) {
	a := start(t, Options{})
	t1 := Task("t1", nil, 0.1, 32)
	a.Launch(t1)
	ev := subscribe(t, url(a), MediaTypeProtobuf, "", &executor.Call_Subscribe{})
	ev.next(t, executor.Event_SUBSCRIBED)
	ev.next(t, executor.Event_LAUNCH)

	a.DropStream()
	if err := ev.end(t); err == nil {
		t.Fatal("dropped stream ended with a clean EOF")
	}
	// The agent still thinks the executor is connected: the update is
	// accepted and its ACK, the KILL and the LAUNCH are lost.
	running := updateCall("t1", mesos.TASK_RUNNING)
	send(t, a, running, http.StatusAccepted)
	a.Kill("t1", nil)
	a.Launch(Task("t2", nil, 0.1, 32))

	ev2 := subscribe(t, url(a), MediaTypeProtobuf, "", &executor.Call_Subscribe{
		UnacknowledgedTasks:   []mesos.TaskInfo{t1},
		UnacknowledgedUpdates: []executor.Call_Update{*running.Update},
	})
	ev2.next(t, executor.Event_SUBSCRIBED)
	ev2.ack(t, running)
	a.SendMessage([]byte("after"))
	ev2.next(t, executor.Event_MESSAGE) // no KILL or LAUNCH re-sent

	// t2's LAUNCH never arrived and the executor does not report it.
	u, err := a.WaitUpdate(context.Background(), func(u Update) bool { return u.Status.TaskID.Value == "t2" })
	if err != nil {
		t.Fatal(err)
	}
	if u.Status.GetState() != mesos.TASK_LOST || u.Status.GetSource() != mesos.SOURCE_AGENT ||
		u.Status.GetReason() != mesos.REASON_AGENT_RESTARTED || u.Raw != nil {
		t.Errorf("t2 update = %v", u.Status)
	}
}

func TestRestart(t *testing.T) {
	a := start(t, Options{Checkpoint: true, ReregistrationTimeout: time.Second})
	t1 := Task("t1", nil, 0.1, 32)
	a.Launch(t1)
	a.Launch(Task("t2", nil, 0.1, 32))
	ev := subscribe(t, url(a), MediaTypeProtobuf, "", &executor.Call_Subscribe{})
	ev.next(t, executor.Event_SUBSCRIBED)
	ev.next(t, executor.Event_LAUNCH)
	ev.next(t, executor.Event_LAUNCH)
	running := updateCall("t1", mesos.TASK_RUNNING)
	send(t, a, running, http.StatusAccepted)
	ev.ack(t, running)

	endpoint := a.Endpoint()
	if err := a.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	// Pooled connections died with the old agent; a POST is not retried
	// on one, so start afresh as an executor would after the error.
	http.DefaultClient.CloseIdleConnections()
	if got := a.Endpoint(); got != endpoint {
		t.Fatalf("Endpoint() after Restart = %s, want %s", got, endpoint)
	}
	if err := ev.end(t); err == nil {
		t.Error("stream survived the restart with a clean EOF")
	}
	again := updateCall("t1", mesos.TASK_RUNNING)
	if code, body := post(t, url(a), MediaTypeProtobuf, "", encode(t, MediaTypeProtobuf, again)); code != 503 || body != msgRecovering {
		t.Fatalf("UPDATE while recovering: got %d %q", code, body)
	}
	hb := ids(executor.Call_HEARTBEAT)
	send(t, a, &hb, http.StatusAccepted)

	// t2 stayed STAGING and the executor does not know it.
	ev2 := subscribe(t, url(a), MediaTypeProtobuf, "", &executor.Call_Subscribe{})
	ev2.next(t, executor.Event_SUBSCRIBED)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	u, err := a.WaitUpdate(ctx, func(u Update) bool {
		return u.Status.TaskID.Value == "t2" && u.Status.GetSource() == mesos.SOURCE_AGENT
	})
	if err != nil {
		t.Fatal(err)
	}
	if u.Status.GetState() != mesos.TASK_LOST || u.Status.GetReason() != mesos.REASON_AGENT_RESTARTED {
		t.Errorf("t2 update = %v", u.Status)
	}
	wantState(t, a, "t2", mesos.TASK_LOST)
	wantState(t, a, "t1", mesos.TASK_RUNNING)

	// Re-subscribed, but the reregistration window is still open.
	send(t, a, again, http.StatusServiceUnavailable)
	deadline := time.Now().Add(waitTimeout)
	for {
		code, _ := post(t, url(a), MediaTypeProtobuf, "", encode(t, MediaTypeProtobuf, again))
		if code == http.StatusAccepted {
			break
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("UPDATE after the window: got %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ev2.ack(t, again)
}

func TestRestartWindowNeedsResubscribe(t *testing.T) {
	a := start(t, Options{Checkpoint: true, ReregistrationTimeout: 100 * time.Millisecond})
	a.Launch(Task("queued", nil, 0.1, 32))
	a.Stop()
	a.Launch(Task("later", nil, 0.1, 32))
	if err := a.Restart(); err != nil {
		t.Fatal(err)
	}
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(300 * time.Millisecond)
	c := updateCall("later", mesos.TASK_RUNNING)
	send(t, a, c, http.StatusServiceUnavailable)

	ev := subscribe(t, url(a), MediaTypeProtobuf, "", &executor.Call_Subscribe{})
	ev.next(t, executor.Event_SUBSCRIBED)
	// The task queued before the restart was recovered as launched and is
	// lost; the one launched while the agent was down is delivered.
	if l := ev.next(t, executor.Event_LAUNCH).Launch.Task.TaskID.Value; l != "later" {
		t.Errorf("LAUNCH %s, want later", l)
	}
	wantState(t, a, "queued", mesos.TASK_LOST)
	send(t, a, c, http.StatusAccepted)
	ev.ack(t, c)
}

func TestShutdownFirst(t *testing.T) {
	a := start(t, Options{})
	a.ShutdownFirst()
	ev := subscribe(t, url(a), MediaTypeProtobuf, "", &executor.Call_Subscribe{})
	ev.next(t, executor.Event_SHUTDOWN)
	if err := ev.end(t); err != nil {
		t.Errorf("stream ended with %v, want a clean EOF", err)
	}
	select {
	case <-a.Subscribed():
		t.Error("Subscribed() closed without SUBSCRIBED")
	default:
	}

	ev = subscribe(t, url(a), MediaTypeProtobuf, "", &executor.Call_Subscribe{})
	ev.next(t, executor.Event_SUBSCRIBED)

	// After SHUTDOWN the executor is terminating: a re-SUBSCRIBE gets
	// SHUTDOWN only.
	a.Shutdown()
	ev.next(t, executor.Event_SHUTDOWN)
	ev2 := subscribe(t, url(a), MediaTypeProtobuf, "", &executor.Call_Subscribe{})
	ev2.next(t, executor.Event_SHUTDOWN)
	if err := ev2.end(t); err != nil {
		t.Errorf("stream ended with %v", err)
	}
	if n := a.SubscribeCount(); n != 1 {
		t.Errorf("SubscribeCount() = %d, want 1", n)
	}
}

func TestScriptedStatuses(t *testing.T) {
	a := start(t, Options{})
	a.SetRecovering(true)
	hb := ids(executor.Call_HEARTBEAT)
	if code, body := post(t, url(a), MediaTypeProtobuf, "", encode(t, MediaTypeProtobuf, &hb)); code != 503 || body != msgRecovering {
		t.Fatalf("HEARTBEAT while recovering: %d %q", code, body)
	}
	a.SetRecovering(false)
	send(t, a, &hb, http.StatusAccepted)

	a.SetSubscribeStatus(http.StatusBadRequest, "Executor cannot be found", 1)
	body := encode(t, MediaTypeProtobuf, subscribeCall(&executor.Call_Subscribe{}))
	if code, msg := post(t, url(a), MediaTypeProtobuf, "", body); code != 400 || msg != "Executor cannot be found" {
		t.Fatalf("scripted SUBSCRIBE: %d %q", code, msg)
	}
	ev := subscribe(t, url(a), MediaTypeProtobuf, "", &executor.Call_Subscribe{})
	ev.next(t, executor.Event_SUBSCRIBED)
}

func TestKillBeforeDelivery(t *testing.T) {
	a := start(t, Options{Capabilities: []mesos.FrameworkInfo_Capability_Type{mesos.FrameworkInfo_Capability_PARTITION_AWARE}})
	a.Launch(Task("t1", nil, 0.1, 32))
	a.Kill("t1", nil)
	a.Kill("ghost", nil)
	ups := a.Updates()
	if len(ups) != 2 {
		t.Fatalf("Updates() = %+v, want 2 agent updates", ups)
	}
	if s := ups[0].Status; s.GetState() != mesos.TASK_KILLED || s.GetReason() != mesos.REASON_TASK_KILLED_DURING_LAUNCH || s.GetSource() != mesos.SOURCE_AGENT {
		t.Errorf("t1 update = %v", s)
	}
	if s := ups[1].Status; s.GetState() != mesos.TASK_DROPPED {
		t.Errorf("ghost update = %v, want TASK_DROPPED for a partition-aware framework", s)
	}
	ev := subscribe(t, url(a), MediaTypeProtobuf, "", &executor.Call_Subscribe{})
	ev.next(t, executor.Event_SUBSCRIBED)
	a.SendMessage([]byte("x"))
	ev.next(t, executor.Event_MESSAGE) // no LAUNCH for the killed task
}

func TestWaitUpdateContext(t *testing.T) {
	a := New(Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := a.WaitUpdate(ctx, func(Update) bool { return true }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitUpdate: %v, want DeadlineExceeded", err)
	}
}

func envMap(env []string) map[string]string {
	m := make(map[string]string)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func TestEnv(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///run/test.sock")
	a := start(t, Options{Checkpoint: true, FrameworkID: "fw", ExecutorID: "ex", AgentID: "ag"})
	env := envMap(a.Env("/sandbox", map[string]string{"EXTRA": "1", "MESOS_RECOVERY_TIMEOUT": "1mins"}))
	for k, want := range map[string]string{
		"MESOS_FRAMEWORK_ID":                   "fw",
		"MESOS_EXECUTOR_ID":                    "ex",
		"MESOS_SLAVE_ID":                       "ag",
		"MESOS_AGENT_ENDPOINT":                 a.Endpoint(),
		"MESOS_SLAVE_PID":                      "slave(1)@" + a.Endpoint(),
		"MESOS_DIRECTORY":                      "/sandbox",
		"MESOS_SANDBOX":                        "/sandbox",
		"MESOS_CHECKPOINT":                     "1",
		"MESOS_RECOVERY_TIMEOUT":               "1mins",
		"MESOS_SUBSCRIPTION_BACKOFF_MAX":       "2secs",
		"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "5secs",
		"DOCKER_HOST":                          "unix:///run/test.sock",
		"EXTRA":                                "1",
	} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
	if _, ok := env["PATH"]; !ok && os.Getenv("PATH") != "" {
		t.Error("PATH not passed on")
	}

	env = envMap(start(t, Options{}).Env("/s", nil))
	if env["MESOS_CHECKPOINT"] != "0" || env["MESOS_RECOVERY_TIMEOUT"] != "" || env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] != "" {
		t.Errorf("without checkpointing: %v", env)
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{15 * time.Minute, "15mins"},
		{2 * time.Second, "2secs"},
		{1500 * time.Millisecond, "1.5secs"},
		{90 * time.Second, "1.5mins"},
		{500 * time.Millisecond, "500ms"},
		{36 * time.Hour, "1.5days"},
		{0, "0ns"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			got := FormatDuration(tc.d)
			if got != tc.want {
				t.Fatalf("FormatDuration(%v) = %q, want %q", tc.d, got, tc.want)
			}
			back, err := mesostime.ParseDuration(got)
			if err != nil || back != tc.d {
				t.Errorf("ParseDuration(%q) = %v, %v", got, back, err)
			}
		})
	}
}
