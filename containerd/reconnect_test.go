package containerd_test

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/internal/testenv"
)

// flakyProxy forwards a unix socket to dockerd and can cut every connection
// and refuse new ones, as a daemon restart or a broken socket would.
type flakyProxy struct {
	path   string
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	// mu guards everything that follows.
	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func startProxy(t *testing.T, target string) *flakyProxy {
	t.Helper()
	// A short directory: t.TempDir paths can exceed the 108-byte socket limit.
	dir, err := os.MkdirTemp("", "mdx-proxy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &flakyProxy{path: filepath.Join(dir, "d.sock"), target: target, conns: map[net.Conn]struct{}{}}
	p.ln, err = net.Listen("unix", p.path)
	if err != nil {
		t.Fatal(err)
	}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		p.ln.Close()
		p.setDown(true)
		p.wg.Wait()
	})
	return p
}

func (p *flakyProxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			in.Close()
			continue
		}
		out, err := net.Dial("unix", p.target)
		if err != nil {
			p.mu.Unlock()
			in.Close()
			continue
		}
		p.conns[in], p.conns[out] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func (p *flakyProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// setDown cuts all connections and refuses new ones (true), or accepts again.
func (p *flakyProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
	}
}

// TestWatchExitsSurvivesStreamLoss cuts the events stream, lets a container
// exit and be removed while no stream is open, and expects the reopened
// stream (from the last event seen) to report that exit. The reconciling list
// cannot: the container is gone. Not parallel, so that other tests' events do
// not push the die out of dockerd's short replay buffer.
func TestWatchExitsSurvivesStreamLoss(t *testing.T) {
	direct, image := requireDocker(t)
	host := os.Getenv(client.EnvOverrideHost)
	if host == "" {
		host = client.DefaultDockerHost
	}
	sock, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		testenv.SkipOrFail(t, "docker host %s is not a unix socket; the proxy needs one", host)
	}
	proxy := startProxy(t, sock)

	log := logrus.New()
	log.SetOutput(t.Output()) // the reconnect warnings are expected here
	log.SetLevel(logrus.WarnLevel)
	c, err := containerd.New(t.Context(), containerd.Config{Host: "unix://" + proxy.path, CallTimeout: 5 * time.Second},
		log.WithField("test", t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	o := newOwner()
	exits := watch(t, c, o.labels())
	// A first exit proves the stream is up and moves its cursor.
	first := run(t, direct, o.spec(image, "first", "exit", "1"))
	waitExit(t, exits, first, 15*time.Second)

	proxy.setDown(true)
	gone := run(t, direct, o.spec(image, "gone", "exit", "6"))
	waitExited(t, direct, gone, 15*time.Second)
	if err := direct.Remove(t.Context(), gone); err != nil {
		t.Fatal(err)
	}
	// Restore only once the watch has seen the stream break and begun
	// reopening it, so the replay (not a stream that never broke) must
	// deliver the exit.
	deadline := time.Now().Add(time.Minute)
	for c.StreamReconnects() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the watch never tried to reopen its stream while the proxy was down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	proxy.setDown(false)

	exit := waitExit(t, exits, gone, 15*time.Second)
	if exit.ExitCode != 6 || exit.TaskID != "gone" {
		t.Errorf("exit = %+v, want code 6 for task gone (from the replayed die event)", exit)
	}
	if n := c.StreamReconnects(); n < 1 {
		t.Errorf("StreamReconnects() = %d, want at least 1", n)
	}
}
