package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotRegular means a name the executor writes to is not a regular file
// (a FIFO, a device, a directory): something replaced it.
var ErrNotRegular = errors.New("not a regular file")

// OpenFileAt opens name in dir without following a symlink and without
// blocking (a FIFO without a reader fails at once, one with a reader is
// refused by the regular-file check), close-on-exec. flags are O_* flags of
// golang.org/x/sys/unix.
func OpenFileAt(dir *os.File, name string, flags int, perm uint32) (*os.File, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return nil, fmt.Errorf("open %q: not a plain file name", name)
	}
	fd, err := unix.Openat(int(dir.Fd()), name, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, perm)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", filepath.Join(dir.Name(), name), err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir.Name(), name))
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", f.Name(), ErrNotRegular)
	}
	// O_NONBLOCK only mattered for the open; regular-file writes ignore it,
	// but clear it so nothing downstream is surprised.
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil {
		_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
	}
	return f, nil
}

// openDir opens a directory by path without following a final symlink.
func openDir(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open directory %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openDirAt opens (creating it if missing) the directory name inside dir,
// without following a symlink.
func openDirAt(dir *os.File, name string, create bool) (*os.File, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return nil, fmt.Errorf("directory %q: not a plain name", name)
	}
	if create {
		if err := unix.Mkdirat(int(dir.Fd()), name, dirPerm); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("create directory %s: %w", filepath.Join(dir.Name(), name), err)
		}
	}
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open directory %s: %w", filepath.Join(dir.Name(), name), err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir.Name(), name)), nil
}

// MkdirBeneath creates the relative path rel (and its parents) under dir,
// refusing to pass through a symlink or to leave dir: each component is
// created and opened with mkdirat/openat O_NOFOLLOW from the one before. It
// is how relative volume host paths are made inside a task's sandbox, as the
// Mesos containerizer creates them.
func MkdirBeneath(dir *os.File, rel string) error {
	if filepath.IsAbs(rel) {
		return fmt.Errorf("mkdir %q: not a relative path", rel)
	}
	clean := filepath.Clean(rel)
	if clean == "." {
		return nil
	}
	if clean == ".." || strings.HasPrefix(clean, "../") || strings.ContainsRune(clean, 0) {
		return fmt.Errorf("mkdir %q: leaves the directory", rel)
	}
	cur := dir
	for _, part := range strings.Split(clean, "/") {
		next, err := openDirAt(cur, part, true)
		if cur != dir {
			cur.Close()
		}
		if err != nil {
			return err
		}
		cur = next
	}
	if cur != dir {
		cur.Close()
	}
	return nil
}
