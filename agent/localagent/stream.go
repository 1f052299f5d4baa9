package localagent

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/gogo/protobuf/proto"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/recordio"
	"github.com/sirupsen/logrus"
)

// stream is one SUBSCRIBE response. The agent queues events on it without
// blocking; the handler goroutine writes them as RecordIO frames and flushes
// after each batch. Events sent after the stream ended or broke are lost, as
// the agent never re-sends an event.
type stream struct {
	id        int
	mediaType string
	log       *logrus.Entry
	// wake has room for one signal: a pending signal covers any number of
	// queued events.
	wake chan struct{}

	// mu guards everything that follows.
	mu     sync.Mutex
	queue  []frame
	ended  bool // no more events: end the response after the queue
	abrupt bool // end by dropping the connection, without the queue
	dead   bool // the handler has returned
}

type frame struct {
	typ  executor.Event_Type
	data []byte
}

func newStream(id int, mediaType string, log *logrus.Entry) *stream {
	return &stream{
		id:        id,
		mediaType: mediaType,
		log:       log.WithField("stream", id),
		wake:      make(chan struct{}, 1),
	}
}

// send encodes ev in the stream's media type and queues it.
func (s *stream) send(ev *executor.Event) {
	var (
		b   []byte
		err error
	)
	if s.mediaType == MediaTypeProtobuf {
		b, err = proto.Marshal(ev)
	} else {
		b, err = json.Marshal(ev)
	}
	if err != nil {
		// Only a bug in this package can get here: every event it builds
		// has its required fields.
		s.log.WithError(err).WithField("event", ev.Type.String()).Error("encode event")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.dead {
		s.log.WithField("event", ev.Type.String()).Debug("event lost: stream closed")
		return
	}
	s.queue = append(s.queue, frame{typ: ev.Type, data: b})
	s.signal()
}

// end stops the stream: cleanly after the queued events, or abruptly.
func (s *stream) end(abrupt bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended && !abrupt {
		return
	}
	s.ended = true
	s.abrupt = s.abrupt || abrupt
	s.signal()
}

// signal wakes the writer. s.mu must be held.
func (s *stream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// serve writes the response until the stream ends or the client goes away.
func (s *stream) serve(w http.ResponseWriter, r *http.Request) {
	defer func() {
		s.mu.Lock()
		s.dead = true
		s.queue = nil
		s.mu.Unlock()
	}()
	// The response type is the message type, not application/recordio
	// (Http::executor); net/http chunks it since there is no length.
	w.Header().Set("Content-Type", s.mediaType)
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	flush()
	rw := recordio.NewWriter(w)
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		ended, abrupt := s.ended, s.abrupt
		s.mu.Unlock()
		if abrupt {
			s.log.Debug("dropping stream")
			// Aborting closes the connection without the final chunk, so
			// the executor sees a broken stream rather than an EOF.
			panic(http.ErrAbortHandler)
		}
		for _, f := range batch {
			if err := rw.WriteFrame(f.data); err != nil {
				s.log.WithError(err).WithField("event", f.typ.String()).Debug("event lost: write failed")
				return
			}
			s.log.WithField("event", f.typ.String()).Debug("sent event")
		}
		flush()
		if ended {
			s.log.Debug("closing stream")
			return
		}
		select {
		case <-s.wake:
		case <-r.Context().Done():
			s.log.Debug("executor closed stream")
			return
		}
	}
}
