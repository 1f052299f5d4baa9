package prestart

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// pinned holds a container's network namespace and root directory open.
type pinned struct {
	netns *os.File
	root  *os.File
}

func pin(pid int) (*pinned, error) {
	nfd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open network namespace of pid %d: %w", pid, err)
	}
	rfd, err := unix.Open(fmt.Sprintf("/proc/%d/root", pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(nfd)
		return nil, fmt.Errorf("open root of pid %d: %w", pid, err)
	}
	return &pinned{netns: os.NewFile(uintptr(nfd), "netns"), root: os.NewFile(uintptr(rfd), "root")}, nil
}

// path returns a path other processes of the host (plugins, hooks, running
// as root) can open to reach what f holds.
func path(f *os.File) string {
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd())
}

func (p *pinned) NetNS() string  { return path(p.netns) }
func (p *pinned) RootFS() string { return path(p.root) }

func (p *pinned) Close() {
	_ = p.netns.Close()
	_ = p.root.Close()
}
