package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

const (
	// DefaultMaxBytes is the size cap of one log file when none is given.
	DefaultMaxBytes = 10 << 20
	// DefaultKeep is how many rotated files are kept when no count is given.
	DefaultKeep = 5

	filePerm = 0o644 // readable by the agent, which serves sandbox files
	dirPerm  = 0o755
)

// RotatingFile is an io.WriteCloser that appends to a file and rotates it
// before a write would take it past its size cap: path is renamed to path.1,
// path.1 to path.2 and so on, the oldest beyond the keep count is dropped, and
// a new path is started. So at most keep+1 files of about maxBytes each exist.
//
// Each Write goes whole into one file, never split across a rotation; a
// single write larger than the cap goes whole into a fresh file. Writes are
// not buffered, so the file never holds more than one write's bytes in
// memory and a crash loses nothing already written.
//
// A RotatingFile is safe for concurrent use; concurrent writes are
// serialised, each one contiguous in the file.
//
// Every file operation goes through a directory descriptor held for the
// file's life (openat/renameat), never through a path, with O_NOFOLLOW and
// O_NONBLOCK and a regular-file check: whatever replaces a name in the
// directory, a symlink to a host file or a FIFO, the writer never follows it
// and never blocks on it.
type RotatingFile struct {
	dir      *os.File // the directory the files live in; owned
	base     string   // the file's name in dir
	path     string   // for messages only
	maxBytes int64
	keep     int

	// mu guards everything that follows.
	mu     sync.Mutex
	f      *os.File
	size   int64 // bytes in f
	closed bool
	// moved is set while f has been renamed away from path but no new file
	// could be opened yet; the next Write retries only the open, so that a
	// failing open does not shift the rotated files again and again.
	moved bool
}

// OpenRotating opens path for appending, creating it and its parent
// directories if needed (files 0644, directories 0755, before the umask). An
// existing file is continued, and counts towards the cap. maxBytes <= 0 means
// DefaultMaxBytes (10 MiB); keep <= 0 means DefaultKeep (5). The directory
// must be one that no task can change; OpenRotatingAt is for a directory
// already opened safely.
func OpenRotating(path string, maxBytes int64, keep int) (*RotatingFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), dirPerm); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	dir, err := openDir(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("open log directory: %w", err)
	}
	r, err := OpenRotatingAt(dir, filepath.Base(path), maxBytes, keep)
	dir.Close()
	return r, err
}

// OpenRotatingAt opens name in dir for appending, as OpenRotating does. The
// RotatingFile keeps its own duplicate of dir's descriptor, so the caller
// may close dir.
func OpenRotatingAt(dir *os.File, name string, maxBytes int64, keep int) (*RotatingFile, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if keep <= 0 {
		keep = DefaultKeep
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return nil, fmt.Errorf("log file name %q: not a plain name", name)
	}
	fd, err := unix.FcntlInt(dir.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicate log directory descriptor: %w", err)
	}
	d := os.NewFile(uintptr(fd), dir.Name())
	r := &RotatingFile{dir: d, base: name, path: filepath.Join(dir.Name(), name), maxBytes: maxBytes, keep: keep}
	if err := r.openLocked(); err != nil {
		d.Close()
		return nil, err
	}
	return r, nil
}

// Write appends p to the current file, rotating first if p would take the
// file past the cap. If the rotation fails nothing is written and the error
// is returned; the current file stays open, and the next Write tries again.
func (r *RotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, fmt.Errorf("write %s: %w", r.path, os.ErrClosed)
	}
	switch {
	case r.moved:
		if err := r.reopenLocked(); err != nil {
			return 0, err
		}
	// An empty file is never rotated, which is what lets a write larger
	// than the cap land whole in a fresh file instead of looping.
	case r.size > 0 && r.size+int64(len(p)) > r.maxBytes:
		if err := r.rotateLocked(); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

// Close closes the current file. Later writes fail with os.ErrClosed; a
// second Close returns nil.
func (r *RotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	return errors.Join(r.f.Close(), r.dir.Close())
}

// openLocked opens (or creates) the file for appending and records its size.
func (r *RotatingFile) openLocked() error {
	f, err := OpenFileAt(r.dir, r.base, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT, filePerm)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open log file: %w", err)
	}
	r.f, r.size = f, fi.Size()
	return nil
}

// rotateLocked shifts path.N to path.N+1 (dropping path.keep), path to
// path.1, and opens a new path. r.mu must be held.
func (r *RotatingFile) rotateLocked() error {
	// Renaming over path.keep drops the oldest; a missing path.N is a gap
	// left by an earlier, smaller keep or a manual cleanup, and is skipped.
	for i := r.keep - 1; i >= 1; i-- {
		err := unix.Renameat(int(r.dir.Fd()), r.name(i), int(r.dir.Fd()), r.name(i+1))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotate log file: %w", err)
		}
	}
	// If path itself is gone (someone deleted it, or its directory), there
	// is nothing to keep: start a new file once the directory allows it.
	// The directory is not recreated here, since the cleanup may have
	// removed it on purpose.
	if err := unix.Renameat(int(r.dir.Fd()), r.base, int(r.dir.Fd()), r.name(1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rotate log file: %w", err)
	}
	r.moved = true
	return r.reopenLocked()
}

// reopenLocked starts a new file at path after the current one was renamed
// away. The current file is closed only once the new one is open. r.mu must
// be held.
func (r *RotatingFile) reopenLocked() error {
	old := r.f
	if err := r.openLocked(); err != nil {
		return err
	}
	r.moved = false
	// Every byte written to old was already reported by Write, and the
	// file is complete; a close error has nothing left to lose.
	_ = old.Close()
	return nil
}

// name returns the name of the i-th rotated file.
func (r *RotatingFile) name(i int) string { return r.base + "." + strconv.Itoa(i) }
