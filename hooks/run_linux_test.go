package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/mdx-executor/mdx/internal/testenv"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hookDir makes a hooks dir with a prestart.d holding the given scripts.
func hookDir(t *testing.T, scripts map[string]string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("hooks run only root-owned files; this test needs root")
	}
	dir := t.TempDir()
	pre := filepath.Join(dir, string(PreStart))
	if err := os.Mkdir(pre, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(pre, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func newRunner(t *testing.T, cfg Config) *Runner {
	t.Helper()
	r, err := New(cfg, testReaper, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRunsInNameOrder(t *testing.T) {
	out := filepath.Join(t.TempDir(), "order")
	body := fmt.Sprintf("echo $0 >> %s\n", out)
	dir := hookDir(t, map[string]string{"20-c": body, "10-a": body, "9-b": body})
	var seen []string
	r := newRunner(t, Config{Dir: dir})
	err := r.Run(context.Background(), Request{Phase: PreStart, OnHook: func(h string) { seen = append(seen, h) }})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range strings.Fields(string(b)) {
		got = append(got, filepath.Base(l))
	}
	want := []string{"10-a", "20-c", "9-b"} // byte order, not numeric
	if !slices.Equal(got, want) || !slices.Equal(seen, want) {
		t.Errorf("ran %q, OnHook %q; want %q", got, seen, want)
	}
}

// The hook sees exactly the contract's variables and nothing of the test
// process's environment (which stands in for the executor's, auth token
// included).
func TestEnvironmentExactly(t *testing.T) {
	t.Setenv("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", "secret-token")
	dir := hookDir(t, nil)
	envBin, err := os.ReadFile("/usr/bin/env")
	if err != nil {
		t.Fatal(err)
	}
	// A copy, not a script: a shell would add PWD and friends.
	if err := os.WriteFile(filepath.Join(dir, string(PreStart), "00-env"), envBin, 0o755); err != nil {
		t.Fatal(err)
	}
	var out testenv.SyncBuffer
	env := Env{TaskID: "t", ContainerID: "c", ContainerPID: 7, NetNS: "/proc/7/ns/net", RootFS: "/proc/7/root",
		Image: "i", Labels: map[string]string{"x.y-z": "1"}, CNIResult: []byte("[]")}
	if err := newRunner(t, Config{Dir: dir}).Run(context.Background(), Request{Phase: PreStart, Env: env, Output: &out}); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	slices.Sort(got)
	if want := env.Environ(); !slices.Equal(got, want) {
		t.Errorf("hook environment:\n got %q\nwant %q", got, want)
	}
	if strings.Contains(out.String(), "secret-token") {
		t.Error("auth token reached a hook")
	}
}

func TestFailureNamesHookAndStderrTail(t *testing.T) {
	long := strings.Repeat("x", 5000)
	dir := hookDir(t, map[string]string{
		"10-ok":   "echo fine\n",
		"20-fail": fmt.Sprintf("echo to-stdout\necho %s >&2\necho 'vlan 10 missing on eth9' >&2\nexit 3\n", long),
		"30-next": "echo must-not-run\n",
	})
	var out testenv.SyncBuffer
	err := newRunner(t, Config{Dir: dir}).Run(context.Background(), Request{Phase: PreStart, Output: &out})
	var herr *HookError
	if !errors.As(err, &herr) {
		t.Fatalf("Run = %v, want a *HookError", err)
	}
	if herr.Hook != "20-fail" || herr.Status != 3 || herr.TimedOut {
		t.Errorf("HookError = %+v", herr)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "hook 20-fail exited with status 3: ") || !strings.HasSuffix(msg, "vlan 10 missing on eth9") {
		t.Errorf("message %q", msg)
	}
	if len(herr.StderrTail) > tailSize {
		t.Errorf("tail is %d bytes, want at most %d", len(herr.StderrTail), tailSize)
	}
	if s := out.String(); !strings.Contains(s, "fine") || !strings.Contains(s, "to-stdout") || strings.Contains(s, "must-not-run") {
		t.Errorf("output %q", s)
	}
}

// pidGone reports whether pid has gone (reaped by the test's reaper, which
// is the subreaper of the hook's orphans).
func pidGone(pid int) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	var b []byte
	for range 100 {
		b, _ = os.ReadFile(path)
		if bytes.HasSuffix(b, []byte("\n")) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %s: %q", path, b)
	}
	return pid
}

// A timed-out hook is killed with everything it started: its whole process
// group, here a background sleeper.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	dir := hookDir(t, map[string]string{"10-hang": fmt.Sprintf("sleep 300 &\necho $! > %s\nsleep 300\n", pidFile)})
	start := time.Now()
	err := newRunner(t, Config{Dir: dir, Timeout: 300 * time.Millisecond}).Run(context.Background(), Request{Phase: PreStart})
	var herr *HookError
	if !errors.As(err, &herr) || !herr.TimedOut {
		t.Fatalf("Run = %v, want a timed-out HookError", err)
	}
	if !strings.Contains(err.Error(), "hook 10-hang timed out") {
		t.Errorf("message %q", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run returned after %v with a 300ms timeout", d)
	}
	if pid := readPid(t, pidFile); !pidGone(pid) {
		t.Errorf("background sleeper %d survived the timeout", pid)
	}
}

// KILL during a slow hook: the caller's ctx ends, the group dies, Run
// returns a Canceled error at once.
func TestContextEndStopsHook(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	dir := hookDir(t, map[string]string{"10-slow": fmt.Sprintf("sleep 300 &\necho $! > %s\nsleep 300\n", pidFile)})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		readPid(t, pidFile)
		cancel()
	}()
	err := newRunner(t, Config{Dir: dir}).Run(ctx, Request{Phase: PreStart})
	var herr *HookError
	if !errors.As(err, &herr) || !herr.Canceled || herr.TimedOut || !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want a canceled HookError wrapping context.Canceled", err)
	}
	if pid := readPid(t, pidFile); !pidGone(pid) {
		t.Errorf("background sleeper %d survived the cancel", pid)
	}
}

// A hook that succeeds but leaves a daemon behind does not keep it, and does
// not hold Run on its inherited pipe.
func TestSuccessfulHookLeavesNothingRunning(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	dir := hookDir(t, map[string]string{"10-daemon": fmt.Sprintf("sleep 300 &\necho $! > %s\nexit 0\n", pidFile)})
	start := time.Now()
	if err := newRunner(t, Config{Dir: dir}).Run(context.Background(), Request{Phase: PreStart}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run took %v", d)
	}
	if pid := readPid(t, pidFile); !pidGone(pid) {
		t.Errorf("daemon %d survived its hook", pid)
	}
}

func TestOutputBounded(t *testing.T) {
	dir := hookDir(t, map[string]string{"10-loud": "i=0; while [ $i -lt 2000 ]; do echo 0123456789012345678901234567890123456789; i=$((i+1)); done\n"})
	var out testenv.SyncBuffer
	if err := newRunner(t, Config{Dir: dir, OutputLimit: 1000}).Run(context.Background(), Request{Phase: PreStart, Output: &out}); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if len(s) > 1000+len("\n[hook output truncated]\n") || !strings.HasSuffix(s, "[hook output truncated]\n") {
		t.Errorf("output is %d bytes, ends %q", len(s), s[max(0, len(s)-40):])
	}
}

// Only root-owned, not group/world-writable regular executables run.
func TestUnsafeHooksSkipped(t *testing.T) {
	marker := t.TempDir()
	body := fmt.Sprintf("touch %s/$(basename $0)\n", marker)
	dir := hookDir(t, map[string]string{"10-good": body, "20-worldw": body, "30-notroot": body, "40-noexec": body, "60-groupw": body})
	pre := filepath.Join(dir, string(PreStart))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(filepath.Join(pre, "20-worldw"), 0o757))
	must(os.Chown(filepath.Join(pre, "30-notroot"), 65534, 65534))
	must(os.Chmod(filepath.Join(pre, "40-noexec"), 0o644))
	must(os.Chmod(filepath.Join(pre, "60-groupw"), 0o775))
	must(os.Symlink(filepath.Join(pre, "10-good"), filepath.Join(pre, "50-link")))
	r := newRunner(t, Config{Dir: dir})
	names, err := r.Hooks(PreStart)
	must(err)
	if !slices.Equal(names, []string{"10-good"}) {
		t.Errorf("Hooks = %q, want only 10-good", names)
	}
	must(r.Run(context.Background(), Request{Phase: PreStart}))
	entries, _ := os.ReadDir(marker)
	if len(entries) != 1 || entries[0].Name() != "10-good" {
		t.Errorf("ran %v", entries)
	}
}

func TestUnsafeDirectoryRefused(t *testing.T) {
	dir := hookDir(t, map[string]string{"10-x": "exit 0\n"})
	for _, d := range []string{dir, filepath.Join(dir, string(PreStart))} {
		t.Run(filepath.Base(d), func(t *testing.T) {
			if err := os.Chmod(d, 0o777); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Chmod(d, 0o755) })
			err := newRunner(t, Config{Dir: dir}).Run(context.Background(), Request{Phase: PreStart})
			if !errors.Is(err, ErrUnsafeDir) {
				t.Errorf("Run = %v, want ErrUnsafeDir", err)
			}
		})
	}
}

func TestNoHooks(t *testing.T) {
	r := newRunner(t, Config{})
	if err := r.Run(context.Background(), Request{Phase: PreStart}); err != nil {
		t.Errorf("no hooks dir: %v", err)
	}
	dir := hookDir(t, nil)
	if err := newRunner(t, Config{Dir: dir}).Run(context.Background(), Request{Phase: PostStop}); err != nil {
		t.Errorf("missing poststop.d: %v", err)
	}
}

// Post-stop hooks are best effort: a failure does not stop the next one.
func TestRunAllContinues(t *testing.T) {
	dir := hookDir(t, nil)
	post := filepath.Join(dir, string(PostStop))
	if err := os.Mkdir(post, 0o755); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "ran")
	for name, body := range map[string]string{"10-fail": "echo bad >&2; exit 1\n", "20-ok": "touch " + marker + "\n"} {
		if err := os.WriteFile(filepath.Join(post, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err := newRunner(t, Config{Dir: dir}).RunAll(context.Background(), Request{Phase: PostStop})
	if err == nil || !strings.Contains(err.Error(), "hook 10-fail exited with status 1: bad") {
		t.Errorf("RunAll = %v", err)
	}
	if _, serr := os.Stat(marker); serr != nil {
		t.Errorf("20-ok did not run after 10-fail: %v", serr)
	}
}
