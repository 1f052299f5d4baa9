package localagent

import (
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/sirupsen/logrus"
)

// Media types of the executor API.
const (
	MediaTypeJSON     = "application/json"
	MediaTypeProtobuf = "application/x-protobuf"
)

// Paths serving the executor API: the documented one and the libprocess
// delegate's alias that MESOS_SLAVE_PID leads to.
const (
	APIPath      = "/api/v1/executor"
	SlaveAPIPath = "/slave(1)/api/v1/executor"
)

// maxBody bounds a call's body; a LAUNCH's data is the only large thing in
// the API and it flows the other way.
const maxBody = 64 << 20

const msgRecovering = "Agent has not finished recovery"

// call is a decoded executor call plus the raw bytes the agent records.
type call struct {
	executor.Call
	contentType string
	hasType     bool
	// updateRaw is the Call_Update as received; replayRaw holds each
	// SUBSCRIBE.unacknowledged_updates entry as received.
	updateRaw []byte
	replayRaw [][]byte
}

// serveHTTP is Http::executor, in the same order of checks.
func (a *Agent) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != APIPath && r.URL.Path != SlaveAPIPath {
		http.NotFound(w, r)
		return
	}
	a.mu.Lock()
	forced := a.forceRecovering
	a.mu.Unlock()
	if forced {
		reply(w, http.StatusServiceUnavailable, msgRecovering)
		return
	}
	if want := a.opts.AuthToken; want != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+want)) != 1 {
		// libprocess's authenticator answers before the handler runs.
		w.Header().Set("WWW-Authenticate", `Bearer realm="mesos-agent-executor"`)
		reply(w, http.StatusUnauthorized, "")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reply(w, http.StatusMethodNotAllowed, fmt.Sprintf("Expecting one of { 'POST' }, but received '%s'", r.Method))
		return
	}
	if len(r.Header.Values("Content-Type")) == 0 {
		reply(w, http.StatusBadRequest, "Expecting 'Content-Type' to be present")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		reply(w, http.StatusBadRequest, "Failed to read body: "+err.Error())
		return
	}
	c, code, msg := decodeCall(r.Header.Get("Content-Type"), body)
	if c == nil {
		reply(w, code, msg)
		return
	}
	a.log.WithFields(logrus.Fields{"call": c.Type.String(), "content_type": c.contentType}).Debug("received call")
	if msg := validateCall(c); msg != "" {
		reply(w, http.StatusBadRequest, "Failed to validate Executor::Call: "+msg)
		return
	}

	switch c.Type {
	case executor.Call_SUBSCRIBE:
		accept, ok := negotiate(r.Header.Values("Accept"))
		if !ok {
			reply(w, http.StatusNotAcceptable,
				"Expecting 'Accept' to allow '"+MediaTypeProtobuf+"' or '"+MediaTypeJSON+"'")
			return
		}
		a.subscribe(w, r, c, accept)
		return
	case executor.Call_HEARTBEAT:
		// Answered before the lookups: the C++ library sends dummy ids.
		w.WriteHeader(http.StatusAccepted)
		return
	}

	ack, code, msg := a.handleCall(r, c)
	if code != http.StatusAccepted {
		reply(w, code, msg)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if ack != nil {
		// Sent after the 202 is on the wire: the agent ACKs only once the
		// update is handled, on whatever stream the executor has then.
		a.mu.Lock()
		a.sendLocked(&executor.Event{Type: executor.Event_ACKNOWLEDGED, Acknowledged: ack})
		a.mu.Unlock()
	}
}

// handleCall runs a non-SUBSCRIBE call through the agent's state checks and
// returns the response code, and the ACK to send for an accepted UPDATE.
func (a *Agent) handleCall(r *http.Request, c *call) (*executor.Event_Acknowledged, int, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.currentLocked(r) {
		return nil, http.StatusServiceUnavailable, msgRecovering
	}
	if c.Type == executor.Call_UPDATE && a.failUpdateN > 0 {
		a.failUpdateN--
		return nil, a.failUpdateCode, http.StatusText(a.failUpdateCode)
	}
	if a.recovering {
		return nil, http.StatusServiceUnavailable, msgRecovering
	}
	if code, msg := a.lookupLocked(c); code != 0 {
		return nil, code, msg
	}
	if a.registering {
		return nil, http.StatusForbidden, "Executor is not subscribed"
	}
	switch c.Type {
	case executor.Call_UPDATE:
		st := c.Update.Status
		ok := a.statusUpdateLocked(Update{
			Status:      st,
			UUID:        st.UUID,
			Raw:         c.updateRaw,
			Received:    time.Now(),
			ContentType: c.contentType,
		})
		if !ok {
			return nil, http.StatusAccepted, ""
		}
		return &executor.Event_Acknowledged{TaskID: st.TaskID, UUID: st.UUID}, http.StatusAccepted, ""
	case executor.Call_MESSAGE:
		a.log.WithField("bytes", len(c.Message.Data)).Debug("executor message")
		return nil, http.StatusAccepted, ""
	default:
		return nil, http.StatusNotImplemented, ""
	}
}

// currentLocked reports whether r came through the running server. A
// request that was in flight when the agent stopped belongs to the dead
// agent process and must not touch the state of the restarted one. a.mu
// must be held.
func (a *Agent) currentLocked(r *http.Request) bool {
	srv, _ := r.Context().Value(http.ServerContextKey).(*http.Server)
	return a.srv != nil && srv == a.srv
}

// lookupLocked is the framework and executor lookup; it returns 0 when both
// are known. a.mu must be held.
func (a *Agent) lookupLocked(c *call) (int, string) {
	if c.FrameworkID.Value != a.opts.FrameworkID {
		return http.StatusBadRequest, "Framework cannot be found"
	}
	if c.ExecutorID.Value != a.opts.ExecutorID {
		return http.StatusBadRequest, "Executor cannot be found"
	}
	return 0, ""
}

// subscribe answers a valid SUBSCRIBE with a stream of events in mediaType.
func (a *Agent) subscribe(w http.ResponseWriter, r *http.Request, c *call, mediaType string) {
	a.mu.Lock()
	if !a.currentLocked(r) {
		a.mu.Unlock()
		reply(w, http.StatusServiceUnavailable, msgRecovering)
		return
	}
	if a.subscribeN > 0 {
		a.subscribeN--
		code, body := a.subscribeCode, a.subscribeBody
		a.mu.Unlock()
		reply(w, code, body)
		return
	}
	if code, msg := a.lookupLocked(c); code != 0 {
		a.mu.Unlock()
		reply(w, code, msg)
		return
	}
	a.subscribeCalls++
	a.streamID++
	s := newStream(a.streamID, mediaType, a.log)
	a.streams[s] = struct{}{}
	if a.withholdSubscribedN > 0 && !a.terminating {
		// A 200 whose SUBSCRIBED never comes: the stream stays open and
		// silent, and the agent's state does not change.
		a.withholdSubscribedN--
		a.log.WithField("stream", s.id).Debug("withholding SUBSCRIBED")
	} else if a.shutdownFirst || a.terminating {
		a.shutdownFirst = false
		s.send(&executor.Event{Type: executor.Event_SHUTDOWN})
		s.end(false)
	} else {
		a.subscribedLocked(s, c.Subscribe, c.replayRaw, c.contentType)
	}
	a.streamWG.Add(1)
	a.mu.Unlock()

	defer func() {
		a.mu.Lock()
		delete(a.streams, s)
		a.mu.Unlock()
		a.streamWG.Done()
	}()
	s.serve(w, r)
}

// reply writes a plain-text response, as libprocess does for errors.
func reply(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

// decodeCall parses a call body. The Content-Type is compared verbatim, as
// the agent does, so "application/json; charset=utf-8" gets 415. On failure
// it returns nil and the response.
func decodeCall(contentType string, body []byte) (*call, int, string) {
	c := &call{contentType: contentType}
	switch contentType {
	case MediaTypeProtobuf:
		// gogo's Unmarshal enforces required fields, as ParseFromString
		// does.
		if err := proto.Unmarshal(body, &c.Call); err != nil {
			return nil, http.StatusBadRequest, "Failed to parse body into Call protobuf"
		}
		top := scanFields(body)
		_, c.hasType = top[3]
		if raw := top[5]; len(raw) > 0 {
			c.updateRaw = raw[len(raw)-1]
		}
		if raw := top[4]; len(raw) > 0 && c.Subscribe != nil {
			c.replayRaw = scanFields(raw[len(raw)-1])[2]
		}
	case MediaTypeJSON:
		var top map[string]json.RawMessage
		if err := json.Unmarshal(body, &top); err != nil {
			return nil, http.StatusBadRequest, "Failed to parse body into JSON: " + err.Error()
		}
		const convert = "Failed to convert JSON into Call protobuf: "
		if err := json.Unmarshal(body, &c.Call); err != nil {
			return nil, http.StatusBadRequest, convert + err.Error()
		}
		// Required message fields are values in the Go types, so their
		// absence only shows in the JSON itself.
		for _, f := range []string{"executor_id", "framework_id"} {
			if _, ok := top[f]; !ok {
				return nil, http.StatusBadRequest, convert + "Missing required fields: " + f
			}
		}
		// Marshal enforces the remaining (pointer) required fields.
		if _, err := proto.Marshal(&c.Call); err != nil {
			return nil, http.StatusBadRequest, convert + err.Error()
		}
		_, c.hasType = top["type"]
		if raw, ok := top["update"]; ok {
			c.updateRaw = []byte(raw)
		}
		if raw, ok := top["subscribe"]; ok && c.Subscribe != nil {
			var sub struct {
				Updates []json.RawMessage `json:"unacknowledged_updates"`
			}
			if err := json.Unmarshal(raw, &sub); err == nil {
				for _, u := range sub.Updates {
					c.replayRaw = append(c.replayRaw, []byte(u))
				}
			}
		}
	default:
		return nil, http.StatusUnsupportedMediaType,
			"Expecting 'Content-Type' of " + MediaTypeJSON + " or " + MediaTypeProtobuf
	}
	return c, 0, ""
}

// scanFields returns the payloads of the top-level length-delimited fields
// of a protobuf message by field number, and an empty entry for every other
// field present. It stops at the first malformed field; the message has
// already been unmarshalled, so that only loses presence information.
func scanFields(b []byte) map[int32][][]byte {
	out := make(map[int32][][]byte)
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 {
			return out
		}
		b = b[n:]
		num := int32(tag >> 3)
		switch tag & 7 {
		case 0:
			_, n = binary.Uvarint(b)
			if n <= 0 {
				return out
			}
			b = b[n:]
			out[num] = append(out[num], nil)
		case 1, 5:
			size := 8
			if tag&7 == 5 {
				size = 4
			}
			if len(b) < size {
				return out
			}
			b = b[size:]
			out[num] = append(out[num], nil)
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return out
			}
			out[num] = append(out[num], b[n:n+int(l)])
			b = b[n+int(l):]
		default: // groups: not used by the executor API
			return out
		}
	}
	return out
}

// validateCall is validateExecutorCall (src/common/validation.cpp); the
// messages are the agent's. It returns "" for a valid call.
func validateCall(c *call) string {
	if !c.hasType {
		return "Expecting 'type' to be present"
	}
	switch c.Type {
	case executor.Call_SUBSCRIBE:
		if c.Subscribe == nil {
			return "Expecting 'subscribe' to be present"
		}
	case executor.Call_UPDATE:
		if c.Update == nil {
			return "Expecting 'update' to be present"
		}
		st := &c.Update.Status
		if st.UUID == nil {
			return "Expecting 'uuid' to be present"
		}
		if !validUUID(st.UUID) {
			return "Not a valid UUID"
		}
		if st.ExecutorID != nil && st.ExecutorID.Value != c.ExecutorID.Value {
			return fmt.Sprintf("ExecutorID in Call: %s does not match ExecutorID in TaskStatus: %s",
				c.ExecutorID.Value, st.ExecutorID.Value)
		}
		// GetSource defaults to SOURCE_MASTER, so an unset source fails.
		if st.GetSource() != mesos.SOURCE_EXECUTOR {
			return fmt.Sprintf("Received Call from executor %s of framework %s with invalid source, expecting 'SOURCE_EXECUTOR'",
				c.ExecutorID.Value, c.FrameworkID.Value)
		}
		if st.GetState() == mesos.TASK_STAGING {
			return fmt.Sprintf("Received TASK_STAGING from executor %s of framework %s which is not allowed",
				c.ExecutorID.Value, c.FrameworkID.Value)
		}
		if st.CheckStatus != nil {
			return validateCheckStatus(st.CheckStatus)
		}
	case executor.Call_MESSAGE:
		if c.Message == nil {
			return "Expecting 'message' to be present"
		}
	}
	return ""
}

// validUUID is stout's UUID::fromBytes: 16 bytes with a known version.
func validUUID(b []byte) bool {
	if len(b) != 16 {
		return false
	}
	v := b[6] >> 4
	return v >= 1 && v <= 5
}

// validateCheckStatus is validateCheckStatusInfo.
func validateCheckStatus(cs *mesos.CheckStatusInfo) string {
	if cs.Type == nil {
		return "CheckStatusInfo must specify 'type'"
	}
	switch *cs.Type {
	case mesos.CheckInfo_COMMAND:
		if cs.Command == nil {
			return "Expecting 'command' to be set for COMMAND check's status"
		}
	case mesos.CheckInfo_HTTP:
		if cs.HTTP == nil {
			return "Expecting 'http' to be set for HTTP check's status"
		}
	case mesos.CheckInfo_TCP:
		if cs.TCP == nil {
			return "Expecting 'tcp' to be set for TCP check's status"
		}
	default:
		return fmt.Sprintf("'%s' is not a valid check's status type", cs.Type.String())
	}
	return ""
}

// negotiate picks the stream's media type as Http::executor does: JSON if
// acceptable, else protobuf. No Accept header accepts everything.
func negotiate(accept []string) (string, bool) {
	if len(accept) == 0 {
		return MediaTypeJSON, true
	}
	ranges := strings.Join(accept, ",")
	for _, mt := range []string{MediaTypeJSON, MediaTypeProtobuf} {
		if acceptsMediaType(ranges, mt) {
			return mt, true
		}
	}
	return "", false
}

// acceptsMediaType follows libprocess Request::acceptsMediaType: the most
// specific matching media range decides, and q=0 refuses.
func acceptsMediaType(header, mediaType string) bool {
	typ, _, _ := strings.Cut(mediaType, "/")
	best, bestQ := -1, 0.0
	for _, part := range strings.Split(header, ",") {
		params := strings.Split(part, ";")
		rng := strings.ToLower(strings.TrimSpace(params[0]))
		q := 1.0
		for _, p := range params[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.TrimSpace(k) == "q" {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		spec := -1
		switch rng {
		case mediaType:
			spec = 2
		case typ + "/*":
			spec = 1
		case "*/*":
			spec = 0
		}
		if spec > best {
			best, bestQ = spec, q
		}
	}
	return best >= 0 && bestQ > 0
}
