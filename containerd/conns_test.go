package containerd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mdx-executor/mdx/containerd"
)

// unixServer serves 200 "ok" on a unix socket until the test ends.
func unixServer(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond) // long enough for requests to overlap
		_, _ = io.WriteString(w, "ok")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}

func TestConnCounterTransport(t *testing.T) {
	sock := unixServer(t)
	var counter containerd.ConnCounter
	var d net.Dialer
	tr := &http.Transport{
		MaxIdleConnsPerHost: 4,
		DialContext: counter.Wrap(func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		}),
	}
	client := &http.Client{Transport: tr}
	get := func() error {
		resp, err := client.Get("http://docker/_ping")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}

	// Bursts of 8 concurrent requests, 5 times: at most 8 connections are
	// ever open together, and after each burst at most 4 stay idle.
	for burst := range 5 {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() { errs <- get() })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("burst %d: %v", burst, err)
			}
		}
		if n := counter.Open(); n < 1 || n > 8 {
			t.Errorf("after burst %d: Open() = %d, want 1..8", burst, n)
		}
	}
	if counter.Dialed() < 1 || counter.Dialed() > 40 {
		t.Errorf("Dialed() = %d, want 1..40", counter.Dialed())
	}
	tr.CloseIdleConnections()
	waitOpen(t, &counter, 0)
}

// waitOpen waits for the transport's closing goroutines to catch up.
func waitOpen(t *testing.T, c *containerd.ConnCounter, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.Open() != want {
		if time.Now().After(deadline) {
			t.Fatalf("Open() = %d, want %d", c.Open(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConnCounterCloseOnce(t *testing.T) {
	var counter containerd.ConnCounter
	dial := counter.Wrap(func(context.Context, string, string) (net.Conn, error) {
		c1, c2 := net.Pipe()
		t.Cleanup(func() { c2.Close() })
		return c1, nil
	})
	var conns []net.Conn
	for range 3 {
		c, err := dial(t.Context(), "tcp", "x")
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if got := counter.Open(); got != 3 {
		t.Fatalf("Open() after 3 dials = %d, want 3", got)
	}
	// Closing one connection from many goroutines at once counts once.
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() { _ = conns[0].Close() })
	}
	wg.Wait()
	if got := counter.Open(); got != 2 {
		t.Errorf("Open() after closing one conn 16 times = %d, want 2", got)
	}
	_ = conns[0].Close() // again, later: still counted once
	conns[1].Close()
	conns[2].Close()
	if got, dialed := counter.Open(), counter.Dialed(); got != 0 || dialed != 3 {
		t.Errorf("after closing all: Open() = %d, Dialed() = %d, want 0, 3", got, dialed)
	}
}

func TestConnCounterDialError(t *testing.T) {
	var counter containerd.ConnCounter
	boom := errors.New("boom")
	dial := counter.Wrap(func(context.Context, string, string) (net.Conn, error) { return nil, boom })
	if _, err := dial(t.Context(), "unix", "/nowhere"); !errors.Is(err, boom) {
		t.Errorf("dial error = %v, want %v", err, boom)
	}
	if counter.Open() != 0 || counter.Dialed() != 0 {
		t.Errorf("after a failed dial: Open() = %d, Dialed() = %d, want 0, 0", counter.Open(), counter.Dialed())
	}
}

// The Docker client half-closes hijacked connections (exec attach stdin) via
// CloseWrite, found by a type assertion; the wrapper must keep it.
func TestConnCounterCloseWrite(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "echo.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		b, err := io.ReadAll(c) // ends only when the client half-closes
		got <- fmt.Sprintf("%s %v", b, err)
	}()

	var counter containerd.ConnCounter
	var d net.Dialer
	conn, err := counter.Wrap(d.DialContext)(t.Context(), "unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cw, ok := conn.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("%T has no CloseWrite; the unix conn it wraps has", conn)
	}
	if _, err := io.WriteString(conn, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "hello <nil>" {
			t.Errorf("server read %q, want %q", s, "hello <nil>")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server did not see the half-close")
	}

	// net.Pipe conns have no CloseWrite, and neither has their wrapper.
	pipeDial := counter.Wrap(func(context.Context, string, string) (net.Conn, error) {
		c1, c2 := net.Pipe()
		c2.Close()
		return c1, nil
	})
	pc, err := pipeDial(t.Context(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, ok := pc.(interface{ CloseWrite() error }); ok {
		t.Errorf("%T has CloseWrite, but the net.Pipe conn it wraps has not", pc)
	}
}
