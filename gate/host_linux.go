package gate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mdx-executor/mdx/containerd"
)

// The bytes the executor writes into the release FIFO.
const (
	releaseByte = 'R'
	abortByte   = 'A'
)

// fifoName is the FIFO's name in a gate's directory.
const fifoName = "release"

// Bounds of the retry while the gate has not opened the FIFO yet (ENXIO).
const (
	minRetry = time.Millisecond
	maxRetry = 20 * time.Millisecond
)

var (
	// ErrBadName is returned by Prepare for a name that is not a plain
	// container name.
	ErrBadName = errors.New("gate: bad name")
	// ErrSent is returned by Release and Abort once either has succeeded:
	// the gate reads one byte only.
	ErrSent = errors.New("gate: already released or aborted")
	// ErrNotFIFO means the release channel is not the FIFO Prepare made.
	ErrNotFIFO = errors.New("gate: release channel is not a FIFO")
)

// validName reports whether name is what a Docker container name may hold
// ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 255 bytes); it keeps a name from
// walking out of the gates directory. Not a regexp: package init runs in
// every gate too, under the task's CPU limit.
func validName(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

// Config configures a Manager.
type Config struct {
	// Dir is the executor-owned directory that holds one subdirectory per
	// gated container (e.g. $MESOS_DIRECTORY/gates or /var/lib/mdx/gates).
	// It must not be inside any task's sandbox: it is created 0700.
	Dir string
	// Binary is the host path of the static executor binary. "" means
	// os.Executable() of this process, with symlinks resolved, at New.
	// New copies it into Dir and containers get the copy (see New).
	Binary string
}

// Manager makes gates in its directory.
type Manager struct {
	dir    string
	binary string
}

// New checks cfg and creates cfg.Dir.
func New(cfg Config) (*Manager, error) {
	if cfg.Dir == "" || !filepath.IsAbs(cfg.Dir) {
		return nil, fmt.Errorf("gate: directory %q must be an absolute path", cfg.Dir)
	}
	bin := cfg.Binary
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("gate: find own binary: %w", err)
		}
		bin = exe
	}
	// Resolved once: a later upgrade that replaces the file behind a
	// symlink must not change what new containers mount halfway.
	bin, err := filepath.EvalSymlinks(bin)
	if err != nil {
		return nil, fmt.Errorf("gate: resolve binary: %w", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("gate: create %s: %w", cfg.Dir, err)
	}
	// Containers get a copy, never the executor's own file: a container
	// allowed to remount (a privileged task) could otherwise make its
	// read-only bind mount writable and replace the binary the agent
	// starts as root. The copy is made once per executor process.
	copyPath := filepath.Join(cfg.Dir, binaryCopyName)
	if err := copyBinary(bin, copyPath); err != nil {
		return nil, err
	}
	return &Manager{dir: filepath.Clean(cfg.Dir), binary: copyPath}, nil
}

// binaryCopyName is the gate binary's name in Config.Dir. It cannot clash
// with a gate directory: container names do not start with ".".
const binaryCopyName = ".gate"

// copyBinary copies src to dst (mode 0555) through a temporary file and a
// rename, so that containers already running keep the inode they mounted.
func copyBinary(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("gate: open binary: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".gate-*")
	if err != nil {
		return fmt.Errorf("gate: copy binary: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename this fails, harmlessly
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return fmt.Errorf("gate: copy binary: %w", err)
	}
	if err := tmp.Chmod(0o555); err != nil {
		tmp.Close()
		return fmt.Errorf("gate: copy binary: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("gate: copy binary: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("gate: copy binary: %w", err)
	}
	return nil
}

// Binary returns the host path mounted as BinaryPath: New's copy.
func (m *Manager) Binary() string { return m.binary }

// Gate is the host side of one container's start gate.
type Gate struct {
	dir    string // this gate's directory, executor-owned
	binary string
	sent   atomic.Bool
}

// Prepare creates the release FIFO for the container called name (its
// Docker name, unique per task). A leftover directory of the same name, from
// an earlier executor, is replaced. Call Cleanup when the task ends.
func (m *Manager) Prepare(name string) (*Gate, error) {
	if !validName(name) {
		return nil, fmt.Errorf("%w: %q", ErrBadName, name)
	}
	dir := filepath.Join(m.dir, name)
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("gate: remove stale %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("gate: create %s: %w", dir, err)
	}
	g := &Gate{dir: dir, binary: m.binary}
	if err := g.mkfifo(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return g, nil
}

// Remove deletes the gate directory of the container called name, if any:
// for the cleanup sweep of a relaunched executor, which has no Gate value.
func (m *Manager) Remove(name string) error {
	if !validName(name) {
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	if err := os.RemoveAll(filepath.Join(m.dir, name)); err != nil {
		return fmt.Errorf("gate: remove %s: %w", name, err)
	}
	return nil
}

func (g *Gate) mkfifo() error {
	dfd, err := g.openDir()
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	if err := unix.Mkfifoat(dfd, fifoName, 0o600); err != nil {
		return fmt.Errorf("gate: mkfifo in %s: %w", g.dir, err)
	}
	// Readable by everyone so that a task running as a non-root user can
	// wait on it; only the owner (root, the executor) may open it for
	// writing. Set explicitly because the umask applies to Mkfifoat.
	if err := unix.Fchmodat(dfd, fifoName, 0o644, 0); err != nil {
		return fmt.Errorf("gate: chmod fifo in %s: %w", g.dir, err)
	}
	return nil
}

func (g *Gate) openDir() (int, error) {
	dfd, err := unix.Open(g.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("gate: open %s: %w", g.dir, err)
	}
	return dfd, nil
}

// FIFOPath returns the host path of the release FIFO.
func (g *Gate) FIFOPath() string { return filepath.Join(g.dir, fifoName) }

// Wrap makes spec a gated container: the entrypoint becomes BinaryPath with
// the real argv (RealArgv of spec and img) as its arguments, and the binary
// and the FIFO are bind-mounted read-only. Env, User, WorkingDir and Init are
// left alone: Docker applies them to the gate, and exec keeps them, so the
// real command runs with exactly what Docker would have given it.
func (g *Gate) Wrap(spec *containerd.Spec, img containerd.ImageConfig) error {
	argv, err := RealArgv(spec, img)
	if err != nil {
		return fmt.Errorf("gate: %w", err)
	}
	spec.Entrypoint = []string{BinaryPath}
	spec.Cmd = argv
	spec.Mounts = append(spec.Mounts,
		containerd.Mount{HostPath: g.binary, ContainerPath: BinaryPath, ReadOnly: true},
		containerd.Mount{HostPath: g.FIFOPath(), ContainerPath: ReleasePath, ReadOnly: true},
	)
	return nil
}

// Release lets the gate exec the task's command. It retries until the gate
// has opened the FIFO or ctx ends; it never blocks on the container.
func (g *Gate) Release(ctx context.Context) error { return g.send(ctx, releaseByte) }

// Abort makes the gate exit with ExitAborted instead of running the task. A
// caller that kills the container anyway may skip it; it exists so that a
// gate can be ended without a signal (e.g. before a kill grace).
func (g *Gate) Abort(ctx context.Context) error { return g.send(ctx, abortByte) }

func (g *Gate) send(ctx context.Context, b byte) error {
	if g.sent.Load() {
		return ErrSent
	}
	dfd, err := g.openDir()
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	// O_NONBLOCK: an open for writing fails with ENXIO instead of waiting
	// for a reader, and the write cannot wait for room in the pipe.
	// O_NOFOLLOW and the directory fd: the path is never one a task chose.
	wait := minRetry
	var fd int
	for {
		fd, err = unix.Openat(dfd, fifoName, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.ENXIO) && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("gate: open %s: %w", g.FIFOPath(), err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("gate: waiting for the container to open %s: %w", ReleasePath, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, maxRetry)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("gate: stat %s: %w", g.FIFOPath(), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return ErrNotFIFO
	}
	if _, err := unix.Write(fd, []byte{b}); err != nil {
		return fmt.Errorf("gate: write %s: %w", g.FIFOPath(), err)
	}
	g.sent.Store(true)
	return nil
}

// Cleanup removes the gate's directory. A gate still waiting then exits with
// ExitGone. Safe to call more than once.
func (g *Gate) Cleanup() error {
	if err := os.RemoveAll(g.dir); err != nil {
		return fmt.Errorf("gate: remove %s: %w", g.dir, err)
	}
	return nil
}
