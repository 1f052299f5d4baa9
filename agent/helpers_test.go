package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/agent"
	"github.com/mdx-executor/mdx/agent/localagent"
)

// waitTimeout bounds every wait for something that should happen promptly.
const waitTimeout = 5 * time.Second

// testLog returns a Debug-level logger writing to t.Log and, when extra is
// not nil, also to extra.
func testLog(t *testing.T, extra io.Writer) *logrus.Entry {
	l := logrus.New()
	var w io.Writer = testWriter{t}
	if extra != nil {
		w = io.MultiWriter(w, extra)
	}
	l.SetOutput(w)
	l.SetLevel(logrus.DebugLevel)
	return logrus.NewEntry(l)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// startAgent returns a running local agent closed with the test.
func startAgent(t *testing.T, opts localagent.Options) *localagent.Agent {
	t.Helper()
	la := localagent.New(opts)
	if err := la.Start(); err != nil {
		t.Fatalf("start local agent: %v", err)
	}
	t.Cleanup(func() { _ = la.Close() })
	return la
}

// baseConfig points a client at addr ("ip:port") as the local agent's
// default executor. Heartbeats are off unless a test turns them on. The
// backoff window is short so that reconnecting tests are quick; tests about
// reconnect timing set the agent default of 2s.
func baseConfig(addr string) agent.Config {
	return agent.Config{
		FrameworkID:            localagent.DefaultFrameworkID,
		ExecutorID:             localagent.DefaultExecutorID,
		URL:                    "http://" + addr + localagent.APIPath,
		Checkpoint:             true,
		RecoveryTimeout:        10 * time.Second,
		SubscriptionBackoffMax: 300 * time.Millisecond,
		HeartbeatInterval:      -1,
		CallTimeout:            2 * time.Second,
	}
}

// runner runs a Client for one test.
type runner struct {
	c      *agent.Client
	cancel context.CancelFunc
	exited chan struct{} // closed when Run has returned
	err    error         // Run's result, valid once exited is closed
}

// run starts c.Run; the test's cleanup cancels it and requires it to return.
func run(t *testing.T, cfg agent.Config, log *logrus.Entry) *runner {
	t.Helper()
	return runWith(t, cfg, log, nil)
}

// runWith is run with setup applied to the Client before Run (for hooks
// such as OnAck and OnReject).
func runWith(t *testing.T, cfg agent.Config, log *logrus.Entry, setup func(*agent.Client)) *runner {
	t.Helper()
	if log == nil {
		log = testLog(t, nil)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{c: agent.New(cfg, log), cancel: cancel, exited: make(chan struct{})}
	if setup != nil {
		setup(r.c)
	}
	go func() {
		defer close(r.exited)
		r.err = r.c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.exited:
		case <-time.After(waitTimeout):
			t.Error("Run did not return after its context was cancelled")
		}
	})
	return r
}

// wait returns Run's error, failing the test if Run does not return within d.
func (r *runner) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-r.exited:
		return r.err
	case <-time.After(d):
		t.Fatalf("Run still running after %v", d)
		return nil
	}
}

// running reports whether Run has not returned yet.
func (r *runner) running() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// next returns the next event of type typ, skipping events of other types.
func (r *runner) next(t *testing.T, typ executor.Event_Type) *executor.Event {
	t.Helper()
	return r.nextWithin(t, typ, waitTimeout)
}

func (r *runner) nextWithin(t *testing.T, typ executor.Event_Type, d time.Duration) *executor.Event {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-r.c.Events():
			if !ok {
				t.Fatalf("Events closed while waiting for %s (Run: %v)", typ, r.err)
			}
			if ev.GetType() == typ {
				return ev
			}
		case <-timer.C:
			t.Fatalf("no %s event within %v", typ, d)
		}
	}
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func drained(t *testing.T, c *agent.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.WaitDrained(ctx); err != nil {
		t.Fatalf("WaitDrained: %v", err)
	}
	if n := c.Unacknowledged(); n != 0 {
		t.Fatalf("Unacknowledged() = %d after WaitDrained", n)
	}
}

// seenCall is one call as the front saw it.
type seenCall struct {
	Type executor.Call_Type
	Auth string
	Path string
	UUID []byte // UPDATE only
}

type connCounterKey struct{}

// front is an HTTP server between the client and a local agent (or in place
// of one). It records every call, and can inject what localagent cannot:
// a scripted SUBSCRIBE response, a stream left half-open after the agent
// died, and a keep-alive connection that the server has closed.
type front struct {
	srv     *httptest.Server
	backend string // "http://ip:port"; "" answers calls itself with 202
	// subscribe, when set, answers every SUBSCRIBE instead of the backend.
	subscribe func(w http.ResponseWriter, r *http.Request)
	hc        *http.Client
	quit      chan struct{}

	// mu guards everything that follows.
	mu    sync.Mutex
	calls []seenCall
	// halfOpen: when the backend's stream breaks, keep the client's
	// stream open and silent, as a TCP connection to a dead host looks.
	halfOpen bool
	// closeReused: close the next non-SUBSCRIBE request that arrives on a
	// reused connection without answering, as a server that timed out the
	// idle connection just as the client reused it.
	closeReused bool
}

// newFront serves on 127.0.0.1, or on the unix socket sock if not empty.
func newFront(t *testing.T, backend string, sock string) *front {
	t.Helper()
	f := &front{
		backend: backend,
		// No keep-alive towards the backend: a restarted agent must not
		// make the front itself fail on a stale connection.
		hc:   &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		quit: make(chan struct{}),
	}
	f.srv = httptest.NewUnstartedServer(f)
	f.srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connCounterKey{}, new(atomic.Int32))
	}
	if sock != "" {
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		_ = f.srv.Listener.Close()
		f.srv.Listener = ln
	}
	f.srv.Start()
	t.Cleanup(func() {
		close(f.quit)
		f.srv.CloseClientConnections()
		f.srv.Close()
	})
	return f
}

// addr is the front's "ip:port".
func (f *front) addr() string { return f.srv.Listener.Addr().String() }

func (f *front) set(fn func(f *front)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// seen returns the recorded calls of type typ.
func (f *front) seen(typ executor.Call_Type) []seenCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []seenCall
	for _, c := range f.calls {
		if c.Type == typ {
			out = append(out, c)
		}
	}
	return out
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var call executor.Call
	if r.Header.Get("Content-Type") == agent.ContentTypeJSON {
		_ = json.Unmarshal(body, &call)
	} else {
		_ = proto.Unmarshal(body, &call)
	}
	sc := seenCall{Type: call.Type, Auth: r.Header.Get("Authorization"), Path: r.URL.Path}
	if call.Update != nil {
		sc.UUID = call.Update.Status.UUID
	}
	reused := r.Context().Value(connCounterKey{}).(*atomic.Int32).Add(1) > 1
	f.mu.Lock()
	f.calls = append(f.calls, sc)
	closeIt := f.closeReused && reused && call.Type != executor.Call_SUBSCRIBE
	if closeIt {
		f.closeReused = false
	}
	subscribe := f.subscribe
	f.mu.Unlock()

	switch {
	case closeIt:
		hangUp(w)
	case call.Type == executor.Call_SUBSCRIBE && subscribe != nil:
		subscribe(w, r)
	case f.backend == "":
		w.WriteHeader(http.StatusAccepted)
	default:
		f.forward(w, r, body, call.Type == executor.Call_SUBSCRIBE)
	}
}

// hangUp closes the client's connection without a response.
func hangUp(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func (f *front) forward(w http.ResponseWriter, r *http.Request, body []byte, stream bool) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, f.backend+r.URL.Path, bytes.NewReader(body))
	if err != nil {
		hangUp(w)
		return
	}
	for _, h := range []string{"Content-Type", "Accept", "Authorization"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		// The agent is gone: so is the client's connection.
		hangUp(w)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	if !stream || resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(w, resp.Body)
		return
	}
	flusher := w.(http.Flusher)
	flusher.Flush()
	buf := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			flusher.Flush()
		}
		if errors.Is(err, io.EOF) {
			return // the agent ended the stream cleanly
		}
		if err != nil {
			f.mu.Lock()
			halfOpen := f.halfOpen
			f.mu.Unlock()
			if halfOpen {
				select {
				case <-r.Context().Done():
				case <-f.quit:
				}
				return
			}
			panic(http.ErrAbortHandler) // pass the broken stream on
		}
	}
}
