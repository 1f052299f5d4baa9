package containerd

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
)

// DialContextFunc is the type of http.Transport.DialContext.
type DialContextFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// ConnCounter counts the connections to the Docker daemon that are open now,
// so that /metrics can show a leak (a count that grows with the tasks that
// have come and gone) or churn (Dialed growing much faster than requests are
// made). Wrap every transport's DialContext with the same counter to count
// them all. The zero value is ready to use and safe for concurrent use.
type ConnCounter struct {
	open   atomic.Int64
	dialed atomic.Uint64
}

// Wrap returns a dial function that dials with dial and counts each
// connection it returns as open until its first Close.
func (c *ConnCounter) Wrap(dial DialContextFunc) DialContextFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c.open.Add(1)
		c.dialed.Add(1)
		cc := &countedConn{Conn: conn, counter: c}
		// The Docker client half-closes hijacked connections (exec
		// attach) through CloseWrite; keep that method visible.
		if _, ok := conn.(closeWriter); ok {
			return &countedCloseWriterConn{cc}, nil
		}
		return cc, nil
	}
}

// Open returns the number of connections dialled through the counter and not
// closed yet.
func (c *ConnCounter) Open() int64 { return c.open.Load() }

// Dialed returns the number of connections dialled through the counter so
// far.
func (c *ConnCounter) Dialed() uint64 { return c.dialed.Load() }

type closeWriter interface{ CloseWrite() error }

// countedConn decrements its counter on the first Close; every Close is
// still passed on, so a second one gets the connection's own error.
type countedConn struct {
	net.Conn
	counter *ConnCounter
	once    sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.counter.open.Add(-1) })
	return c.Conn.Close()
}

type countedCloseWriterConn struct{ *countedConn }

func (c *countedCloseWriterConn) CloseWrite() error {
	return c.Conn.(closeWriter).CloseWrite()
}
