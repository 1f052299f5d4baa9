package isolation_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"golang.org/x/sys/unix"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
	"github.com/mdx-executor/mdx/isolation"
	"github.com/mdx-executor/mdx/task"
)

func TestMain(m *testing.M) { containerdtest.Main(m) }

const cgroupRoot = "/sys/fs/cgroup"

// env is one test's executor: a nested decision with a parent cgroup of its
// own, a stats reader, and the test image.
type env struct {
	c      *containerd.Client
	image  string
	d      isolation.Decision
	r      *isolation.Reader
	execID string
}

// mustEnv skips (or fails with CI=true) when the host cannot give nested
// mode, with the reason.
func mustEnv(t *testing.T) env {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping a test that needs the Docker daemon")
	}
	c := containerdtest.Docker(t)
	image := containerdtest.TaskImage(t, c)
	containerdtest.RequireMemoryLimit(t, c)
	info, err := c.DaemonInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	execID := "iso-test-" + containerdtest.RandHex(4)
	d := isolation.Decide(isolation.Options{DockerDriver: info.CgroupDriver, DockerCgroupVersion: info.CgroupVersion, ExecutorID: execID})
	t.Logf("decision: %s warnings=%q", d, d.Warnings)
	t.Cleanup(func() {
		if err := d.Cleanup(); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
	})
	if d.Mode != isolation.ModeNested {
		msg := "this host gives no nested mode: " + d.String()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	r, err := isolation.NewReader(isolation.LayoutOf(d), 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return env{c: c, image: image, d: d, r: r, execID: execID}
}

// taskInfo is a TaskInfo with cpus and mem and optional limits.
func taskInfo(cpus, mem float64, limits map[string]float64) *mesos.TaskInfo {
	ti := &mesos.TaskInfo{Resources: []mesos.Resource{
		{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: cpus}},
		{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: mem}},
	}}
	if limits != nil {
		ti.Limits = map[string]mesos.Value_Scalar{}
		for k, v := range limits {
			ti.Limits[k] = mesos.Value_Scalar{Value: v}
		}
	}
	return ti
}

// run creates and starts a container with the resources the task parser
// makes for ti under p, in e's parent cgroup, removed when the test ends.
func (e env) run(t *testing.T, name string, ti *mesos.TaskInfo, p task.Policy, cmd ...string) string {
	t.Helper()
	spec, err := task.ResourceSpec(ti, p)
	if err != nil {
		t.Fatalf("ResourceSpec: %v", err)
	}
	taskID := name + "-" + containerdtest.RandHex(3)
	spec.Name = containerd.ContainerName("fw-iso", e.execID, taskID)
	spec.Image = e.image
	spec.Cmd = cmd
	spec.Init = true
	spec.Network = "none"
	spec.Labels = map[string]string{containerd.LabelFramework: "fw-iso", containerd.LabelExecutor: e.execID, containerd.LabelTask: taskID}
	spec.CgroupParent = e.d.Parent
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := e.c.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.c.Remove(ctx, id); err != nil {
			t.Errorf("remove %s: %v", id, err)
		}
	})
	if err := e.c.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	return id
}

func (e env) inspect(t *testing.T, id string) containerd.Info {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := e.c.Inspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// cgroupFile reads one file of the container's cgroup for controller.
func (e env) cgroupFile(t *testing.T, controller, id, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cgroupRoot, isolation.LayoutOf(e.d).Dir(controller, id), file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// waitFor polls cond every 100 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestContainersUnderTheExecutorsCgroup(t *testing.T) {
	e := mustEnv(t)
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	paths, err := isolation.ProcCgroupPaths(strings.NewReader(string(own)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(e.d.Parent, strings.TrimSuffix(paths["memory"], "/")+"/mdx/") {
		t.Fatalf("parent %q is not a dedicated group under the executor's memory cgroup %q", e.d.Parent, paths["memory"])
	}
	id := e.run(t, "where", taskInfo(0.1, 32, nil), task.Policy{})
	info := e.inspect(t, id)
	b, err := os.ReadFile("/proc/" + strconv.Itoa(info.Pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	got, err := isolation.ProcCgroupPaths(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	want := e.d.Parent + "/" + id
	for _, c := range []string{"memory", "cpu", "pids"} {
		if got[c] != want {
			t.Errorf("container's %s cgroup = %q; want %q", c, got[c], want)
		}
	}
}

func TestNoCFSQuotaByDefault(t *testing.T) {
	e := mustEnv(t)
	tests := []struct {
		name      string
		ti        *mesos.TaskInfo
		p         task.Policy
		wantQuota string
	}{
		{"default", taskInfo(0.5, 32, nil), task.Policy{}, "-1"},
		{"cpu-quota flag", taskInfo(0.5, 32, nil), task.Policy{CPUQuota: true}, "50000"},
		{"limits.cpus", taskInfo(0.5, 32, map[string]float64{"cpus": 2}), task.Policy{}, "200000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := e.run(t, "cfs", tt.ti, tt.p)
			if got := e.cgroupFile(t, "cpu", id, "cpu.cfs_quota_us"); got != tt.wantQuota {
				t.Errorf("cpu.cfs_quota_us = %s; want %s", got, tt.wantQuota)
			}
			if got := e.cgroupFile(t, "cpu", id, "cpu.shares"); got != "512" {
				t.Errorf("cpu.shares = %s; want 512", got)
			}
		})
	}
}

// TestMemoryHogOOMKilledAlone: a container that allocates past its limit is
// killed, its neighbour in the same parent runs on, and the verdict and the
// TaskStatus part say so. A third container whose child is OOM-killed while
// its main process lives on shows the kill in its stats and is no OOM death.
func TestMemoryHogOOMKilledAlone(t *testing.T) {
	e := mustEnv(t)
	neighbour := e.run(t, "neighbour", taskInfo(0.1, 64, nil), task.Policy{PidsLimit: 4096}, "alloc", "16", "--", "sleep", "1h")
	survivor := e.run(t, "survivor", taskInfo(0.1, 64, nil), task.Policy{PidsLimit: 4096}, "oomchild", "--", "sleep", "1h")
	hog := e.run(t, "hog", taskInfo(0.1, 64, nil), task.Policy{PidsLimit: 4096}, "oom")

	var last isolation.Stats
	waitFor(t, 60*time.Second, "the hog to die", func() bool {
		if s, err := e.r.Get(hog); err == nil {
			last = s
		}
		return !e.inspect(t, hog).Running
	})
	info := e.inspect(t, hog)
	if info.ExitCode != 137 || !info.OOMKilled {
		t.Fatalf("hog exit code %d, OOMKilled %v; want 137 and true", info.ExitCode, info.OOMKilled)
	}
	v := isolation.DecideOOM(isolation.ExitEvidence{ExitCode: info.ExitCode, DockerOOM: info.OOMKilled, Last: &last, LimitBytes: 64 << 20})
	if !v.Killed || !strings.Contains(v.Message, "64 MiB") {
		t.Errorf("verdict = %+v; want Killed with the 64 MiB limit in the message", v)
	}
	var st mesos.TaskStatus
	isolation.ApplyOOM(&st, v, 64<<20)
	if st.GetState() != mesos.TASK_FAILED || st.GetReason() != mesos.REASON_CONTAINER_LIMITATION_MEMORY ||
		len(st.GetLimitation().GetResources()) != 1 || st.GetLimitation().GetResources()[0].Name != "mem" ||
		st.GetLimitation().GetResources()[0].GetScalar().GetValue() != 64 {
		t.Errorf("status = %+v; want TASK_FAILED, REASON_CONTAINER_LIMITATION_MEMORY, limitation mem 64", st)
	}

	if !e.inspect(t, neighbour).Running {
		t.Error("the neighbour died with the hog")
	}
	var s isolation.Stats
	waitFor(t, 60*time.Second, "the survivor's child to be OOM-killed", func() bool {
		var err error
		s, err = e.r.Get(survivor)
		return err == nil && s.OOMKills > 0
	})
	if !e.inspect(t, survivor).Running {
		t.Error("the survivor died with its child")
	}
	if s.MemoryLimitBytes != 64<<20 {
		t.Errorf("survivor's memory limit = %d; want %d", s.MemoryLimitBytes, 64<<20)
	}
	if v := isolation.DecideOOM(isolation.ExitEvidence{ExitCode: 0, DockerOOM: true, Last: &s, LimitBytes: 64 << 20}); v.Killed || !strings.Contains(v.Message, "OOM-killed earlier") {
		t.Errorf("a container exiting 0 after a child's OOM kill: verdict %+v; want not killed, with a note", v)
	}
}

func TestMemoryBetweenRequestAndLimit(t *testing.T) {
	e := mustEnv(t)
	id := e.run(t, "burst", taskInfo(0.1, 64, map[string]float64{"mem": 256}), task.Policy{}, "alloc", "150", "--", "sleep", "1h")
	var s isolation.Stats
	waitFor(t, 60*time.Second, "150 MiB allocated", func() bool {
		var err error
		s, err = e.r.Get(id)
		return err == nil && s.MemoryRSSBytes >= 150<<20
	})
	if !e.inspect(t, id).Running {
		t.Fatal("the container died using memory between its request and its limit")
	}
	if s.MemoryLimitBytes != 256<<20 {
		t.Errorf("memory limit = %d; want %d", s.MemoryLimitBytes, 256<<20)
	}
	if got := e.cgroupFile(t, "memory", id, "memory.soft_limit_in_bytes"); got != strconv.Itoa(64<<20) {
		t.Errorf("memory.soft_limit_in_bytes = %s; want %d", got, 64<<20)
	}
}

func TestForkBombStopsAtPidsLimit(t *testing.T) {
	e := mustEnv(t)
	const limit = 64
	id := e.run(t, "forkbomb", taskInfo(0.1, 256, nil), task.Policy{PidsLimit: limit}, "forkbomb", "100000", "--", "sleep", "1h")
	waitFor(t, 60*time.Second, "the fork bomb to hit its limit", func() bool {
		ev := e.cgroupFile(t, "pids", id, "pids.events")
		n, _ := strconv.Atoi(strings.TrimPrefix(ev, "max "))
		return n > 0
	})
	s, err := e.r.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if s.PidsLimit != limit || s.Pids > limit {
		t.Errorf("pids %d, limit %d; want at most %d", s.Pids, s.PidsLimit, limit)
	}
	// The daemon (and so the executor) still answers at once.
	start := time.Now()
	_ = e.inspect(t, id)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("inspect took %s with a fork bomb at its limit", d)
	}
}

func TestStatsAgreeWithWork(t *testing.T) {
	e := mustEnv(t)
	id := e.run(t, "work", taskInfo(1, 256, nil), task.Policy{}, "alloc", "100", "--", "burn", "3s", "--", "echo", "done", "--", "sleep", "1h")
	var s isolation.Stats
	var prev float64
	waitFor(t, 90*time.Second, "the burn to end", func() bool {
		var err error
		s, err = e.r.Get(id)
		if err != nil {
			return false
		}
		cpu := s.CPUUserSeconds + s.CPUSystemSeconds
		done := cpu >= 3 && cpu == prev
		prev = cpu
		if !done {
			time.Sleep(400 * time.Millisecond) // let the sample age past the TTL
		}
		return done
	})
	cpu := s.CPUUserSeconds + s.CPUSystemSeconds
	t.Logf("stats: cpu %.2fs (user %.2f system %.2f), rss %d MiB, usage %d MiB, peak %d MiB",
		cpu, s.CPUUserSeconds, s.CPUSystemSeconds, s.MemoryRSSBytes>>20, s.MemoryBytes>>20, s.MemoryPeakBytes>>20)
	if cpu < 3*0.85 || cpu > 3*1.15 {
		t.Errorf("CPU time %.2fs; want 3s within 15%%", cpu)
	}
	if rss := float64(s.MemoryRSSBytes) / (1 << 20); rss < 100*0.85 || rss > 100*1.15 {
		t.Errorf("RSS %.1f MiB; want 100 MiB within 15%%", rss)
	}
	if s.MemoryPeakBytes < s.MemoryRSSBytes || s.Pids == 0 {
		t.Errorf("peak %d below rss %d, or no pids (%d)", s.MemoryPeakBytes, s.MemoryRSSBytes, s.Pids)
	}
}

// TestCleanupLeavesNoCgroup: once its containers are removed, Cleanup
// removes every directory the parent added in any hierarchy.
func TestCleanupLeavesNoCgroup(t *testing.T) {
	e := mustEnv(t)
	id := e.run(t, "cleanup", taskInfo(0.1, 32, nil), task.Policy{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.c.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Cleanup(); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	hierarchies, err := os.ReadDir(cgroupRoot) // systemd and unified too
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hierarchies {
		p := filepath.Join(cgroupRoot, h.Name(), e.d.Parent)
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s is left after Cleanup", p)
		}
	}
}

// TestDegradedReadOnlyRoot: with the cgroup root read-only (a read-only
// tmpfs injected as the root), Decide degrades with the reason and no
// parent, and a task container still runs with its own limits under Docker's
// default parent, where the reader still finds its stats.
func TestDegradedReadOnlyRoot(t *testing.T) {
	e := mustEnv(t)
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs (root is needed): %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	for _, c := range []string{"memory", "cpu", "cpuacct", "pids"} {
		if err := os.Mkdir(filepath.Join(root, c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount("", root, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	d := isolation.Decide(isolation.Options{Root: root, DockerDriver: e.d.Driver, ExecutorID: e.execID})
	if d.Mode != isolation.ModeDegraded || !strings.Contains(d.Reason, "read-only") || d.Parent != "" {
		t.Fatalf("decision %s; want degraded because read-only, with no parent", d)
	}
	degraded := e
	degraded.d = d
	id := degraded.run(t, "degraded", taskInfo(0.1, 48, nil), task.Policy{PidsLimit: 100})
	if !degraded.inspect(t, id).Running {
		t.Fatal("the container does not run in degraded mode")
	}
	l := isolation.LayoutOf(d)
	l.Root = cgroupRoot
	r, err := isolation.NewReader(l, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s, err := r.Get(id)
	if err != nil {
		t.Fatalf("stats in Docker's default parent: %v", err)
	}
	if s.MemoryLimitBytes != 48<<20 || s.PidsLimit != 100 {
		t.Errorf("limits memory %d pids %d; want %d and 100", s.MemoryLimitBytes, s.PidsLimit, 48<<20)
	}
}
