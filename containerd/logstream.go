package containerd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
)

// logStreamBuffer is the read buffer of one followed log stream.
const logStreamBuffer = 2 << 10

// openLogStream opens a followed log stream on a connection of its own to a
// daemon on a Unix socket, without net/http's Transport.
//
// A followed stream lives as long as its container, so what it costs is paid
// per running task. Through the Transport every stream holds, besides the
// goroutine reading it, a persistConn with a read-loop and a write-loop
// goroutine, their channels and a write buffer: about a fifth of the
// executor's memory per running task. Here the stream is one connection and
// a read buffer, read by the caller's goroutine; ctx ending closes the
// connection, so a blocked read returns.
func (c *Client) openLogStream(ctx context.Context, id string, opts container.LogsOptions) (io.ReadCloser, error) {
	q := url.Values{}
	q.Set("stdout", "1")
	q.Set("stderr", "1")
	q.Set("follow", "1")
	if opts.Since != "" {
		q.Set("since", opts.Since)
	}
	path := "/v" + c.stream.ClientVersion() + "/containers/" + url.PathEscape(id) + "/logs?" + q.Encode()

	start := time.Now()
	rc, err := c.logRequest(ctx, path)
	if c.observe != nil {
		c.observe("container_logs", time.Since(start), transportErr(err))
	}
	return rc, err
}

func (c *Client) logRequest(ctx context.Context, path string) (io.ReadCloser, error) {
	var d net.Dialer
	conn, err := c.conns.Wrap(d.DialContext)(ctx, "unix", c.logSocket)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", c.logSocket, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	fail := func(err error) (io.ReadCloser, error) {
		stop()
		_ = conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + client.DummyHost + "\r\nUser-Agent: mdx-executor\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return fail(fmt.Errorf("send request: %w", err))
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, logStreamBuffer), nil)
	if err != nil {
		return fail(fmt.Errorf("read response: %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		err := fmt.Errorf("daemon answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
		if resp.StatusCode == http.StatusNotFound {
			err = fmt.Errorf("%w: %w", cerrdefs.ErrNotFound, err)
		}
		return fail(err)
	}
	return &logStream{body: resp.Body, conn: conn, stop: stop}, nil
}

// transportErr keeps the errors the observer counts to those of the
// transport, as observedTransport does: an answer with an error status is
// not one.
func transportErr(err error) error {
	if err == nil || cerrdefs.IsNotFound(err) || strings.Contains(err.Error(), "daemon answered") {
		return nil
	}
	return err
}

// logStream is an open log stream: its body, and the connection it owns.
type logStream struct {
	body io.ReadCloser
	conn net.Conn
	stop func() bool
}

func (s *logStream) Read(p []byte) (int, error) { return s.body.Read(p) }

func (s *logStream) Close() error {
	s.stop()
	return s.conn.Close()
}
