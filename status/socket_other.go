//go:build !linux

package status

import (
	"fmt"
	"io/fs"
	"net"
	"os"
)

// withAddr uses path as is: the /proc/self/fd route to long paths is Linux's.
func withAddr(path string, fn func(addr string) error) error { return fn(path) }

// bindListen listens on path and then restricts it to mode 0600. Unlike the
// Linux version it cannot separate bind from listen, so for an instant the
// socket has the mode the umask gives it.
func bindListen(path string) (*net.UnixListener, fs.FileInfo, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, nil, err
	}
	// listener.Close removes the file, after checking it is still ours.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, socketMode); err != nil {
		_ = ln.Close()
		_ = os.Remove(path)
		return nil, nil, fmt.Errorf("restrict status socket: %w", err)
	}
	fi, err := os.Lstat(path)
	if err == nil && fi.Mode().Perm() != socketMode {
		err = fmt.Errorf("status socket %s has mode %v after chmod, want %v: %w", path, fi.Mode(), socketMode, fs.ErrPermission)
	}
	if err != nil {
		_ = ln.Close()
		_ = os.Remove(path)
		return nil, nil, fmt.Errorf("check status socket: %w", err)
	}
	return ln, fi, nil
}
