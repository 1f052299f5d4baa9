package status

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Not parallel: it changes the process umask. Top-level parallel tests only
// start once the sequential ones are done, so nothing else sees the change.
func TestListenModeIgnoresUmask(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	for _, dir := range []string{t.TempDir(), longDir(t)} {
		path := filepath.Join(dir, "executor.sock")
		ln, err := Listen(path)
		if err != nil {
			t.Fatalf("Listen(%d-byte path): %v", len(path), err)
		}
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
			t.Errorf("socket mode = %v, want %v", fi.Mode(), os.ModeSocket|0o600)
		}
		if err := ln.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket file after Close: Lstat error %v, want not exist", err)
		}
	}
}

func TestListenLongPath(t *testing.T) {
	t.Parallel()
	path := startServer(t, &fakeSource{st: testState()}, nil)
	if len(path) <= 200 {
		t.Fatalf("test path is %d bytes, want > 200", len(path))
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("socket file not at its real path: %v", err)
	}
	resp, body := get(t, path, "GET", "/state")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /state: %d %s", resp.StatusCode, body)
	}
	mustContain(t, "GET /state", body, `"exec-1"`)

	// Errors name the real path, not the /proc/self/fd alias.
	_, err := Dial(t.Context(), filepath.Join(filepath.Dir(path), "other.sock"))
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), filepath.Dir(path)) || strings.Contains(err.Error(), "/proc/self/fd") {
		t.Errorf("Dial(missing long path) = %v, want a not-exist error naming the real path", err)
	}
}

func TestListenAddrIsRealPath(t *testing.T) {
	t.Parallel()
	path := filepath.Join(longDir(t), "executor.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := ln.Addr().String(); got != path {
		t.Errorf("Addr() = %q, want %q", got, path)
	}
}

// makeStale leaves a socket file at path with no one listening, as a killed
// executor does.
func makeStale(t *testing.T, path string) {
	t.Helper()
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ul := ln.(*listener).UnixListener
	if err := ul.Close(); err != nil { // close without the file removal
		t.Fatal(err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("stale socket not in place: %v", err)
	}
	if _, err := Dial(t.Context(), path); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial stale socket: %v, want connection refused", err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{t.TempDir(), longDir(t)} {
		path := filepath.Join(dir, "executor.sock")
		makeStale(t, path)
		ln, err := Listen(path)
		if err != nil {
			t.Fatalf("Listen over a stale socket: %v", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- New(&fakeSource{st: testState()}, nil, testLogger(t)).Serve(ctx, ln) }()
		resp, _ := get(t, path, "GET", "/state")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /state: %d", resp.StatusCode)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
}

func TestListenRefusesLiveSocket(t *testing.T) {
	t.Parallel()
	path := startServer(t, &fakeSource{st: testState()}, nil)
	ln, err := Listen(path)
	if err == nil {
		ln.Close()
		t.Fatal("second Listen on a live socket succeeded")
	}
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "another executor is serving there") {
		t.Errorf("second Listen: %v, want ErrInUse", err)
	}
	// The first server is untouched.
	if resp, _ := get(t, path, "GET", "/state"); resp.StatusCode != http.StatusOK {
		t.Errorf("first server after refused Listen: %d", resp.StatusCode)
	}
}

func TestListenRefusesNonSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "dir")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{file, link, sub} {
		ln, err := Listen(path)
		if err == nil {
			ln.Close()
			t.Errorf("Listen(%s) succeeded", path)
			continue
		}
		if !errors.Is(err, ErrNotSocket) {
			t.Errorf("Listen(%s) = %v, want ErrNotSocket", path, err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("regular file changed: %q, %v", b, err)
	}
}

// A listener closing late must not delete a socket another executor has put
// at the same path in the meantime.
func TestCloseKeepsReplacedSocket(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "executor.sock")
	ln1, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	ln2, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	ln1.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("second socket gone after first listener closed: %v", err)
	}
	c, err := Dial(t.Context(), path)
	if err != nil {
		t.Fatalf("dial second socket: %v", err)
	}
	c.Close()
}

func TestDialHonoursContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	path := startServer(t, &fakeSource{}, nil)
	if c, err := Dial(ctx, path); err == nil {
		c.Close()
		t.Error("Dial with a cancelled context succeeded")
	}
}
