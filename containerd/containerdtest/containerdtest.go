// Package containerdtest provides test helpers for code that needs the real
// Docker Engine: one shared client, and an image built from the project's
// static test program (test/taskbin) without any registry.
//
// A test package that uses TaskImage must run its tests through Run or Main
// from its TestMain, which removes the image once every test has finished:
//
//	func TestMain(m *testing.M) { containerdtest.Main(m) }
//
// Under -short, Docker and TaskImage skip the calling test: every Docker test
// goes through them, so `make test-unit` never touches the daemon. Without a
// reachable daemon they skip the test with the reason, or fail it when
// CI=true: CI machines have a daemon, and a silent skip there would hide a
// broken runner (see internal/testenv). This package is for tests
// only; it is not a stable interface.
package containerdtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/internal/testenv"
)

// Timeouts of the one-time setup.
const (
	connectTimeout = 20 * time.Second
	buildTimeout   = 3 * time.Minute
	cleanupTimeout = 3 * time.Minute // a loaded daemon takes long to delete an image; a leak shows as a conflict, not a timeout
)

// ImageRepository is the repository of every image TaskImage creates; each
// test binary gets its own random tag.
const ImageRepository = "mdx-test/task"

// The state below is per test binary by design: the client and the image are
// made once, by the first test that needs them, and torn down by Run.
var (
	running atomic.Bool // Run is running the tests

	dockerOnce  sync.Once
	client      *containerd.Client
	unreachable error // the daemon did not answer

	imageOnce sync.Once
	imageRef  string
	imageErr  error // the daemon answered but the image could not be made
	tmpDir    string

	execOnce sync.Once
	execPath string
	execErr  error
	execDir  string // removed by Run
)

// Main runs the package's tests through Run and exits with their status. Call
// it from TestMain.
func Main(m *testing.M) {
	os.Exit(Run(m))
}

// Run runs m, then each of after (a package's own final checks, such as a
// sweep for containers its tests left behind: they still hold the image),
// then removes the image TaskImage made, closes the shared client and deletes
// the build directory. It returns m.Run's exit code, or 1 if an after
// function or the image removal failed; a TestMain passes it to os.Exit.
func Run(m *testing.M, after ...func() error) int {
	running.Store(true)
	code := m.Run()
	running.Store(false)
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "containerdtest: "+format+"\n", args...)
		if code == 0 {
			code = 1
		}
	}
	for _, f := range after {
		if err := f(); err != nil {
			fail("%v", err)
		}
	}
	if imageRef != "" {
		if err := deleteImage(imageRef); err != nil {
			// Most likely a container the tests left behind still
			// uses it: a leak worth failing the run for.
			fail("cannot remove the test image %s (is a container left behind using it?): %v", imageRef, err)
		}
	}
	if client != nil {
		_ = client.Close()
	}
	if execDir != "" {
		_ = os.RemoveAll(execDir)
	}
	if tmpDir != "" {
		_ = os.RemoveAll(tmpDir)
	}
	return code
}

// deleteImage removes ref through a client of its own: the one TaskImage was
// given may have been closed by its test.
func deleteImage(ref string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	c, err := containerd.New(ctx, containerd.Config{}, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.DeleteImage(ctx, ref)
}

// Docker returns the test binary's shared client, connected and pinged once.
// Tests must not Close it. Under -short it skips t; without a reachable
// daemon it skips t, or fails t when CI=true.
func Docker(t testing.TB) *containerd.Client {
	t.Helper()
	testenv.RequireDocker(t)
	dockerOnce.Do(connect)
	if unreachable != nil {
		testenv.SkipOrFail(t, "docker not reachable: %v", unreachable)
	}
	return client
}

func connect() {
	log := logrus.New()
	log.SetOutput(os.Stderr)
	log.SetLevel(logrus.WarnLevel)
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	c, err := containerd.New(ctx, containerd.Config{CallTimeout: connectTimeout}, log.WithField("test", "containerdtest"))
	if err != nil {
		unreachable = err
		return
	}
	client = c
}

// TaskImage returns the reference of an image holding test/taskbin as /task
// and as /bin/sh (so that Mesos shell commands work), with ENTRYPOINT
// ["/task"] and CMD ["sleep", "1h"]. The program is built with CGO_ENABLED=0
// and imported through c once per test binary; Run removes the image. t fails
// if the package's TestMain does not go through Run or Main, since the image
// would then be left behind.
func TaskImage(t testing.TB, c *containerd.Client) string {
	t.Helper()
	testenv.RequireDocker(t)
	if !running.Load() {
		t.Fatal("containerdtest.TaskImage needs the package's TestMain to call containerdtest.Main or Run, which removes the image")
	}
	if c == nil {
		c = Docker(t)
	}
	imageOnce.Do(func() { buildImage(c) })
	if imageErr != nil {
		t.Fatalf("test image: %v", imageErr)
	}
	return imageRef
}

// ExecutorBinary builds the static executor once per test binary (the start
// gate tests mount it into containers, which need it static) and returns its
// path; Run removes it.
func ExecutorBinary(t testing.TB) string {
	t.Helper()
	execOnce.Do(func() {
		execDir, execErr = os.MkdirTemp("", "mdx-executortest-")
		if execErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		execPath = filepath.Join(execDir, "executor")
		execErr = BuildStatic(ctx, execPath, "./cmd/executor")
	})
	if execErr != nil {
		t.Fatal(execErr)
	}
	return execPath
}

func buildImage(c *containerd.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "mdx-containerdtest-")
	if err != nil {
		imageErr = err
		return
	}
	tmpDir = dir
	bin := filepath.Join(dir, "task")
	if err := BuildStatic(ctx, bin, "./test/taskbin"); err != nil {
		imageErr = err
		return
	}
	ref := ImageRepository + ":" + RandHex(6)
	err = c.ImportBinaryImage(ctx, ref,
		map[string]string{"/task": bin, "/bin/sh": bin},
		[]string{`ENTRYPOINT ["/task"]`, `CMD ["sleep", "1h"]`})
	if err != nil {
		imageErr = err
		return
	}
	imageRef = ref
}

// BuildStatic builds the main package pkg (a path relative to the module root,
// such as "./cmd/executor") into out with CGO_ENABLED=0 and -trimpath. The
// output of a failed build is part of the error.
func BuildStatic(ctx context.Context, out, pkg string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// ModuleRoot returns the directory holding the module's go.mod, found by
// walking up from the working directory (a test's package directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// RandHex returns n random bytes in hex, for names that must not collide
// between tests and test runs.
func RandHex(n int) string {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// RequireMemoryLimit skips t, with the reason, when the daemon cannot enforce
// a container memory limit on this host: no cgroup v1 memory hierarchy and no
// cgroup v2 memory controller, or a daemon that says it cannot. With CI=true
// it fails t instead: the OOM tests are the only proof of OOM reporting.
func RequireMemoryLimit(t testing.TB, c *containerd.Client) {
	t.Helper()
	info, err := c.DaemonInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if reason := memoryLimitUnavailable(info); reason != "" {
		testenv.SkipOrFail(t, "memory limits not enforceable on this host: %s", reason)
	}
}

func memoryLimitUnavailable(info containerd.DaemonInfo) string {
	if !info.MemoryLimit {
		return "docker reports no memory limit support"
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil {
		return "" // cgroup v1
	}
	ctrl, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	if err != nil {
		return "neither a cgroup v1 memory hierarchy nor cgroup v2 under /sys/fs/cgroup"
	}
	if !strings.Contains(" "+strings.TrimSpace(string(ctrl))+" ", " memory ") {
		return "the cgroup v2 memory controller is not enabled"
	}
	return ""
}
