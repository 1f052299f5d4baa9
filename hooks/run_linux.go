package hooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/mdx-executor/mdx/reaper"
)

// Phase is a hook directory under the hooks dir.
type Phase string

// The two phases of the contract.
const (
	PreStart Phase = "prestart.d"
	PostStop Phase = "poststop.d"
)

// Defaults of Config's zero values.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultOutputLimit = 1 << 20 // bytes of one hook's output written to Request.Output
)

const (
	// tailSize is how much of a hook's stderr the failure message keeps.
	tailSize = 1024
	// drainDelay bounds how long the output of a finished hook is read:
	// its group is killed, but a process that left the group may still
	// hold the pipe.
	drainDelay = time.Second
)

// Config configures a Runner.
type Config struct {
	// Dir is the policy's hooks-dir; "" means no hooks.
	Dir string
	// Timeout bounds each hook; 0 means DefaultTimeout.
	Timeout time.Duration
	// OutputLimit bounds the bytes of one hook's stdout and stderr
	// written to Request.Output; 0 means DefaultOutputLimit.
	OutputLimit int64
}

// Runner runs hooks. It is safe for concurrent use.
type Runner struct {
	cfg    Config
	reaper *reaper.Reaper
	log    *logrus.Entry
}

// New returns a Runner that starts hooks through r. A nil log discards.
func New(cfg Config, r *reaper.Reaper, log *logrus.Entry) (*Runner, error) {
	if r == nil {
		return nil, errors.New("hooks: a reaper is required")
	}
	if cfg.Dir != "" && !filepath.IsAbs(cfg.Dir) {
		return nil, fmt.Errorf("hooks: directory %q must be absolute", cfg.Dir)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.OutputLimit <= 0 {
		cfg.OutputLimit = DefaultOutputLimit
	}
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = logrus.NewEntry(l)
	}
	return &Runner{cfg: cfg, reaper: r, log: log}, nil
}

// Request is one run of a phase's hooks for one container.
type Request struct {
	Phase  Phase
	Env    Env
	Output io.Writer         // receives the hooks' stdout and stderr (bounded); nil discards
	OnHook func(hook string) // optional: called as each hook starts, e.g. for /state
}

// Hooks returns the names of the hooks of phase that pass the safety checks,
// in the order they run. A missing phase directory has no hooks.
func (r *Runner) Hooks(phase Phase) ([]string, error) {
	if r.cfg.Dir == "" {
		return nil, nil
	}
	if err := checkDir(r.cfg.Dir, os.Stat); err != nil {
		return nil, err
	}
	dir := filepath.Join(r.cfg.Dir, string(phase))
	if err := checkDir(dir, os.Lstat); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("hooks: read %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if reason := unsafeHook(filepath.Join(dir, e.Name())); reason != "" {
			r.log.WithFields(logrus.Fields{"hook": e.Name(), "phase": string(phase)}).
				Warnf("hook skipped: %s", reason)
			continue
		}
		names = append(names, e.Name())
	}
	return names, nil
}

// checkDir checks that dir is a directory owned by root and not writable by
// group or others.
func checkDir(dir string, stat func(string) (os.FileInfo, error)) error {
	fi, err := stat(dir)
	if err != nil {
		return fmt.Errorf("hooks: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("hooks: %s (%v, uid %d): %w", dir, fi.Mode(), uidOf(st), ErrUnsafeDir)
	}
	return nil
}

func uidOf(st *syscall.Stat_t) int64 {
	if st == nil {
		return -1
	}
	return int64(st.Uid)
}

// unsafeHook returns why path must not be run, or "".
func unsafeHook(path string) string {
	fi, err := os.Lstat(path)
	if err != nil {
		return err.Error()
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return fmt.Sprintf("not a regular file (%v)", fi.Mode().Type())
	case !ok || st.Uid != 0:
		return fmt.Sprintf("owned by uid %d, not root", uidOf(st))
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Sprintf("writable by group or others (%v)", fi.Mode().Perm())
	case fi.Mode().Perm()&0o111 == 0:
		return "not executable"
	}
	return ""
}

// Run runs the hooks of req.Phase in name order and stops at the first
// failure, which it returns as a *HookError: the pre-start semantics. When
// ctx ends the running hook's group is killed and Run returns.
func (r *Runner) Run(ctx context.Context, req Request) error {
	names, err := r.Hooks(req.Phase)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return &HookError{Hook: name, Status: -1, Canceled: true, Err: err}
		}
		if err := r.runOne(ctx, req, name); err != nil {
			return err
		}
	}
	return nil
}

// RunAll runs every hook of req.Phase even when some fail, and returns their
// failures joined: the best-effort post-stop semantics.
func (r *Runner) RunAll(ctx context.Context, req Request) error {
	names, err := r.Hooks(req.Phase)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if ctx.Err() != nil {
			errs = append(errs, &HookError{Hook: name, Status: -1, Canceled: true, Err: ctx.Err()})
			break
		}
		errs = append(errs, r.runOne(ctx, req, name))
	}
	return errors.Join(errs...)
}

func (r *Runner) runOne(ctx context.Context, req Request, name string) error {
	log := r.log.WithFields(logrus.Fields{
		"hook": name, "phase": string(req.Phase),
		"task_id": req.Env.TaskID, "container_id": req.Env.ContainerID,
	})
	if req.OnHook != nil {
		req.OnHook(name)
	}
	start := time.Now()
	status, tail, timedOut, err := r.exec(ctx, req, filepath.Join(r.cfg.Dir, string(req.Phase), name))
	log = log.WithFields(logrus.Fields{"duration": time.Since(start).String(), "status": status})
	if err == nil && status == 0 {
		log.Info("hook ran")
		return nil
	}
	herr := &HookError{Hook: name, Status: status, TimedOut: timedOut, StderrTail: tail}
	switch {
	case timedOut:
	case ctx.Err() != nil:
		// Wrapped so that callers tell a KILL from a failure with
		// errors.Is(err, context.Canceled).
		herr.Canceled, herr.Err = true, ctx.Err()
	case err != nil:
		herr.Err = err
	}
	// Returned, not logged: the caller puts it in the task's status and
	// its own log line.
	return herr
}

// exec runs one hook and returns its exit status, its stderr tail, and
// whether its timeout killed it.
func (r *Runner) exec(ctx context.Context, req Request, path string) (int, string, bool, error) {
	cmd := exec.Command(path)
	cmd.Env = req.Env.Environ()
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	outR, outW, err := os.Pipe()
	if err != nil {
		return -1, "", false, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return -1, "", false, err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	p, err := r.reaper.Start(cmd)
	// The child holds its own copies; ours must go for the readers to see
	// EOF.
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return -1, "", false, err
	}

	sink := &boundedWriter{w: req.Output, left: r.cfg.OutputLimit}
	tail := &tailBuffer{max: tailSize}
	copied := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(sink, outR); copied <- struct{}{} }()
	go func() { _, _ = io.Copy(io.MultiWriter(sink, tail), errR); copied <- struct{}{} }()

	hctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	status, werr := p.Wait(hctx)
	timedOut := false
	if werr != nil {
		timedOut = ctx.Err() == nil && errors.Is(werr, context.DeadlineExceeded)
		_ = p.SignalGroup(unix.SIGKILL)
		// SIGKILL cannot be caught: only a stopped reaper keeps this
		// from returning at once.
		status, werr = p.Wait(context.WithoutCancel(ctx))
	}
	// Whatever the hook left running in its group goes too. The leader
	// is reaped by now, so this goes by the number: a group id stays
	// taken while any member lives, and the window in which an empty
	// group's number could be reused by a new group is this one call.
	_ = unix.Kill(-p.Pid, unix.SIGKILL)

	timer := time.NewTimer(drainDelay)
	pending := 2
	for pending > 0 {
		select {
		case <-copied:
			pending--
		case <-timer.C:
			// A process that left the group holds the pipes:
			// closing interrupts the reads (os.Pipe is pollable),
			// and the copiers then finish.
			outR.Close()
			errR.Close()
		}
	}
	timer.Stop()
	outR.Close()
	errR.Close()
	if werr != nil && !errors.Is(werr, context.Canceled) && !errors.Is(werr, context.DeadlineExceeded) {
		return status, tail.String(), timedOut, werr
	}
	return status, tail.String(), timedOut, nil
}

// boundedWriter passes on the first left bytes and drops the rest, noting
// once that it did. It never fails, so the pipe is always drained.
type boundedWriter struct {
	mu        sync.Mutex // the stdout and stderr copiers share w
	w         io.Writer
	left      int64
	truncated bool
}

func (b *boundedWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.w == nil {
		return len(p), nil
	}
	n := int64(len(p))
	if n > b.left {
		n = b.left
	}
	if n > 0 {
		_, _ = b.w.Write(p[:n])
		b.left -= n
	}
	if int64(len(p)) > n && !b.truncated {
		b.truncated = true
		_, _ = io.WriteString(b.w, "\n[hook output truncated]\n")
	}
	return len(p), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// String returns the tail as one trimmed line of valid UTF-8.
func (t *tailBuffer) String() string {
	s := strings.ToValidUTF8(string(t.buf), "?")
	s = strings.TrimSpace(s)
	return strings.Join(strings.Fields(s), " ")
}
