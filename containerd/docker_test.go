package containerd_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
)

func TestNewUnreachableDaemon(t *testing.T) {
	t.Parallel()
	host := "unix://" + t.TempDir() + "/no-docker.sock"
	_, err := containerd.New(t.Context(), containerd.Config{Host: host, CallTimeout: 5 * time.Second},
		logrus.NewEntry(logrus.New()))
	if err == nil {
		t.Fatal("New with no daemon succeeded")
	}
	if !strings.Contains(err.Error(), host) {
		t.Errorf("error %q does not name the host %s", err, host)
	}
}

func TestDaemonInfo(t *testing.T) {
	t.Parallel()
	c, _ := requireDocker(t)
	info, err := c.DaemonInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("daemon %s, API %s, storage %s %v, cgroup v%s (%s), root %s",
		info.ServerVersion, info.APIVersion, info.Driver, info.DriverStatus,
		info.CgroupVersion, info.CgroupDriver, info.DockerRootDir)
	if info.ServerVersion == "" || info.Driver == "" || info.DockerRootDir == "" || info.APIVersion == "" {
		t.Errorf("DaemonInfo() = %+v, want version, driver, root dir and API version set", info)
	}
	if c.APIVersion() != info.APIVersion {
		t.Errorf("APIVersion() = %q, DaemonInfo().APIVersion = %q", c.APIVersion(), info.APIVersion)
	}
}

func TestCreateStartInspectKill(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	o := newOwner()
	exits := watch(t, c, o.labels())

	// "ready" proves the SIGTERM handler is installed: a SIGTERM before that
	// would kill the process with 143 instead.
	spec := o.spec(image, "web.1", "echo", "ready", "--", "sleep", "1h")
	spec.Hostname = "mdx-test-host"
	spec.Ports = []containerd.PortBinding{{ContainerPort: 8080}}
	spec.Mounts = []containerd.Mount{{HostPath: t.TempDir(), ContainerPath: containerd.SandboxMountPoint}}
	spec.MemoryBytes = 64 << 20
	spec.CPUShares = 256
	id := run(t, c, spec)
	stdout, _, waitLogs := logs(t, c, id)

	info, err := c.Inspect(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Running || info.Status != "running" || info.Pid <= 0 {
		t.Errorf("after Start: running=%v status=%q pid=%d, want a running container", info.Running, info.Status, info.Pid)
	}
	if info.ID != id || info.Name != spec.Name {
		t.Errorf("Inspect id/name = %s/%s, want %s/%s", info.ID, info.Name, id, spec.Name)
	}
	if info.Labels[containerd.LabelTask] != "web.1" {
		t.Errorf("task label = %q, want web.1", info.Labels[containerd.LabelTask])
	}
	if len(info.IPs) == 0 {
		t.Errorf("no IP on the bridge network: %+v", info)
	}
	for _, ip := range info.IPs {
		if net.ParseIP(ip) == nil {
			t.Errorf("IP %q does not parse", ip)
		}
	}
	if info.StartedAt.IsZero() || !info.FinishedAt.IsZero() {
		t.Errorf("StartedAt=%v FinishedAt=%v, want started and not finished", info.StartedAt, info.FinishedAt)
	}

	waitOutput(t, stdout, "ready\n", 10*time.Second)
	if err := c.Kill(t.Context(), id, "SIGTERM"); err != nil {
		t.Fatal(err)
	}
	exit := waitExit(t, exits, id, 15*time.Second)
	if exit.ExitCode != 0 || exit.OOMKilled || exit.TaskID != "web.1" || exit.FinishedAt.IsZero() {
		t.Errorf("exit = %+v, want code 0 (sleep handles SIGTERM), task web.1, not OOM", exit)
	}
	if exit.Sent.Before(exit.FinishedAt) {
		t.Errorf("exit.Sent = %v, want the time the watcher handed it over (after FinishedAt %v)", exit.Sent, exit.FinishedAt)
	}
	if err := waitLogs(); err != nil {
		t.Errorf("Logs: %v", err)
	}
	if !strings.Contains(stdout.String(), "got SIGTERM") {
		t.Errorf("stdout %q, want it to contain %q", stdout.String(), "got SIGTERM")
	}

	info, err = c.Inspect(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if info.Running || info.ExitCode != 0 || info.FinishedAt.IsZero() {
		t.Errorf("after exit: running=%v code=%d finished=%v", info.Running, info.ExitCode, info.FinishedAt)
	}
	if err := c.Kill(t.Context(), id, "SIGKILL"); err != nil {
		t.Errorf("Kill of an exited container: %v, want nil", err)
	}
}

func TestEnvAndCmdReachTheProcess(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	o := newOwner()

	spec := o.spec(image, "env", "env")
	spec.Env = []string{"FOO=bar", "WITH_SPACE=a b"}
	id := run(t, c, spec)
	stdout, _, wait := logs(t, c, id)
	if err := wait(); err != nil {
		t.Fatalf("Logs: %v", err)
	}
	for _, want := range []string{"FOO=bar\n", "WITH_SPACE=a b\n", "HOSTNAME="} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("env output lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestEntrypointShellAndExitCode(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	o := newOwner()
	exits := watch(t, c, o.labels())

	// Mesos shell=true: entrypoint /bin/sh, cmd ["-c", value].
	spec := o.spec(image, "shell", "-c", "echo hello world -- stderr oops -- exit 3")
	spec.Entrypoint = []string{"/bin/sh"}
	spec.Init = false
	id := run(t, c, spec)
	stdout, stderr, wait := logs(t, c, id)

	exit := waitExit(t, exits, id, 15*time.Second)
	if exit.ExitCode != 3 || exit.OOMKilled {
		t.Errorf("exit = %+v, want code 3", exit)
	}
	if err := wait(); err != nil {
		t.Fatalf("Logs: %v", err)
	}
	if stdout.String() != "hello world\n" || stderr.String() != "oops\n" {
		t.Errorf("stdout=%q stderr=%q, want %q and %q", stdout.String(), stderr.String(), "hello world\n", "oops\n")
	}
}

func TestOOMKilled(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	containerdtest.RequireMemoryLimit(t, c)
	o := newOwner()
	exits := watch(t, c, o.labels())

	spec := o.spec(image, "hog", "oom")
	spec.MemoryBytes = 32 << 20
	spec.Init = false
	id := run(t, c, spec)

	// Docker's oom event may come after the die: the watcher then reports
	// the exit again, corrected. The OOM must be reported by one of them.
	exit := waitExit(t, exits, id, 30*time.Second)
	if exit.ExitCode != 137 {
		t.Fatalf("exit = %+v, want code 137", exit)
	}
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for !exit.OOMKilled {
		select {
		case e := <-exits:
			if e.ContainerID == id {
				exit = e
			}
		case <-timer.C:
			t.Fatalf("exit = %+v, and no later report said OOMKilled", exit)
		}
	}
}

func TestWatchExitsReportsEarlierExits(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	o := newOwner()

	spec := o.spec(image, "early", "exit", "5")
	id := run(t, c, spec)
	waitExited(t, c, id, 15*time.Second)

	// The die event is in the past (and before the watch's start time), so
	// only the reconciling list can report it.
	exits := watch(t, c, o.labels())
	exit := waitExit(t, exits, id, 10*time.Second)
	if exit.ExitCode != 5 || exit.TaskID != "early" {
		t.Errorf("exit = %+v, want code 5 for task early", exit)
	}
}

func TestWatchExitsOnlyLabelled(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	mine, other := newOwner(), newOwner()
	exits := watch(t, c, mine.labels())

	otherID := run(t, c, other.spec(image, "other", "exit", "7"))
	// Ours exits well after the other one, so the other's exit, if it were
	// reported at all, would be seen before ours.
	mineID := run(t, c, mine.spec(image, "mine", "sleep", "1500ms", "--", "exit", "4"))

	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	for done := false; !done; {
		select {
		case e := <-exits:
			switch e.ContainerID {
			case otherID:
				t.Fatalf("reported the exit of a container without our labels: %+v", e)
			case mineID:
				if e.ExitCode != 4 {
					t.Errorf("exit = %+v, want code 4", e)
				}
				done = true
			}
		case <-timer.C:
			t.Fatal("no exit reported for our container")
		}
	}

	// The exit is reported from the die event, which Docker emits before
	// it has finished its own cleanup of the container, so its state may
	// read "running" for a few more milliseconds.
	var list []containerd.Summary
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if list, err = c.List(t.Context(), mine.labels(), true); err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].State != "running" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(list) != 1 || list[0].ID != mineID || list[0].State != "exited" {
		t.Errorf("List(mine) = %+v, want only %.12s, exited", list, mineID)
	}
	if want := mine.spec(image, "mine").Name; len(list) == 1 && (len(list[0].Names) != 1 || list[0].Names[0] != want) {
		t.Errorf("List names = %v, want [%s]", list[0].Names, want)
	}
	running, err := c.List(t.Context(), mine.labels(), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(running) != 0 {
		t.Errorf("List(mine, running only) = %+v, want none", running)
	}
}

func TestLabelFilterRequired(t *testing.T) {
	t.Parallel()
	c, _ := requireDocker(t)
	if _, err := c.List(t.Context(), nil, true); !errors.Is(err, containerd.ErrNoLabels) {
		t.Errorf("List(nil) error = %v, want ErrNoLabels", err)
	}
	err := c.WatchExits(t.Context(), map[string]string{}, make(chan containerd.Exit))
	if !errors.Is(err, containerd.ErrNoLabels) {
		t.Errorf("WatchExits(no labels) error = %v, want ErrNoLabels", err)
	}
}

func TestEnsureImage(t *testing.T) {
	t.Parallel()
	_, image := requireDocker(t)

	// A present image is resolved from one inspect, never pulled: counted
	// on a client of its own that observes its calls (how fast that is
	// depends on the daemon's load, so it is not timed here).
	var mu sync.Mutex
	var calls []string
	c, err := containerd.New(t.Context(), containerd.Config{Observe: func(call string, _ time.Duration, _ error) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, call)
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	mu.Lock()
	calls = nil // the ping of New
	mu.Unlock()
	if err := c.EnsureImage(t.Context(), image, false); err != nil {
		t.Fatalf("EnsureImage(present image): %v", err)
	}
	mu.Lock()
	if slices.Contains(calls, "image_pull") || len(calls) != 1 {
		t.Errorf("EnsureImage of a present image made calls %v, want one inspect and no pull", calls)
	}
	mu.Unlock()

	// Port 1 refuses connections: the pull must fail with the registry's
	// error, not by running into the caller's deadline, for every
	// concurrent caller.
	const missing = "127.0.0.1:1/none/such:1"
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = c.EnsureImage(ctx, missing, false) })
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			t.Fatalf("EnsureImage(%s) #%d succeeded", missing, i)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("EnsureImage(%s) #%d ran into the caller's deadline (%v), want the registry's error", missing, i, err)
		}
		if !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Errorf("error %q does not carry the registry's error", err)
		}
	}
	t.Logf("unreachable registry: %v after %v", errs[0], time.Since(start))
}

func TestRemove(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	o := newOwner()

	id := run(t, c, o.spec(image, "rm")) // nil Cmd: the image's "sleep 1h"
	if info, err := c.Inspect(t.Context(), id); err != nil || !info.Running {
		t.Fatalf("container with the image's CMD: running=%v, err=%v; want running", info.Running, err)
	}
	for i := range 2 {
		if err := c.Remove(t.Context(), id); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if _, err := c.Inspect(t.Context(), id); !containerd.IsNotFound(err) {
		t.Errorf("Inspect after Remove error = %v, want not found", err)
	}
	if err := c.Kill(t.Context(), id, "SIGTERM"); err != nil {
		t.Errorf("Kill of a removed container: %v, want nil", err)
	}
}

func TestCreateNameConflict(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	o := newOwner()
	spec := o.spec(image, "twice")
	create(t, c, spec)
	_, err := c.Create(t.Context(), spec)
	if !containerd.IsConflict(err) {
		t.Errorf("second Create with the same name error = %v, want a conflict", err)
	}
}

func TestCreateRejectsMissingImage(t *testing.T) {
	t.Parallel()
	c, _ := requireDocker(t)
	o := newOwner()
	_, err := c.Create(t.Context(), o.spec("mdx-test/absent:"+randHex(4), "noimage"))
	if !containerd.IsNotFound(err) {
		t.Errorf("Create with an absent image error = %v, want not found (no implicit pull)", err)
	}
}

func TestDeleteImageMissing(t *testing.T) {
	t.Parallel()
	c, _ := requireDocker(t)
	if err := c.DeleteImage(t.Context(), "mdx-test/absent:"+randHex(4)); err != nil {
		t.Errorf("DeleteImage(absent) = %v, want nil", err)
	}
}
