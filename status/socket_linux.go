package status

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

const (
	// directAddrMax is the longest path used as a socket address as is.
	// sun_path holds 108 bytes including the terminating NUL; longer paths go
	// through /proc/self/fd (withAddr).
	directAddrMax = 99
	sunPathMax    = 108
	listenBacklog = 128
)

// withAddr calls fn with a socket address that names path. A path too long for
// sun_path is reached through an O_PATH descriptor of its directory, as
// /proc/self/fd/<fd>/<name>; the kernel resolves that to the real directory,
// so bind creates and connect finds the socket at path itself. The descriptor
// stays open until fn returns, which is all bind and connect need.
func withAddr(path string, fn func(addr string) error) error {
	if len(path) <= directAddrMax {
		return fn(path)
	}
	dir, name := filepath.Split(path)
	if name == "" {
		return &os.PathError{Op: "socket", Path: path, Err: unix.EISDIR}
	}
	if dir == "" {
		dir = "."
	}
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dfd)
	addr := "/proc/self/fd/" + strconv.Itoa(dfd) + "/" + name
	if len(addr) >= sunPathMax {
		return fmt.Errorf("socket file name %q is too long even relative to its directory: %w", name, unix.ENAMETOOLONG)
	}
	return fn(addr)
}

// bindListen creates the socket file at path with mode 0600 and listens on it.
// It binds, chmods and only then listens: until listen(2) every connect is
// refused, so no one can get in through the umask-dependent mode bind leaves.
// It returns the socket file's info for listener.Close.
func bindListen(path string) (*net.UnixListener, fs.FileInfo, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, opError("listen", path, os.NewSyscallError("socket", err))
	}
	f := os.NewFile(uintptr(fd), path)
	// net.FileListener dups the descriptor, so this one is always closed.
	defer f.Close()

	if err := withAddr(path, func(addr string) error {
		return os.NewSyscallError("bind", unix.Bind(fd, &unix.SockaddrUnix{Name: addr}))
	}); err != nil {
		return nil, nil, opError("listen", path, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(path)
		}
	}()

	if err := os.Chmod(path, socketMode); err != nil {
		return nil, nil, fmt.Errorf("restrict status socket: %w", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("check status socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != socketMode {
		return nil, nil, fmt.Errorf("status socket %s has mode %v after chmod, want %v: %w",
			path, fi.Mode(), fs.ModeSocket|socketMode, fs.ErrPermission)
	}
	if err := unix.Listen(fd, listenBacklog); err != nil {
		return nil, nil, opError("listen", path, os.NewSyscallError("listen", err))
	}
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, nil, opError("listen", path, err)
	}
	ok = true
	return ln.(*net.UnixListener), fi, nil
}
