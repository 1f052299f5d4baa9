package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/mdx-executor/mdx/agent/localagent"
)

// dockerProxy stands between the executor and the Docker daemon on a Unix
// socket of its own. Cut simulates a daemon restart at the socket: every
// connection through it (events stream, log streams, calls in flight) is
// closed at once and the socket file goes away, so new connections fail,
// until Restore. The daemon itself, shared by everyone on the machine, is
// never touched, and the containers keep running.
type dockerProxy struct {
	t       *testing.T
	path    string // the proxy's socket
	network string // the daemon's address, e.g. unix /var/run/docker.sock
	addr    string

	// mu guards everything that follows.
	mu     sync.Mutex
	ln     net.Listener // nil while cut
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// newDockerProxy starts a proxy to the daemon at host (a Docker host string:
// unix:///path or tcp://addr). It is closed by the test's cleanup.
func newDockerProxy(t *testing.T, host string) *dockerProxy {
	t.Helper()
	network, addr := "unix", "/var/run/docker.sock"
	switch {
	case strings.HasPrefix(host, "unix://"):
		addr = strings.TrimPrefix(host, "unix://")
	case strings.HasPrefix(host, "tcp://"):
		network, addr = "tcp", strings.TrimPrefix(host, "tcp://")
	case host != "":
		t.Fatalf("docker proxy: cannot forward to %q", host)
	}
	// Not t.TempDir(): its path holds the test's name and can pass the
	// 108 bytes a socket address may have.
	dir, err := os.MkdirTemp("", "mdx-dp-")
	if err != nil {
		t.Fatal(err)
	}
	p := &dockerProxy{
		t:       t,
		path:    filepath.Join(dir, "docker.sock"),
		network: network,
		addr:    addr,
		conns:   map[net.Conn]struct{}{},
	}
	if err := p.listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.Cut()
		p.wg.Wait()
		_ = os.RemoveAll(dir)
	})
	return p
}

// Host is the DOCKER_HOST value that leads through the proxy.
func (p *dockerProxy) Host() string { return "unix://" + p.path }

func (p *dockerProxy) listen() error {
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go p.accept(ln)
	return nil
}

func (p *dockerProxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed by Cut
		}
		up, err := net.DialTimeout(p.network, p.addr, 5*time.Second)
		if err != nil {
			p.t.Logf("docker proxy: dial the daemon: %v", err)
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		if p.ln != ln {
			// Cut while this one was being accepted.
			p.mu.Unlock()
			_ = c.Close()
			_ = up.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			// Either side's end ends both, as a daemon going away would.
			_ = dst.Close()
			_ = src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// Cut closes every connection through the proxy and its socket: until
// Restore, connecting fails as with a daemon that is down.
func (p *dockerProxy) Cut() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	if ln != nil {
		// Closing a Unix listener also removes its socket file.
		_ = ln.Close()
	}
	for c := range conns {
		_ = c.Close()
	}
}

// Restore serves the socket again, as a daemon that is back.
func (p *dockerProxy) Restore() {
	p.t.Helper()
	p.mu.Lock()
	up, closed := p.ln != nil, p.closed
	p.mu.Unlock()
	if up || closed {
		return
	}
	if err := p.listen(); err != nil {
		p.t.Fatalf("docker proxy: listen again: %v", err)
	}
}

// agentCall is one executor call that went through an agentProxy.
type agentCall struct {
	Type  executor.Call_Type
	Task  string          // UPDATE: the status's task id
	State mesos.TaskState // UPDATE: the status's state
	UUID  string          // UPDATE: the status's uuid, as raw bytes
	// Code is the agent's response code, 0 when the call did not reach it.
	Code int
	// At is when the response headers (for SUBSCRIBE: the stream's start)
	// came back.
	At time.Time
}

// agentProxy is a reverse proxy in front of the local agent that records
// every call the executor makes and the agent's answer, including those the
// agent does not record itself (an UPDATE answered 503, a refused
// SUBSCRIBE). Streams pass through unbuffered, and a stream the agent
// breaks is broken towards the executor too.
type agentProxy struct {
	srv *http.Server
	ln  net.Listener

	mu    sync.Mutex
	calls []agentCall
}

// newAgentProxy starts a proxy to la and points env (the executor's extra
// environment) at it. It is closed by the test's cleanup; use it from a
// config.prepare hook so that the cleanup runs after the executor's.
func newAgentProxy(t *testing.T, la *localagent.Agent, env map[string]string) *agentProxy {
	t.Helper()
	target := &url.URL{Scheme: "http", Host: la.Endpoint()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &agentProxy{ln: ln}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1 // the event stream must not wait in a buffer
	rp.Transport = recorder{p: p, base: &http.Transport{}}
	rp.ErrorLog = log.New(io.Discard, "", 0) // broken streams are the point
	rp.ErrorHandler = func(http.ResponseWriter, *http.Request, error) {
		// The agent is down: what the executor would see without the proxy
		// is a refused connection, so close this one without an answer.
		panic(http.ErrAbortHandler)
	}
	p.srv = &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() { _ = p.srv.Close() })

	addr := ln.Addr().String()
	env["MESOS_AGENT_ENDPOINT"] = addr
	env["MESOS_SLAVE_PID"] = "slave(1)@" + addr
	return p
}

// Calls returns the calls so far, in the order their answers came.
func (p *agentProxy) Calls() []agentCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]agentCall(nil), p.calls...)
}

// CallsOf returns the calls of one type.
func (p *agentProxy) CallsOf(typ executor.Call_Type) []agentCall {
	var out []agentCall
	for _, c := range p.Calls() {
		if c.Type == typ {
			out = append(out, c)
		}
	}
	return out
}

// recorder is the proxy's transport: it decodes each call and records it
// with the answer.
type recorder struct {
	p    *agentProxy
	base http.RoundTripper
}

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	var call executor.Call
	var err error
	switch req.Header.Get("Content-Type") {
	case localagent.MediaTypeJSON:
		err = json.Unmarshal(body, &call)
	default:
		err = proto.Unmarshal(body, &call)
	}
	rec := agentCall{Type: call.Type}
	if err != nil {
		rec.Type = executor.Call_UNKNOWN
	}
	if u := call.Update; u != nil {
		rec.Task = u.Status.TaskID.Value
		rec.State = u.Status.GetState()
		rec.UUID = string(u.Status.UUID)
	}
	resp, err := r.base.RoundTrip(req)
	rec.At = time.Now()
	if err == nil {
		rec.Code = resp.StatusCode
	}
	r.p.mu.Lock()
	r.p.calls = append(r.p.calls, rec)
	r.p.mu.Unlock()
	return resp, err
}
