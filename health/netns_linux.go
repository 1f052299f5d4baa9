package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// netnsPath is the network namespace of the process pid.
func netnsPath(pid int) string { return fmt.Sprintf("/proc/%d/ns/net", pid) }

// sameNetns reports whether the process pid is in the executor's own network
// namespace (a host-network container when the executor runs on the host), in
// which case a probe can dial without entering it.
func sameNetns(pid int) (bool, error) {
	var ours, theirs unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &ours); err != nil {
		return false, fmt.Errorf("stat own network namespace: %w", err)
	}
	if err := unix.Stat(netnsPath(pid), &theirs); err != nil {
		return false, fmt.Errorf("network namespace of pid %d: %w", pid, err)
	}
	return ours.Dev == theirs.Dev && ours.Ino == theirs.Ino, nil
}

// dialInNetns dials addr from inside the network namespace of the process
// pid. A socket belongs to the namespace of the thread that created it, so
// only the socket() and connect() calls need the namespace: the connection
// works from any thread afterwards.
//
// Namespaces are per OS thread, so the dial runs on a goroutine of its own,
// locked to its thread for the duration. If the thread cannot be put back
// into its original namespace, the goroutine exits still locked, which makes
// the Go runtime terminate that thread instead of handing a thread in the
// wrong namespace to other goroutines.
//
// The pid is the container's init process as inspected at start. The caller
// must stop probing when the container ends: a reused pid would point the
// probe at an unrelated process's namespace.
func dialInNetns(ctx context.Context, d *net.Dialer, pid int, network, addr string) (net.Conn, error) {
	target, err := os.Open(netnsPath(pid))
	if err != nil {
		return nil, fmt.Errorf("open network namespace of pid %d: %w", pid, err)
	}
	defer target.Close()

	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		conn, err := dialLocked(ctx, d, target, network, addr)
		if err == errRestoreNetns {
			done <- result{nil, fmt.Errorf("dial %s in network namespace of pid %d: %w", addr, pid, err)}
			return // still locked: the runtime discards this thread
		}
		runtime.UnlockOSThread()
		done <- result{conn, err}
	}()
	// The dial honours ctx, so this wait is bounded by the probe's timeout;
	// waiting (rather than selecting on ctx) also means a connection made
	// just as ctx ends is closed rather than leaked.
	r := <-done
	return r.conn, r.err
}

// errRestoreNetns means the calling thread is left in the target namespace.
var errRestoreNetns = errors.New("cannot restore the thread's network namespace")

// dialLocked enters target, dials, and goes back. The calling goroutine must
// be locked to its OS thread. The only error it returns unwrapped is
// errRestoreNetns.
func dialLocked(ctx context.Context, d *net.Dialer, target *os.File, network, addr string) (net.Conn, error) {
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return nil, fmt.Errorf("open own network namespace: %w", err)
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("enter network namespace: %w", err)
	}
	conn, dialErr := d.DialContext(ctx, network, addr)
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, errRestoreNetns
	}
	return conn, dialErr
}
