package gate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func newManager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(Config{Dir: filepath.Join(t.TempDir(), "gates")})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitAsync runs the gate side's wait on g's FIFO in a goroutine.
func waitAsync(g *Gate, interval time.Duration) <-chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		res, _ := wait(g.FIFOPath(), interval)
		ch <- res
	}()
	return ch
}

func expect(t *testing.T, ch <-chan outcome, want outcome) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("gate outcome = %v, want %v", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gate still waiting after 10s")
	}
}

func TestReleaseAndAbort(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(*Gate, context.Context) error
		want outcome
	}{
		{"release", (*Gate).Release, released},
		{"abort", (*Gate).Abort, aborted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := newManager(t).Prepare("mdx-" + tc.name)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = g.Cleanup() })
			ch := waitAsync(g, time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// The sender retries until the gate has opened the FIFO.
			if err := tc.send(g, ctx); err != nil {
				t.Fatal(err)
			}
			expect(t, ch, tc.want)
			if err := g.Release(ctx); !errors.Is(err, ErrSent) {
				t.Errorf("second send: %v, want ErrSent", err)
			}
		})
	}
}

func TestFIFOMode(t *testing.T) {
	g, err := newManager(t).Prepare("mdx-mode")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(g.FIFOPath())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeNamedPipe == 0 || fi.Mode().Perm() != 0o644 {
		t.Errorf("fifo mode %v, want named pipe 0644", fi.Mode())
	}
	di, err := os.Lstat(filepath.Dir(g.FIFOPath()))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("gate dir mode %v, want 0700", di.Mode().Perm())
	}
}

// Nobody opened the FIFO (the container died before its gate ran): Release
// must give up with ctx, not hang.
func TestReleaseWithoutReaderEndsWithContext(t *testing.T) {
	g, err := newManager(t).Prepare("mdx-noreader")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = g.Release(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Release = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Release took %v after a 100ms deadline", d)
	}
}

// A gate whose FIFO is removed (task ended, executor cleaned up) exits
// instead of waiting forever.
func TestGateExitsWhenFIFOGone(t *testing.T) {
	g, err := newManager(t).Prepare("mdx-gone")
	if err != nil {
		t.Fatal(err)
	}
	ch := waitAsync(g, 20*time.Millisecond)
	time.Sleep(50 * time.Millisecond) // let it open the FIFO
	if err := g.Cleanup(); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, gone)
	if err := g.Cleanup(); err != nil {
		t.Errorf("second Cleanup: %v", err)
	}
}

func TestGateMissingFIFO(t *testing.T) {
	res, err := wait(filepath.Join(t.TempDir(), "nothing"), time.Second)
	if res != gone || err == nil {
		t.Fatalf("wait on a missing FIFO = %v, %v; want gone with an error", res, err)
	}
}

// Hostile: the release path was replaced by a symlink or a regular file. The
// executor must neither follow it nor write into a file.
func TestReleaseRefusesSwappedChannel(t *testing.T) {
	target := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		swap func(path string) error
	}{
		{"symlink", func(p string) error { return os.Symlink(target, p) }},
		{"regular file", func(p string) error { return os.WriteFile(p, nil, 0o644) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := newManager(t).Prepare("mdx-swap")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(g.FIFOPath()); err != nil {
				t.Fatal(err)
			}
			if err := tc.swap(g.FIFOPath()); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			err = g.Release(ctx)
			if err == nil {
				t.Fatal("Release wrote into a swapped channel")
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Release waited instead of refusing: %v", err)
			}
			if b, _ := os.ReadFile(target); len(b) != 0 {
				t.Errorf("symlink target written: %q", b)
			}
		})
	}
}

// Hostile: the container fills the pipe before the executor writes (root in
// the container can open the FIFO for writing: read-only mounts do not
// apply to FIFOs). Release must fail at once rather than block.
func TestReleaseFullPipeDoesNotBlock(t *testing.T) {
	g, err := newManager(t).Prepare("mdx-full")
	if err != nil {
		t.Fatal(err)
	}
	r, err := unix.Open(g.FIFOPath(), unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(r)
	w, err := unix.Open(g.FIFOPath(), unix.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(w)
	junk := make([]byte, 4096)
	for {
		if _, err := unix.Write(w, junk); err != nil {
			break // EAGAIN: full
		}
	}
	done := make(chan error, 1)
	go func() { done <- g.Release(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, unix.EAGAIN) {
			t.Errorf("Release on a full pipe = %v, want EAGAIN", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Release blocked on a full pipe")
	}
}

func TestPrepareRejectsBadNames(t *testing.T) {
	m := newManager(t)
	for _, name := range []string{"", "../x", "a/b", ".", "..", "-x"} {
		if _, err := m.Prepare(name); !errors.Is(err, ErrBadName) {
			t.Errorf("Prepare(%q) = %v, want ErrBadName", name, err)
		}
	}
}

// Containers mount a copy of the binary, never the executor's own file.
func TestNewCopiesBinary(t *testing.T) {
	src := filepath.Join(t.TempDir(), "executor")
	if err := os.WriteFile(src, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Dir: filepath.Join(t.TempDir(), "gates"), Binary: src})
	if err != nil {
		t.Fatal(err)
	}
	if m.Binary() == src {
		t.Fatal("the executor's own file would be mounted")
	}
	b, err := os.ReadFile(m.Binary())
	if err != nil || string(b) != "binary" {
		t.Fatalf("copy: %q, %v", b, err)
	}
	fi, err := os.Stat(m.Binary())
	if err != nil || fi.Mode().Perm() != 0o555 {
		t.Errorf("copy mode %v, %v; want 0555", fi.Mode(), err)
	}
}
