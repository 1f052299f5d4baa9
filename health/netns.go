package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
)

// nsHandle is the network namespace every HTTP and TCP probe of one task
// runs in, shared by the task's health check and generic check.
//
// A container's pid is only a number: once the container dies it can be
// given to any new process, and its bridge IP to any new container. So the
// namespace is opened once, through the pid and after checking that the pid
// is in the container's cgroup, and the descriptor is held for as long as a
// check of the task runs: every later probe enters the namespace through
// that descriptor, never through the pid again. A probe of a dead container
// thus goes to its dead namespace (connection refused), never to whatever
// took its pid or its IP.
//
// users counts the checks holding the handle and the dials in flight; the
// descriptor is closed when it drops to zero, and never reopened.
type nsHandle struct {
	target Target
	// belongs says whether the process's /proc/<pid>/cgroup shows the
	// target container; tests replace it.
	belongs func(cgroup []byte) bool

	mu     sync.Mutex // guards everything that follows
	opened bool       // the open was tried; f, own, err are its result
	f      *os.File   // nil for a host-network target without a pid
	own    bool       // the namespace is the executor's own: dial directly
	err    error
	users  int
	closed bool
}

// newNSHandle returns the handle of t's container, with one user (the
// caller's check), not yet opened.
func newNSHandle(t Target) *nsHandle {
	return &nsHandle{target: t, belongs: cgroupNames(t.ContainerID), users: 1}
}

// hold adds a user; false if the handle was already closed.
func (h *nsHandle) hold() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.users++
	return true
}

// release drops a user, closing the descriptor with the last one.
func (h *nsHandle) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.users--
	if h.users > 0 || h.closed {
		return
	}
	h.closed = true
	if h.f != nil {
		_ = h.f.Close()
		h.f = nil
	}
}

// open opens the namespace if that was not tried yet. A check calls it as
// it starts, so the namespace is pinned from Start on, not from the first
// probe after the delay. The result, error included, is final.
func (h *nsHandle) open() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errors.New("the task's checks have stopped")
	}
	if !h.opened {
		h.opened = true
		h.f, h.own, h.err = h.openLocked()
	}
	return h.err
}

func (h *nsHandle) openLocked() (*os.File, bool, error) {
	t := h.target
	switch {
	case t.Pid > 0:
		f, own, err := openNetns(t.Pid, h.belongs)
		if err != nil {
			return nil, false, fmt.Errorf("network namespace of container %s (pid %d): %w", t.ContainerID, t.Pid, err)
		}
		return f, own, nil
	case t.HostNetwork:
		// No pid to go by, but a host-network container shares the
		// host's namespace, which is where the executor runs.
		return nil, true, nil
	default:
		return nil, false, errors.New("no pid to find the container's network namespace")
	}
}

// dial connects to addr, a loopback address, from inside the namespace.
func (h *nsHandle) dial(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	if err := h.open(); err != nil {
		return nil, err
	}
	if !h.hold() {
		return nil, errors.New("the task's checks have stopped")
	}
	defer h.release()
	h.mu.Lock()
	f, own := h.f, h.own
	h.mu.Unlock()
	if own {
		return d.DialContext(ctx, network, addr)
	}
	return dialInNetns(ctx, d, f, network, addr)
}

// loopbackOnly refuses to dial anything but an IP literal on the loopback:
// probes only ever target the container's own loopback, a redirect must not
// take them elsewhere, and a host name would be resolved by goroutines
// running outside the namespace.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("probe address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to dial %s: probes only reach the container's loopback", addr)
	}
	return nil
}
