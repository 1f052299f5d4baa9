package status

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

const (
	// socketMode keeps the socket to the executor's own user: /state names
	// every task and pprof exposes the process's memory.
	socketMode fs.FileMode = 0o600
	// probeTimeout bounds the dial that tells a live socket from a stale one.
	// A live executor accepts in microseconds; a stale file refuses at once.
	probeTimeout = 2 * time.Second
)

// Listen listens on the Unix socket at path, with mode 0600 whatever the
// umask. The returned listener removes the socket file when closed (unless
// another process has replaced it by then).
//
// A socket file left behind by a dead executor is replaced: Listen first dials
// it, and connection refused means no one is serving. If the dial succeeds,
// Listen fails with ErrInUse, and if the path holds anything but a socket it
// fails with ErrNotSocket. Two executors starting on one path at the same
// instant can still race between the probe and the bind; one of them then
// fails in bind, which is the right outcome, or (rarely) replaces the other's
// fresh file. Mesos gives each executor run its own sandbox, so this is not
// worth a lock file.
//
// path may be longer than the 108 bytes a Unix socket address holds, as the
// default $MESOS_SANDBOX/executor.sock usually is; see Dial.
func Listen(path string) (net.Listener, error) {
	if err := clearStale(path); err != nil {
		return nil, err
	}
	ul, fi, err := bindListen(path)
	if err != nil {
		return nil, err
	}
	return &listener{UnixListener: ul, path: path, file: fi}, nil
}

// clearStale removes a socket file at path that no one serves.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check status socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("status socket %s: %w", path, ErrNotSocket)
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	c, err := Dial(ctx, path)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("status socket %s: %w", path, ErrInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("probe existing status socket: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale status socket: %w", err)
	}
	return nil
}

// listener reports the socket's real path as its address and removes the
// socket file on Close. net.UnixListener cannot do the removal itself: when
// the path is too long it was bound through /proc/self/fd, and that is the
// only name it knows.
type listener struct {
	*net.UnixListener
	path string
	file fs.FileInfo // the socket file as created, to recognise it on Close
	once sync.Once
}

func (l *listener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *listener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		// Remove only our own file: if another executor has since taken
		// over the path (after someone deleted ours), its socket stays.
		if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.file) {
			_ = os.Remove(l.path)
		}
	})
	return err
}

// Dial connects to the Unix socket at path. Like Listen it accepts paths
// longer than a Unix socket address can hold.
func Dial(ctx context.Context, path string) (net.Conn, error) {
	var conn net.Conn
	err := withAddr(path, func(addr string) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", addr)
		conn = c
		return err
	})
	if err != nil {
		return nil, opError("dial", path, err)
	}
	return conn, nil
}

// NewHTTPClient returns an HTTP client whose every request goes to the status
// socket at path, whatever host the URL names (use e.g.
// "http://executor/state"). It sets no overall timeout, because a pprof
// profile takes as long as it is asked to; bound each request with its
// context.
func NewHTTPClient(path string) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return Dial(ctx, path)
			},
			MaxIdleConns:    2,
			IdleConnTimeout: 30 * time.Second,
		},
	}
}

// opError reports err against the socket's real path: when the path is long,
// the error from net names the /proc/self/fd alias, which means nothing to an
// operator. The underlying errno is kept, so errors.Is still works.
func opError(op, path string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "unix", Addr: &net.UnixAddr{Name: path, Net: "unix"}, Err: err}
}
