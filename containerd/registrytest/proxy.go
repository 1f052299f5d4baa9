package registrytest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy is a TCP proxy on 127.0.0.1 in front of a registry. Responses (the
// registry-to-client direction) can be throttled to a rate or paused, which
// turns a small test image into a slow pull; Open counts the connections in
// flight, so a test can see a cancelled pull let go of the registry.
type Proxy struct {
	// Host is "127.0.0.1:port": image references through the proxy use it.
	Host string

	ln       net.Listener
	upstream string
	rate     atomic.Int64 // bytes per second; 0 = unlimited, -1 = paused
	open     atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex // guards conns
	conns    map[net.Conn]struct{}
	stopped  chan struct{} // closed when the proxy closes
}

// chunk is how much the proxy forwards between two throttling sleeps.
const chunk = 4 << 10

// NewProxy starts a proxy to upstream ("host:port") and stops it when the
// test ends.
func NewProxy(t testing.TB, upstream string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Host: ln.Addr().String(), ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}, stopped: make(chan struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

// SetRate throttles responses to bytesPerSecond; 0 lifts the limit.
func (p *Proxy) SetRate(bytesPerSecond int64) { p.rate.Store(bytesPerSecond) }

// Pause stops forwarding responses until SetRate is called.
func (p *Proxy) Pause() { p.rate.Store(-1) }

// Open is the number of client connections open now.
func (p *Proxy) Open() int64 { return p.open.Load() }

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

func (p *Proxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *Proxy) serve(c net.Conn) {
	p.open.Add(1)
	defer p.open.Add(-1)
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		c.Close()
		return
	}
	p.track(c, true)
	p.track(up, true)
	defer func() {
		p.track(c, false)
		p.track(up, false)
		c.Close()
		up.Close()
	}()
	done := make(chan struct{}, 2)
	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(up, c)
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		p.copyThrottled(c, up, stop)
		c.Close() // the client sees the end of the response
		done <- struct{}{}
	}()
	<-done
	close(stop)
	// Either side ending ends the exchange: a client that hangs up
	// (a cancelled pull) closes the registry side too.
	c.Close()
	up.Close()
	<-done
}

func (p *Proxy) copyThrottled(dst io.Writer, src io.Reader, stop <-chan struct{}) {
	buf := make([]byte, chunk)
	for {
		rate := p.rate.Load()
		for rate < 0 {
			select {
			case <-stop:
				return
			case <-p.stopped:
				return
			case <-time.After(20 * time.Millisecond):
			}
			rate = p.rate.Load()
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			if rate > 0 {
				time.Sleep(time.Duration(int64(n) * int64(time.Second) / rate))
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) close() {
	close(p.stopped)
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
