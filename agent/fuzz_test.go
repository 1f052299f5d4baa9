package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/recordio"
	"github.com/sirupsen/logrus"
)

// The fuzz targets below run as ordinary tests over their seeds and the
// corpus in testdata/fuzz/<name> (every earlier find is there); `make fuzz`
// runs each with -fuzz.

// FuzzFrameReader: any byte stream through the RecordIO reader ends (no
// panic, no endless loop), every frame fits the limit, and frames that were
// read re-encode to a stream that reads back the same.
func FuzzFrameReader(f *testing.F) {
	f.Add([]byte("3\nabc2\nde"), uint16(16))
	f.Add([]byte("10000000000000000000\n"), uint16(1024))
	f.Add([]byte("18446744073709551615\nx"), uint16(1024))
	f.Add([]byte("0\n0\n1\nx"), uint16(4))
	f.Add([]byte("17\n0123456789abcdefg"), uint16(16))
	f.Add([]byte(" 3\nabc"), uint16(16))
	f.Add([]byte("3\r\nabc"), uint16(16))
	f.Add([]byte("-1\n"), uint16(16))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		max := int(limit) + 1
		frames := readAll(t, data, max)
		var buf bytes.Buffer
		w := recordio.NewWriter(&buf)
		for _, fr := range frames {
			if err := w.WriteFrame(fr); err != nil {
				t.Fatal(err)
			}
		}
		again := readAll(t, buf.Bytes(), max)
		if len(again) != len(frames) {
			t.Fatalf("re-encoded stream gave %d frames, want %d", len(again), len(frames))
		}
		for i := range frames {
			if !bytes.Equal(again[i], frames[i]) {
				t.Fatalf("frame %d differs after re-encoding", i)
			}
		}
	})
}

// readAll reads frames until the first error.
func readAll(t *testing.T, data []byte, max int) [][]byte {
	r := newFrameReader(bytes.NewReader(data), max)
	var frames [][]byte
	// Each frame takes at least one input byte of header, so more reads
	// than input bytes means the reader loops.
	for i := 0; i <= len(data); i++ {
		fr, err := r.ReadFrame()
		if err != nil {
			if !errors.Is(err, io.EOF) && frameError(err, max) == nil {
				t.Fatalf("error %v is neither EOF nor a framing error", err)
			}
			return frames
		}
		if len(fr) > max {
			t.Fatalf("frame of %d bytes passed the %d byte limit", len(fr), max)
		}
		frames = append(frames, bytes.Clone(fr))
	}
	t.Fatalf("more than %d frames from %d bytes", len(data)+1, len(data))
	return nil
}

// fuzzClient is a Client whose event handling can run without a network.
func fuzzClient() *Client {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return New(Config{FrameworkID: "fw", ExecutorID: "ex"}, logrus.NewEntry(l))
}

// checkDecoded asserts what the task manager relies on for an event the
// decoder accepted, and runs the link's own handling of it.
func checkDecoded(t *testing.T, ev *executor.Event, err error) {
	if err != nil {
		return
	}
	if ev == nil {
		t.Fatal("nil event without an error")
	}
	switch ev.GetType() {
	case executor.Event_SUBSCRIBED:
		if ev.GetSubscribed() == nil {
			t.Fatal("SUBSCRIBED accepted without its payload")
		}
		_ = ev.GetSubscribed().FrameworkInfo.GetCapabilities()
	case executor.Event_LAUNCH:
		if ev.GetLaunch() == nil || ev.GetLaunch().Task.TaskID.Value == "" {
			t.Fatal("LAUNCH accepted without a task id")
		}
	case executor.Event_LAUNCH_GROUP:
		if ev.GetLaunchGroup() == nil || len(ev.GetLaunchGroup().TaskGroup.Tasks) == 0 {
			t.Fatal("LAUNCH_GROUP accepted without tasks")
		}
		for _, task := range ev.GetLaunchGroup().TaskGroup.Tasks {
			if task.TaskID.Value == "" {
				t.Fatal("LAUNCH_GROUP accepted with a task without an id")
			}
		}
	case executor.Event_KILL:
		if ev.GetKill() == nil || ev.GetKill().TaskID.Value == "" {
			t.Fatal("KILL accepted without a task id")
		}
	case executor.Event_ACKNOWLEDGED:
		if ev.GetAcknowledged() == nil || ev.GetAcknowledged().TaskID.Value == "" || len(ev.GetAcknowledged().UUID) == 0 {
			t.Fatal("ACKNOWLEDGED accepted without task id or uuid")
		}
	case executor.Event_MESSAGE:
		if ev.GetMessage() == nil {
			t.Fatal("MESSAGE accepted without its payload")
		}
	}
	fuzzClient().handleEvent(ev)
}

func eventSeeds() []*executor.Event {
	fw := mesos.FrameworkID{Value: "fw"}
	return []*executor.Event{
		{Type: executor.Event_SUBSCRIBED, Subscribed: &executor.Event_Subscribed{
			ExecutorInfo:  mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "ex"}, FrameworkID: &fw},
			FrameworkInfo: mesos.FrameworkInfo{User: "root", Name: "f", ID: &fw},
			AgentInfo:     mesos.AgentInfo{Hostname: "h"},
		}},
		{Type: executor.Event_LAUNCH, Launch: &executor.Event_Launch{Task: mesos.TaskInfo{
			Name: "t", TaskID: mesos.TaskID{Value: "t1"}, AgentID: mesos.AgentID{Value: "a"}}}},
		{Type: executor.Event_LAUNCH_GROUP, LaunchGroup: &executor.Event_LaunchGroup{TaskGroup: mesos.TaskGroupInfo{
			Tasks: []mesos.TaskInfo{{Name: "t", TaskID: mesos.TaskID{Value: "t2"}, AgentID: mesos.AgentID{Value: "a"}}}}}},
		{Type: executor.Event_KILL, Kill: &executor.Event_Kill{TaskID: mesos.TaskID{Value: "t1"}}},
		{Type: executor.Event_ACKNOWLEDGED, Acknowledged: &executor.Event_Acknowledged{TaskID: mesos.TaskID{Value: "t1"}, UUID: []byte("0123456789abcdef")}},
		{Type: executor.Event_MESSAGE, Message: &executor.Event_Message{Data: []byte("hi")}},
		{Type: executor.Event_ERROR, Error: &executor.Event_Error{Message: "boom"}},
		{Type: executor.Event_SHUTDOWN},
		{Type: executor.Event_HEARTBEAT},
		// Payload-less events: the crashes the first fuzzing pass found.
		{Type: executor.Event_LAUNCH},
		{Type: executor.Event_SUBSCRIBED},
		{Type: executor.Event_KILL},
		{Type: executor.Event_LAUNCH_GROUP},
		{Type: executor.Event_ACKNOWLEDGED},
		{Type: executor.Event_MESSAGE},
	}
}

// FuzzDecodeEventProtobuf: the protobuf decoder never panics, and what it
// accepts carries what the task manager needs.
func FuzzDecodeEventProtobuf(f *testing.F) {
	for _, ev := range eventSeeds() {
		b, err := proto.Marshal(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x08, 0x02})
	f.Fuzz(func(t *testing.T, frame []byte) {
		ev, err := decodeProtobufEvent(frame)
		checkDecoded(t, ev, err)
	})
}

// FuzzDecodeEventJSON: the same for JSON, which enforces no required field.
func FuzzDecodeEventJSON(f *testing.F) {
	for _, ev := range eventSeeds() {
		b, err := json.Marshal(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"type":"LAUNCH"}`))
	f.Add([]byte(`{"type":"LAUNCH","launch":{"task":{}}}`))
	f.Add([]byte(`{"type":"LAUNCH_GROUP","launch_group":{"task_group":{"tasks":[{}]}}}`))
	f.Add([]byte(`{"type":7,"acknowledged":{"task_id":{"value":"t"},"uuid":""}}`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		ev, err := decodeJSONEvent(frame)
		checkDecoded(t, ev, err)
	})
}

// FuzzConfigFromEnv: any values of the MESOS_* variables give either an
// error or a Config the link can use: ids set, a parseable http URL with a
// host, durations that are not negative.
func FuzzConfigFromEnv(f *testing.F) {
	f.Add("fw", "ex", "10.0.0.1:5051", "slave(1)@10.0.0.1:5051", "15mins", "2secs", "5secs", "1", "/sandbox", "")
	f.Add("fw", "ex", "#:", "", "", "", "", "0", "/s", "")
	f.Add("fw", "ex", "a b:1", "", "", "", "", "", "/s", "")
	f.Add("fw", "ex", "[::1]:5051", "", "1.5secs", "100ms", "9999999999999999999weeks", "", "/s", "")
	f.Add("fw", "ex", "", "slave(2)@h:1", "-1secs", "NaNsecs", "+Infsecs", "", "/s", "/run/agent.sock")
	f.Add("fw", "ex", "h:1", "", "1e300secs", "0x10secs", "1ns", "", "/s", "")
	f.Fuzz(func(t *testing.T, fw, ex, endpoint, pid, recovery, backoff, grace, checkpoint, sandbox, sock string) {
		env := map[string]string{
			"MESOS_FRAMEWORK_ID":                   fw,
			"MESOS_EXECUTOR_ID":                    ex,
			"MESOS_AGENT_ENDPOINT":                 endpoint,
			"MESOS_SLAVE_PID":                      pid,
			"MESOS_RECOVERY_TIMEOUT":               recovery,
			"MESOS_SUBSCRIPTION_BACKOFF_MAX":       backoff,
			"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": grace,
			"MESOS_CHECKPOINT":                     checkpoint,
			"MESOS_SANDBOX":                        sandbox,
			"MESOS_DOMAIN_SOCKET":                  sock,
		}
		c, err := ConfigFromEnv(func(k string) string { return env[k] })
		if err != nil {
			if !errors.Is(err, ErrBadEnvironment) {
				t.Fatalf("error %v does not wrap ErrBadEnvironment", err)
			}
			return
		}
		if c.FrameworkID == "" || c.ExecutorID == "" || c.Sandbox == "" {
			t.Fatalf("accepted without ids or sandbox: %+v", c)
		}
		for name, d := range map[string]int64{"recovery": int64(c.RecoveryTimeout), "backoff": int64(c.SubscriptionBackoffMax), "grace": int64(c.ShutdownGracePeriod)} {
			if d < 0 {
				t.Fatalf("%s timeout %d is negative", name, d)
			}
		}
		u, err := url.Parse(c.URL)
		if err != nil || u.Scheme != "http" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || !strings.HasSuffix(u.Path, "/api/v1/executor") {
			t.Fatalf("accepted URL %q is not an executor API URL (%v)", c.URL, err)
		}
		_ = c.withDefaults()
	})
}
