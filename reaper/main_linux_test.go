package reaper

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/containerd/containerdtest"
)

// helperEnv switches the test binary into a helper process (the pattern of
// os/exec's helperCommand): the reaper tests need children that behave in
// known ways, run as the executor would run them.
const helperEnv = "MDX_REAPER_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode, os.Args[1:]))
	}
	// Run removes the task image of the Docker test.
	os.Exit(containerdtest.Run(m))
}

// helperCommand returns a command that runs the test binary as a helper in
// mode. It is safe to call from any goroutine (it cannot fail a test).
func helperCommand(mode string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	return cmd
}

// helperMain is the helper process. Modes:
//
//	spawn N DUR    start N children running "sleep DUR" (8 at a time) and
//	               exit 0 at once without waiting for them: N orphans
//	exit N         exit with status N
//	kill SIG       kill itself with signal SIG
func helperMain(mode string, args []string) int {
	switch mode {
	case "spawn":
		n, _ := strconv.Atoi(args[0])
		if err := spawn(n, args[1]); err != nil {
			fmt.Fprintln(os.Stderr, "spawn:", err)
			return 1
		}
		return 0
	case "exit":
		code, _ := strconv.Atoi(args[0])
		return code
	case "kill":
		sig, _ := strconv.Atoi(args[0])
		_ = syscall.Kill(os.Getpid(), syscall.Signal(sig))
		time.Sleep(10 * time.Second)
		return 99
	}
	fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
	return 2
}

// spawn starts n "sleep d" processes and returns without waiting for them.
// A Go program (this test binary) would cost ~10 ms of CPU per start under
// -race, so the orphans are sleep(1).
func spawn(n int, d string) error {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		return err
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	jobs := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for range jobs {
				cmd := exec.Command(sleep, d)
				if err := cmd.Start(); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					continue
				}
				// Never waited for: the process exits with its children
				// still running, and they are re-parented.
				_ = cmd.Process.Release()
			}
		})
	}
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	return first
}

// testLog sends a logger's output to t.Log.
func testLog(t testing.TB, level logrus.Level) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(testWriter{t})
	l.SetLevel(level)
	return logrus.NewEntry(l)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

var _ io.Writer = testWriter{}
