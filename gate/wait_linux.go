package gate

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pollInterval is how often a waiting gate checks that its FIFO still exists.
const pollInterval = time.Second

type outcome int

const (
	released outcome = iota
	aborted
	gone
)

// Main is the gate program, run in the container as `BinaryPath argv...`. It
// returns an exit status only when it does not exec argv.
func Main(argv []string) int {
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "mdx-gate: no command to run")
		return ExitUsage
	}
	// Without init the gate is PID 1, for which the kernel drops signals
	// that have no handler: handle them so that a stop while gated ends the
	// container at once. exec resets the handlers for the real command.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		s := <-sigs
		os.Exit(128 + int(s.(syscall.Signal)))
	}()

	res, err := wait(ReleasePath, pollInterval)
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "mdx-gate: %v\n", err)
		return ExitGone
	case res == aborted:
		fmt.Fprintln(os.Stderr, "mdx-gate: start aborted by the executor")
		return ExitAborted
	case res == gone:
		fmt.Fprintln(os.Stderr, "mdx-gate: release channel removed; not starting")
		return ExitGone
	}
	signal.Reset()
	return execArgv(argv)
}

// wait blocks until a byte arrives on the FIFO at path, or the FIFO is
// unlinked. The open is non-blocking (it must not depend on the executor
// being there); poll then waits for the byte.
func wait(path string, interval time.Duration) (outcome, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return gone, fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return gone, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return gone, fmt.Errorf("%s is not a FIFO", path)
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		fds[0].Revents = 0
		n, err := unix.Poll(fds, int(interval/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return gone, fmt.Errorf("poll %s: %w", path, err)
		}
		if n > 0 && fds[0].Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) != 0 {
			var b [1]byte
			m, err := unix.Read(fd, b[:])
			switch {
			case m == 1 && b[0] == releaseByte:
				return released, nil
			case m == 1:
				return aborted, nil
			case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
				continue
			default:
				// A writer came and went without a byte: the
				// executor failed between open and write, and
				// poll would report the hang-up forever.
				return aborted, nil
			}
		}
		// The bind mount keeps the inode; once the executor unlinks
		// the FIFO its link count drops to zero.
		if err := unix.Fstat(fd, &st); err != nil {
			return gone, fmt.Errorf("stat %s: %w", path, err)
		}
		if st.Nlink == 0 {
			return gone, nil
		}
	}
}

// execArgv replaces the gate with argv, looking argv[0] up in the
// container's PATH when it has no slash, as runc does (exec.LookPath on the
// process environment, a relative PATH entry included).
func execArgv(argv []string) int {
	path, err := exec.LookPath(argv[0])
	if errors.Is(err, exec.ErrDot) {
		err = nil
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mdx-gate: exec %q: %v\n", argv[0], err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return ExitNotFound
		}
		return ExitNotExecutable
	}
	err = syscall.Exec(path, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "mdx-gate: exec %q: %v\n", path, err)
	if errors.Is(err, syscall.ENOENT) {
		return ExitNotFound
	}
	return ExitNotExecutable
}
