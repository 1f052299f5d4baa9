package isolation

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// cgroupFS reads fixed-name files below one cgroupfs mount through a
// directory descriptor opened once. Every open is an openat2 confined beneath
// that directory with no symlink or magic-link resolution, so a path can
// never lead out of the cgroup tree, whatever a container did in its own
// (delegated) cgroup directory. The relative paths are built by this package
// from the parent it chose and a validated container id, never from anything
// a task wrote.
type cgroupFS struct {
	root string
	fd   int
	// noOpenat2: the kernel lacks openat2 (before 5.6); fall back to
	// openat with O_NOFOLLOW on the last component.
	noOpenat2 atomic.Bool
}

func openCgroupFS(root string) (*cgroupFS, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open cgroup root %s: %w", root, err)
	}
	return &cgroupFS{root: root, fd: fd}, nil
}

func (c *cgroupFS) Close() error { return unix.Close(c.fd) }

// maxCgroupFile bounds one read: memory.stat, the largest file read, is
// about 1.5 KiB on v1 and 1.2 KiB on v2.
const maxCgroupFile = 16 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, maxCgroupFile); return &b }}

func (c *cgroupFS) open(rel string) (int, error) {
	if !c.noOpenat2.Load() {
		fd, err := unix.Openat2(c.fd, rel, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		if !errors.Is(err, unix.ENOSYS) {
			return fd, err
		}
		c.noOpenat2.Store(true)
	}
	return unix.Openat(c.fd, rel, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
}

// read calls fn with the content of rel (valid only during the call).
func (c *cgroupFS) read(rel string, fn func([]byte)) error {
	fd, err := c.open(rel)
	if err != nil {
		return &os.PathError{Op: "open", Path: rel, Err: err}
	}
	defer unix.Close(fd)
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "read", Path: rel, Err: err}
		}
		if m == 0 {
			break
		}
		n += m
	}
	if n == len(buf) {
		return &os.PathError{Op: "read", Path: rel, Err: io.ErrShortBuffer}
	}
	fn(buf[:n])
	return nil
}

// readUint reads a file holding one number; "max" (v2) is reported as 0 with
// unlimited=true.
func (c *cgroupFS) readUint(rel string) (v uint64, unlimited bool, err error) {
	err = c.read(rel, func(b []byte) {
		s := strings.TrimSpace(string(b))
		if s == "max" {
			unlimited = true
			return
		}
		v, err = strconv.ParseUint(s, 10, 64)
	})
	return v, unlimited, err
}

// readKV reads a "key value" per line file (memory.stat, cpu.stat,
// memory.events, memory.oom_control, cpuacct.stat) and calls set for every
// key in want.
func (c *cgroupFS) readKV(rel string, set func(key string, v uint64)) error {
	return c.read(rel, func(b []byte) {
		for line := range strings.SplitSeq(string(b), "\n") {
			k, v, ok := strings.Cut(line, " ")
			if !ok {
				continue
			}
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				continue
			}
			set(k, n)
		}
	})
}
