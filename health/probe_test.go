package health

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"golang.org/x/sys/unix"

	"github.com/mdx-executor/mdx/internal/testenv"
)

// The tests in this file run the probes for real against local servers, with
// no Docker and no synctest.

// statusServer answers NNN for /status/NNN, redirects /redirect to /, hangs
// on /hang until the client goes away, and answers 200 otherwise.
func statusServer(t *testing.T, tls bool) (host string, port uint32) {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/status/"):
			code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
			w.WriteHeader(code)
		case r.URL.Path == "/redirect":
			http.Redirect(w, r, "/", http.StatusFound)
		case r.URL.Path == "/redirect-to":
			http.Redirect(w, r, r.URL.Query().Get("url"), http.StatusFound)
		case r.URL.Path == "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case r.URL.Path == "/headers":
			endlessHeaders(w)
		case r.URL.Path == "/hang":
			<-r.Context().Done()
		case r.URL.Path == "/big":
			chunk := make([]byte, 64<<10)
			for range 1 << 10 { // 64 MiB unless the client hangs up
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		default:
			_, _ = w.Write([]byte("ok"))
		}
	})
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return splitHostPort(t, srv.Listener.Addr().String())
}

// endlessHeaders sends a status line and then headers until the client
// hangs up.
func endlessHeaders(w http.ResponseWriter) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = buf.WriteString("HTTP/1.1 200 OK\r\n")
	for {
		if _, err := buf.WriteString("X-Endless: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"); err != nil {
			return
		}
		if err := buf.Flush(); err != nil {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func splitHostPort(t *testing.T, addr string) (string, uint32) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	return host, uint32(port)
}

// closedPort returns a local TCP port with nothing listening on it.
func closedPort(t *testing.T) uint32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port := splitHostPort(t, ln.Addr().String())
	ln.Close()
	return port
}

func TestHTTPProbe(t *testing.T) {
	host, port := statusServer(t, false)
	tlsHost, tlsPort := statusServer(t, true)
	refused := closedPort(t)
	url := func(path string) string { return fmt.Sprintf("http://%s:%d%s", host, port, path) }

	tests := []struct {
		name     string
		probe    probe
		host     string
		timeout  time.Duration
		healthy  bool
		msg      string // the whole message, or a part of it for errors
		wantCode uint32 // check status; 0 = empty result
	}{
		{"200", probe{path: "/"}, host, time.Second, true, "HTTP GET " + url("/") + " returned 200", 200},
		{"503", probe{path: "/status/503"}, host, time.Second, false, "HTTP GET " + url("/status/503") + " returned 503", 503},
		{"399 is healthy", probe{path: "/status/399"}, host, time.Second, true, "returned 399", 399},
		{"400 is not", probe{path: "/status/400"}, host, time.Second, false, "returned 400", 400},
		{"304 is healthy", probe{path: "/status/304"}, host, time.Second, true, "returned 304", 304},
		{"statuses accept 503", probe{path: "/status/503", statuses: []uint32{200, 503}}, host, time.Second, true, "returned 503", 503},
		{"statuses reject 200", probe{path: "/", statuses: []uint32{204}}, host, time.Second, false, "returned 200", 200},
		{"redirect followed", probe{path: "/redirect"}, host, time.Second, true, "returned 200", 200},
		// Like curl -L in the container's namespace: a redirect to
		// another loopback port is followed, and fails like curl when
		// nothing listens there.
		{"redirect to a loopback port followed", probe{path: fmt.Sprintf("/redirect-to?url=http://127.0.0.1:%d/", refused)}, host, time.Second, false,
			fmt.Sprintf("failed after a redirect to http://127.0.0.1:%d/: connection refused", refused), 0},
		{"redirect to ::1 followed", probe{path: fmt.Sprintf("/redirect-to?url=http://[::1]:%d/", refused)}, host, time.Second, false, "failed", 0},
		// A redirect that leaves the loopback is not followed: the 3xx
		// is the result, as curl without -L reports it.
		{"redirect to another host not followed", probe{path: "/redirect-to?url=http://198.51.100.1/"}, host, time.Second, true, "returned 302", 302},
		{"redirect to a name not followed", probe{path: "/redirect-to?url=http://localhost:1/"}, host, time.Second, true, "returned 302", 302},
		{"redirect to another host rejected by statuses", probe{path: "/redirect-to?url=http://198.51.100.1/", statuses: []uint32{200}}, host, time.Second, false, "returned 302", 302},
		{"redirect loop", probe{path: "/loop"}, host, 5 * time.Second, false, fmt.Sprintf("failed after a redirect to http://127.0.0.1:%d/loop: stopped after 50 redirects", port), 0},
		{"endless headers", probe{path: "/headers"}, host, 10 * time.Second, false, "exceeded", 0},
		{"endless headers and a short timeout", probe{path: "/headers"}, host, 30 * time.Millisecond, false, "timed out after 30ms", 0},
		{"big body", probe{path: "/big"}, host, 5 * time.Second, true, "returned 200", 200},
		{"https self-signed", probe{path: "/", scheme: "https"}, tlsHost, time.Second, true,
			fmt.Sprintf("HTTP GET https://%s:%d/ returned 200", tlsHost, tlsPort), 200},
		{"timeout", probe{path: "/hang"}, host, 200 * time.Millisecond, false, "HTTP GET " + url("/hang") + " timed out after 200ms", 0},
		{"refused", probe{path: "/"}, host, time.Second, false, fmt.Sprintf("HTTP GET http://%s:%d/ failed: connection refused", host, refused), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.probe
			p.typ = HTTP
			p.port = port
			switch {
			case p.scheme == "https":
				p.port = tlsPort
			case tt.name == "refused":
				p.port = refused
			}
			pr := newProber(p, Target{TaskID: "t", HostNetwork: true}, hostNS(), nil, 0)
			start := time.Now()
			obs := pr.run(t.Context(), tt.timeout)
			// /hang never answers: a probe that returns at all enforced
			// its timeout. The bound only catches one that did not.
			if took := time.Since(start); took > tt.timeout+time.Minute {
				t.Errorf("probe took %v with a %v timeout", took, tt.timeout)
			}
			healthy, msg := pr.healthy(obs, tt.timeout)
			if healthy != tt.healthy || !strings.Contains(msg, tt.msg) {
				t.Errorf("healthy() = %v, %q; want %v, %q", healthy, msg, tt.healthy, tt.msg)
			}
			st := pr.checkStatus(obs)
			if st.GetType() != mesos.CheckInfo_HTTP || st.HTTP == nil {
				t.Fatalf("checkStatus() = %v, want an HTTP status", st)
			}
			if tt.wantCode == 0 {
				if st.HTTP.StatusCode != nil {
					t.Errorf("checkStatus() = %v, want an empty HTTP result", st)
				}
			} else if st.HTTP.GetStatusCode() != tt.wantCode {
				t.Errorf("checkStatus() = %v, want status_code %d", st, tt.wantCode)
			}
		})
	}
}

func TestHTTPProbeIgnoresProxy(t *testing.T) {
	_, port := statusServer(t, false)
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	t.Setenv("http_proxy", "http://127.0.0.1:1")
	t.Setenv("NO_PROXY", "")
	pr := newProber(probe{typ: HTTP, port: port, path: "/"}, Target{HostNetwork: true}, hostNS(), nil, 0)
	if ok, msg := pr.healthy(pr.run(t.Context(), time.Second), time.Second); !ok {
		t.Errorf("probe through HTTP_PROXY: %s; want a direct connection", msg)
	}
}

func TestTCPProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, open := splitHostPort(t, ln.Addr().String())
	closed := closedPort(t)

	pr := newProber(probe{typ: TCP, port: open}, Target{HostNetwork: true}, hostNS(), nil, 0)
	obs := pr.run(t.Context(), time.Second)
	if ok, msg := pr.healthy(obs, time.Second); !ok || msg != fmt.Sprintf("TCP connect 127.0.0.1:%d succeeded", open) {
		t.Errorf("open port: healthy() = %v, %q", ok, msg)
	}
	if st := pr.checkStatus(obs); st.GetType() != mesos.CheckInfo_TCP || !st.TCP.GetSucceeded() {
		t.Errorf("open port: checkStatus() = %v, want succeeded", st)
	}

	pr = newProber(probe{typ: TCP, port: closed}, Target{HostNetwork: true}, hostNS(), nil, 0)
	obs = pr.run(t.Context(), time.Second)
	want := fmt.Sprintf("TCP connect 127.0.0.1:%d failed: connection refused", closed)
	if ok, msg := pr.healthy(obs, time.Second); ok || msg != want {
		t.Errorf("closed port: healthy() = %v, %q; want false, %q", ok, msg, want)
	}
	if st := pr.checkStatus(obs); st.TCP == nil || st.TCP.Succeeded == nil || st.TCP.GetSucceeded() {
		t.Errorf("closed port: checkStatus() = %v, want succeeded=false", st)
	}

	// A timeout too short for any connect: the dial fails on the deadline.
	pr = newProber(probe{typ: TCP, port: open}, Target{HostNetwork: true}, hostNS(), nil, 0)
	obs = pr.run(t.Context(), time.Nanosecond)
	if ok, msg := pr.healthy(obs, time.Nanosecond); ok || !strings.Contains(msg, "timed out after 1ns") {
		t.Errorf("timed out: healthy() = %v, %q", ok, msg)
	}
	if st := pr.checkStatus(obs); st.TCP == nil || st.TCP.Succeeded != nil {
		t.Errorf("timed out: checkStatus() = %v, want an empty TCP result", st)
	}
}

func TestCommandProbeMessages(t *testing.T) {
	ex := newFakeExec(step{code: 3}, step{err: errors.New("no such container")})
	pr := newProber(probe{typ: Command, cmd: []string{"x"}}, Target{ContainerID: "c"}, nil, ex, 5)
	obs := pr.run(t.Context(), 0)
	if ok, msg := pr.healthy(obs, 0); ok || msg != "command exited with 3: probe" {
		t.Errorf("healthy() = %v, %q; want the code and the output cut to 5 bytes", ok, msg)
	}
	if st := pr.checkStatus(obs); st.Command.GetExitCode() != 3 || st.Command.ExitCode == nil {
		t.Errorf("checkStatus() = %v, want exit_code 3", st)
	}
	obs = pr.run(t.Context(), 0)
	if ok, msg := pr.healthy(obs, 0); ok || msg != "command could not run: no such container" {
		t.Errorf("healthy() = %v, %q", ok, msg)
	}
	if st := pr.checkStatus(obs); st.GetType() != mesos.CheckInfo_COMMAND || st.Command == nil || st.Command.ExitCode != nil {
		t.Errorf("checkStatus() = %v, want an empty COMMAND result", st)
	}
}

func TestNoAddress(t *testing.T) {
	tg := Target{TaskID: "t", IP: "127.0.0.1"} // an IP alone is not enough
	pr := newProber(probe{typ: TCP, port: 80}, tg, newNSHandle(tg), nil, 0)
	ok, msg := pr.healthy(pr.run(t.Context(), time.Second), time.Second)
	if ok || !strings.Contains(msg, "no pid") {
		t.Errorf("healthy() = %v, %q; want a failure saying there is nowhere to probe", ok, msg)
	}
}

// hostNS is the namespace handle of a host-network target without a pid:
// probes dial from the executor's own namespace.
func hostNS() *nsHandle { return newNSHandle(Target{HostNetwork: true}) }

// ownNS is a handle on the test process's own namespace through its pid,
// with the cgroup check left out: the test process is in no container.
func ownNS() *nsHandle {
	return &nsHandle{target: Target{Pid: os.Getpid()}, belongs: func([]byte) bool { return true }, users: 1}
}

// TestOwnNetns dials through the executor's own namespace by pid: the probe
// takes the no-setns shortcut, and dialInNetns itself must leave every thread
// where it was.
func TestOwnNetns(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port := splitHostPort(t, ln.Addr().String())

	ns := ownNS()
	pr := newProber(probe{typ: TCP, port: port}, ns.target, ns, nil, 0)
	if ok, msg := pr.healthy(pr.run(t.Context(), time.Second), time.Second); !ok {
		t.Errorf("TCP probe of 127.0.0.1 in our own namespace: %s", msg)
	}
	if !ns.own || ns.f == nil {
		t.Fatalf("handle on our own namespace: own=%v f=%v", ns.own, ns.f)
	}

	var d net.Dialer
	conn, err := dialInNetns(t.Context(), &d, ns.f, "tcp", ln.Addr().String())
	if errors.Is(err, unix.EPERM) {
		testenv.SkipOrFail(t, "setns needs CAP_SYS_ADMIN: %v", err)
	}
	if err != nil {
		t.Fatalf("dialInNetns(own namespace): %v", err)
	}
	conn.Close()
	assertThreadsInOwnNetns(t)

	ns.release()
	if ns.f != nil || !ns.closed {
		t.Error("the last release left the namespace open")
	}
	if ok, msg := pr.healthy(pr.run(t.Context(), time.Second), time.Second); ok || !strings.Contains(msg, "stopped") {
		t.Errorf("probe after the last release: %v, %q; want a failure", ok, msg)
	}
}

func TestOpenNetnsRefuses(t *testing.T) {
	tests := []struct {
		name string
		tg   Target
		want string
	}{
		{"pid of another cgroup", Target{Pid: os.Getpid(), ContainerID: strings.Repeat("ab", 32)}, "not in the container's cgroup"},
		{"no container id", Target{Pid: os.Getpid()}, "not in the container's cgroup"},
		{"pid that does not exist", Target{Pid: 1 << 30, ContainerID: strings.Repeat("ab", 32)}, "/proc/1073741824"},
		{"no pid, not host network", Target{IP: "172.17.0.2", ContainerID: strings.Repeat("ab", 32)}, "no pid"},
	}
	for _, tt := range tests {
		ns := newNSHandle(tt.tg)
		err := ns.open()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: open() = %v; want an error with %q", tt.name, err, tt.want)
		}
		if ns.f != nil {
			t.Errorf("%s: a descriptor was kept after a refusal", tt.name)
		}
		ns.release()
	}
}

func TestLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:80": true, "127.1.2.3:1": true, "[::1]:443": true,
		"172.17.0.2:80": false, "localhost:80": false, "[::]:80": false, "0.0.0.0:80": false,
		"example.com:80": false, "127.0.0.1": false,
	} {
		if err := loopbackOnly(addr); (err == nil) != ok {
			t.Errorf("loopbackOnly(%q) = %v; want allowed=%v", addr, err, ok)
		}
	}
}

// assertThreadsInOwnNetns checks that no thread of the test process was left
// in another network namespace by a probe. A thread in the middle of a dial
// of a parallel test is in a container's namespace for a moment, so only a
// thread found outside in every one of several looks, half a second apart,
// is a leak.
func assertThreadsInOwnNetns(t *testing.T) {
	t.Helper()
	var own unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &own); err != nil {
		t.Fatal(err)
	}
	var suspects map[string]uint64 // thread's ns path -> foreign namespace
	for look := range 5 {
		if look > 0 {
			time.Sleep(500 * time.Millisecond)
		}
		tasks, err := filepath.Glob("/proc/self/task/*/ns/net")
		if err != nil {
			t.Fatal(err)
		}
		outside := map[string]uint64{}
		for _, p := range tasks {
			var st unix.Stat_t
			if err := unix.Stat(p, &st); err != nil {
				continue // the thread has exited
			}
			if st.Ino != own.Ino || st.Dev != own.Dev {
				if _, before := suspects[p]; look == 0 || before {
					outside[p] = st.Ino
				}
			}
		}
		suspects = outside
		if len(suspects) == 0 {
			return
		}
	}
	for p, ino := range suspects {
		t.Errorf("%s has stayed in network namespace %d, not the process's %d", p, ino, own.Ino)
	}
}
