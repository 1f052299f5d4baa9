package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// maxCgroupFile bounds the read of /proc/<pid>/cgroup: a dozen lines on a
// cgroup v1 host, one on v2.
const maxCgroupFile = 64 << 10

// openNetns opens the network namespace of the process pid, once belongs
// has confirmed from the process's /proc/<pid>/cgroup that it is the
// container's. Both files are opened through one descriptor of /proc/<pid>:
// that directory stays bound to the process it was opened for, so if the
// process dies, and even if its pid is reused, the opens fail instead of
// reading another process. own reports that the namespace is the executor's
// own (a host-network container), where a probe needs no setns.
func openNetns(pid int, belongs func(cgroup []byte) bool) (f *os.File, own bool, err error) {
	dir, err := unix.Open("/proc/"+strconv.Itoa(pid), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, fmt.Errorf("open /proc/%d: %w", pid, err)
	}
	defer unix.Close(dir)

	cg, err := readAt(dir, "cgroup")
	if err != nil {
		return nil, false, fmt.Errorf("read /proc/%d/cgroup: %w", pid, err)
	}
	if !belongs(cg) {
		return nil, false, fmt.Errorf("pid %d is not in the container's cgroup: the container has ended and its pid was reused", pid)
	}
	fd, err := unix.Openat(dir, "ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, fmt.Errorf("open /proc/%d/ns/net: %w", pid, err)
	}
	f = os.NewFile(uintptr(fd), fmt.Sprintf("/proc/%d/ns/net", pid))
	var ours, theirs unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &ours); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("stat own network namespace: %w", err)
	}
	if err := unix.Fstat(fd, &theirs); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("stat network namespace of pid %d: %w", pid, err)
	}
	return f, ours.Dev == theirs.Dev && ours.Ino == theirs.Ino, nil
}

// readAt reads a small procfs file below the directory descriptor dir.
func readAt(dir int, name string) ([]byte, error) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxCgroupFile))
}

// cgroupNames returns the check that a /proc/<pid>/cgroup shows the
// container id: Docker puts each container in a cgroup named after its full
// id (/docker/<id> with cgroupfs, docker-<id>.scope with systemd, under any
// cgroup parent), as seen from the executor's cgroup namespace. An id too
// short to be unique matches nothing.
func cgroupNames(containerID string) func([]byte) bool {
	return func(cgroup []byte) bool {
		return len(containerID) >= 12 && bytes.Contains(cgroup, []byte(containerID))
	}
}

// dialInNetns dials addr from inside the network namespace ns. A socket
// belongs to the namespace of the thread that created it, so only the
// socket() and connect() calls need the namespace: the connection works from
// any thread afterwards.
//
// Namespaces are per OS thread, so the dial runs on a goroutine of its own,
// locked to its thread for the duration. If the thread cannot be put back
// into its original namespace, the goroutine exits still locked, which makes
// the Go runtime terminate that thread instead of handing a thread in the
// wrong namespace to other goroutines.
func dialInNetns(ctx context.Context, d *net.Dialer, ns *os.File, network, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		conn, err := dialLocked(ctx, d, ns, network, addr)
		if errors.Is(err, errRestoreNetns) {
			done <- result{nil, fmt.Errorf("dial %s in the container's network namespace: %w", addr, err)}
			return // still locked: the runtime discards this thread
		}
		runtime.UnlockOSThread()
		done <- result{conn, err}
	}()
	// The dial honours ctx, so this wait is bounded by the probe's timeout
	// (or by Stop); waiting (rather than selecting on ctx) also means a
	// connection made just as ctx ends is closed rather than leaked, and ns
	// stays open until the goroutine is done with it.
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
