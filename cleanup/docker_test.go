package cleanup

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
	"github.com/mdx-executor/mdx/internal/testenv"
)

// The real-Docker tests share one image: test/taskbin as /task and /bin/sh,
// with ENTRYPOINT ["/task"] and VOLUME ["/data"], so that every container
// gets an anonymous volume whose removal can be checked. TestMain removes it.
// churn is the number of containers TestDockerChurn runs through the queue;
// the issue asks for 200. Docker starts them one after another (about
// 0.1-0.5 s each, depending on the host's load), so that is most of the
// package's test time: `go test ./cleanup -args -churn=50` for a quick run.
var churn = flag.Int("churn", 200, "containers TestDockerChurn runs through the removal queue")

var (
	imageOnce sync.Once
	imageRef  string
	imageErr  error
	imageDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if imageRef != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if c, err := containerd.New(ctx, containerd.Config{}, nil); err == nil {
			if err := c.DeleteImage(ctx, imageRef); err != nil {
				fmt.Fprintf(os.Stderr, "cleanup tests: remove test image %s: %v\n", imageRef, err)
			}
			_ = c.Close()
		}
		cancel()
	}
	if imageDir != "" {
		_ = os.RemoveAll(imageDir)
	}
	os.Exit(code)
}

// realDocker returns the shared client, or skips (fails with CI=true) when
// there is no daemon; -short skips the real-Docker tests.
func realDocker(t *testing.T) *containerd.Client {
	t.Helper()
	return containerdtest.Docker(t) // skips under -short
}

func volumeImage(t *testing.T, c *containerd.Client) string {
	t.Helper()
	imageOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		imageDir, imageErr = os.MkdirTemp("", "mdx-cleanup-test-")
		if imageErr != nil {
			return
		}
		bin := filepath.Join(imageDir, "task")
		if imageErr = containerdtest.BuildStatic(ctx, bin, "./test/taskbin"); imageErr != nil {
			return
		}
		ref := "mdx-test/cleanup:" + containerdtest.RandHex(6)
		imageErr = c.ImportBinaryImage(ctx, ref, map[string]string{"/task": bin, "/bin/sh": bin},
			[]string{`ENTRYPOINT ["/task"]`, `VOLUME ["/data"]`})
		if imageErr == nil {
			imageRef = ref
		}
	})
	if imageErr != nil {
		t.Fatalf("test image: %v", imageErr)
	}
	return imageRef
}

func hostBootID(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		testenv.SkipOrFail(t, "no boot id on this host: %v", err)
	}
	return strings.TrimSpace(string(b))
}

func execLabels(fw, ex, inst, task string, pid int, boot string) map[string]string {
	return map[string]string{
		containerd.LabelFramework: fw, containerd.LabelExecutor: ex, containerd.LabelInstance: inst,
		containerd.LabelTask: task, containerd.LabelPID: strconv.Itoa(pid), containerd.LabelBootID: boot,
		containerd.LabelCreatedUnix: strconv.FormatInt(time.Now().Unix(), 10),
	}
}

// create makes a container and removes it (with force) when the test ends,
// whatever the test did to it.
func create(t *testing.T, c *containerd.Client, spec containerd.Spec) string {
	t.Helper()
	id, err := c.Create(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = c.Remove(ctx, id)
	})
	return id
}

func start(t *testing.T, c *containerd.Client, id string) {
	t.Helper()
	if err := c.Start(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

func waitExited(t *testing.T, c *containerd.Client, id string) containerd.Info {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := c.Inspect(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if info.Status == "exited" || info.Status == "dead" {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s still %s after 30s", id, info.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exists(t *testing.T, c *containerd.Client, id string) bool {
	t.Helper()
	_, err := c.Inspect(context.Background(), id)
	if err != nil && !containerd.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// 200 short tasks through one Remover, as the executor runs them: the exit
// is seen (and its code recorded) first, then the removal is queued with a
// delay. Afterwards none of them and none of their anonymous volumes is
// left, while a container without labels and one of a live executor are
// untouched; the sweep queues a created-and-abandoned container of ours and
// a dead executor's running one.
func TestDockerChurn(t *testing.T) {
	c := realDocker(t)
	img := volumeImage(t, c)
	boot := hostBootID(t)
	n := *churn
	fw, ex, inst := "cleanup-test-"+containerdtest.RandHex(4), "churn", containerdtest.RandHex(4)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	rm := NewRemover(RemoverConfig{FrameworkID: fw, ExecutorID: ex, BackoffBase: 100 * time.Millisecond}, c, testLog(t))
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancel()
	bg.Add(1)
	go func() { defer bg.Done(); _ = rm.Run(ctx) }()

	// The exit watch is subscribed before the first start, as in the
	// executor; every exit is "reported" (recorded) before it is queued.
	type reported struct {
		code int
		at   time.Time
	}
	var mu sync.Mutex
	exitsSeen := map[string]reported{}
	exits := make(chan containerd.Exit, 256)
	bg.Add(2)
	go func() {
		defer bg.Done()
		_ = c.WatchExits(ctx, map[string]string{containerd.LabelFramework: fw, containerd.LabelExecutor: ex, containerd.LabelInstance: inst}, exits)
	}()
	go func() {
		defer bg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-exits:
				mu.Lock()
				if _, dup := exitsSeen[e.ContainerID]; !dup {
					exitsSeen[e.ContainerID] = reported{code: e.ExitCode, at: time.Now()}
					rm.Enqueue(e.ContainerID, e.TaskID, time.Now().Add(300*time.Millisecond))
				}
				mu.Unlock()
			}
		}
	}()

	ids := make([]string, n)
	volumes := map[string][]string{}
	var vmu sync.Mutex
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	began := time.Now()
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			task := fmt.Sprintf("churn-%03d", i)
			id, err := c.Create(ctx, containerd.Spec{Image: img, Cmd: []string{"exit", strconv.Itoa(i % 7)},
				Labels: execLabels(fw, ex, inst, task, os.Getpid(), boot)})
			if err != nil {
				t.Errorf("create %s: %v", task, err)
				return
			}
			ids[i] = id
			si, err := c.InspectStorage(ctx, id)
			if err != nil {
				t.Errorf("inspect %s: %v", task, err)
			}
			vmu.Lock()
			volumes[id] = si.Volumes
			vmu.Unlock()
			if err := c.Start(ctx, id); err != nil {
				t.Errorf("start %s: %v", task, err)
			}
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, id := range ids {
			if id != "" {
				_ = c.Remove(context.Background(), id)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d containers created and started in %v", n, time.Since(began).Round(time.Millisecond))

	// Not ours: no labels at all. Queued by mistake, it must be refused.
	foreign := create(t, c, containerd.Spec{Image: img, Cmd: []string{"exit", "0"}})
	start(t, c, foreign)
	// Another executor that is alive (this test process, this boot).
	liveOther := create(t, c, containerd.Spec{Image: img, Cmd: []string{"exit", "0"},
		Labels: execLabels(fw, "live-executor", "i-live", "live-task", os.Getpid(), boot)})
	start(t, c, liveOther)
	// Another executor that ran before a reboot: an orphan, still running.
	deadOther := create(t, c, containerd.Spec{Image: img, Cmd: []string{"sleep", "1h"},
		Labels: execLabels(fw, "dead-executor", "i-dead", "dead-task", os.Getpid(), "boot-before-reboot")})
	start(t, c, deadOther)
	// Ours, created and never started: one abandoned 10 minutes ago, one
	// that may be mid-launch.
	abandonedLabels := execLabels(fw, ex, inst, "abandoned", os.Getpid(), boot)
	abandonedLabels[containerd.LabelCreatedUnix] = strconv.FormatInt(time.Now().Add(-10*time.Minute).Unix(), 10)
	abandoned := create(t, c, containerd.Spec{Image: img, Cmd: []string{"exit", "0"}, Labels: abandonedLabels})
	launching := create(t, c, containerd.Spec{Image: img, Cmd: []string{"exit", "0"}, Labels: execLabels(fw, ex, inst, "launching", os.Getpid(), boot)})
	rm.Enqueue(foreign, "not-ours", time.Now())
	for _, id := range []string{foreign, liveOther, deadOther, abandoned, launching} {
		si, err := c.InspectStorage(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		volumes[id] = si.Volumes
	}

	waitFor(t, "every exit to be reported", 90*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(exitsSeen) >= n
	})
	sw := NewSweeper(SweeperConfig{FrameworkID: fw, ExecutorID: ex, Instance: inst, RemoveDelay: 100 * time.Millisecond,
		RemoveOrphans: true, OrphanLabels: map[string]string{containerd.LabelFramework: fw}}, c, rm, testLog(t))
	rep, err := sw.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removal queue to empty", 90*time.Second, func() bool { return rm.Stats().Depth == 0 })
	t.Logf("churn done in %v: %+v; sweep: requeued %d, orphans %d", time.Since(began).Round(time.Millisecond),
		rm.Stats(), len(rep.Requeued), len(rep.Orphans))

	mu.Lock()
	for i, id := range ids {
		r, ok := exitsSeen[id]
		if !ok {
			t.Errorf("container %d: exit never reported", i)
		} else if r.code != i%7 {
			t.Errorf("container %d: exit code %d reported; want %d", i, r.code, i%7)
		}
	}
	mu.Unlock()
	left, err := c.List(ctx, map[string]string{containerd.LabelFramework: fw, containerd.LabelExecutor: ex}, true)
	if err != nil {
		t.Fatal(err)
	}
	var leftIDs []string
	for _, s := range left {
		leftIDs = append(leftIDs, s.ID[:12]+"/"+s.Labels[containerd.LabelTask])
	}
	if len(left) != 1 || left[0].ID != launching {
		t.Errorf("own containers left: %v; want only the one still within its creation grace", leftIDs)
	}
	for _, id := range []string{foreign, liveOther, launching} {
		if !exists(t, c, id) {
			t.Errorf("container %s removed; it must be untouched", id[:12])
		}
	}
	if exists(t, c, deadOther) {
		t.Error("the dead executor's orphan is still there with RemoveOrphans on")
	}
	if !slices.Contains(rep.Requeued, abandoned) || slices.Contains(rep.Requeued, launching) {
		t.Errorf("sweep requeued %v; want the abandoned created container and not the fresh one", rep.Requeued)
	}
	anon := 0
	for id, vs := range volumes {
		gone := !slices.Contains([]string{foreign, liveOther, launching}, id)
		for _, v := range vs {
			anon++
			ok, err := c.VolumeExists(ctx, v)
			if err != nil {
				t.Fatal(err)
			}
			if gone && ok {
				t.Errorf("anonymous volume %s of removed container %s left behind", v[:12], id[:12])
			}
		}
	}
	if anon < n {
		t.Errorf("only %d anonymous volumes recorded for %d containers; the image's VOLUME did not work", anon, n)
	}
	if st := rm.Stats(); st.Refused != 1 {
		t.Errorf("Refused = %d; want 1 (the unlabelled container)", st.Refused)
	}
}

// A process in another mount namespace holds the container's mounts. The
// scan must name it. Whether Docker's removal then fails busy depends on the
// kernel and driver: overlay and fuse-overlayfs unmount the rootfs with
// MNT_DETACH and rmdir the mount point, and since Linux 3.18 the rmdir
// takes the copies in other namespaces with it. So the test accepts either:
// busy (then it must be retried and complete once the holder exits) or
// removed at once, which it logs. The second half forces the busy path with
// a holder the kernel cannot detach for Docker (a bind mount of the
// container's directory) and an injected busy answer while it lives.
func TestDockerBusyRemoval(t *testing.T) {
	c := realDocker(t)
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "needs root for unshare --mount")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		testenv.SkipOrFail(t, "needs unshare(1) (Debian package util-linux): %v", err)
	}
	img := volumeImage(t, c)
	boot := hostBootID(t)
	fw, ex, inst := "cleanup-test-"+containerdtest.RandHex(4), "busy", containerdtest.RandHex(4)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dinfo, err := c.DaemonInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("storage: %+v", CheckStorage(dinfo))

	// Part 1: the rootfs mount copied into a new namespace.
	id := create(t, c, containerd.Spec{Image: img, Cmd: []string{"sleep", "1h"}, Labels: execLabels(fw, ex, inst, "busy-1", os.Getpid(), boot)})
	start(t, c, id)
	si, err := c.InspectStorage(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	merged := si.GraphDriverData["MergedDir"]
	holder := startHolder(t, "sleep", "60")
	self, _ := os.Readlink("/proc/self/ns/mnt")
	waitFor(t, "the holder's own namespace to show the container's rootfs", 30*time.Second, func() bool {
		// Until unshare has run, the holder shares this process's
		// namespace, which shows the rootfs too but is not scanned.
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", holder.Process.Pid))
		return err == nil && ns != self && (merged == "" || mountinfoHas(holder.Process.Pid, merged))
	})
	hs, err := ContainerHolders("/proc", dinfo.DockerRootDir, si)
	if err != nil {
		t.Fatal(err)
	}
	if !hasPID(hs, holder.Process.Pid) {
		t.Fatalf("scan found %v; want the holder pid %d (rootfs %s)", hs, holder.Process.Pid, merged)
	}
	t.Logf("holders while the container runs: %s", FormatHolders(hs))

	if err := c.Kill(ctx, id, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	waitExited(t, c, id)
	var gotHolders []Holder
	var hmu sync.Mutex
	rm := NewRemover(RemoverConfig{FrameworkID: fw, ExecutorID: ex, BackoffBase: 200 * time.Millisecond, MaxAttempts: 3,
		StuckRetry: 500 * time.Millisecond, DockerRootDir: dinfo.DockerRootDir,
		OnHolders: func(_, _ string, h []Holder) { hmu.Lock(); gotHolders = h; hmu.Unlock() }}, c, testLog(t))
	runCtx, stopRun := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = rm.Run(runCtx) }()
	defer func() { stopRun(); <-done }()
	rm.Enqueue(id, "busy-1", time.Now())
	waitFor(t, "the first attempt", 30*time.Second, func() bool { st := rm.Stats(); return st.Depth == 0 || st.Retries > 0 })
	if st := rm.Stats(); st.Depth == 0 {
		t.Logf("not reproduced: Docker %s (%s, kernel %s) removed the container although pid %d's mount namespace held a copy of its rootfs; "+
			"the kernel detaches such copies when the daemon rmdirs the mount point. The busy path is exercised below.",
			dinfo.ServerVersion, dinfo.Driver, dinfo.KernelVersion, holder.Process.Pid)
	} else {
		t.Logf("reproduced: removal failed busy: %+v", st)
		waitFor(t, "the holders to be reported", 30*time.Second, func() bool { hmu.Lock(); defer hmu.Unlock(); return len(gotHolders) > 0 })
		hmu.Lock()
		if !hasPID(gotHolders, holder.Process.Pid) {
			t.Errorf("reported holders %v; want pid %d", gotHolders, holder.Process.Pid)
		}
		hmu.Unlock()
		stopHolder(holder)
		waitFor(t, "the removal to complete after the holder exited", 60*time.Second, func() bool { return rm.Stats().Depth == 0 })
	}
	stopHolder(holder)
	if exists(t, c, id) {
		t.Fatal("container still exists")
	}

	// Part 2: a holder that bind-mounted the container's directory in its
	// own namespace, which survives the container's stop, and a daemon
	// answering busy while it lives.
	id2 := create(t, c, containerd.Spec{Image: img, Cmd: []string{"exit", "0"}, Labels: execLabels(fw, ex, inst, "busy-2", os.Getpid(), boot)})
	start(t, c, id2)
	waitExited(t, c, id2)
	cdir := filepath.Join(dinfo.DockerRootDir, "containers", id2)
	target := t.TempDir()
	holder2 := startHolderCmd(t, exec.Command("unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
		fmt.Sprintf("mount --bind %s %s && exec sleep 60", cdir, target)))
	waitFor(t, "the holder's bind mount", 10*time.Second, func() bool { return mountinfoHas(holder2.Process.Pid, id2) })

	busy := &busyWhileAlive{RemoverAPI: c, pid: holder2.Process.Pid}
	hmu.Lock()
	gotHolders = nil
	hmu.Unlock()
	rm2 := NewRemover(RemoverConfig{FrameworkID: fw, ExecutorID: ex, BackoffBase: 100 * time.Millisecond, MaxAttempts: 3,
		StuckRetry: 300 * time.Millisecond, DockerRootDir: dinfo.DockerRootDir,
		OnHolders: func(_, _ string, h []Holder) { hmu.Lock(); gotHolders = h; hmu.Unlock() }}, busy, testLog(t))
	done2 := make(chan struct{})
	go func() { defer close(done2); _ = rm2.Run(runCtx) }()
	defer func() { stopRun(); <-done2 }()
	rm2.Enqueue(id2, "busy-2", time.Now())
	waitFor(t, "the removal to be reported stuck", 30*time.Second, func() bool { return rm2.Stats().StuckCount == 1 })
	st := rm2.Stats()
	if st.Retries < 3 || len(st.Stuck) != 1 || !hasPID(st.Stuck[0].Holders, holder2.Process.Pid) {
		t.Fatalf("stats = %+v; want >= 3 retries and one stuck removal naming pid %d", st, holder2.Process.Pid)
	}
	hmu.Lock()
	if !hasPID(gotHolders, holder2.Process.Pid) {
		t.Errorf("OnHolders got %v; want pid %d", gotHolders, holder2.Process.Pid)
	}
	hmu.Unlock()
	t.Logf("stuck removal as /state would show it: %+v", st.Stuck[0])
	stopHolder(holder2)
	waitFor(t, "the removal to complete once the holder exited", 30*time.Second, func() bool { return rm2.Stats().Depth == 0 })
	if exists(t, c, id2) {
		t.Error("container still exists after the holder exited")
	}
}

// busyWhileAlive answers every removal with Docker's busy error while pid
// lives, and passes through to the daemon afterwards.
type busyWhileAlive struct {
	RemoverAPI
	pid int
}

func (b *busyWhileAlive) RemoveContainer(ctx context.Context, id string, force bool) error {
	if syscall.Kill(b.pid, 0) == nil && !isZombie(b.pid) {
		return errBusy(id)
	}
	return b.RemoverAPI.RemoveContainer(ctx, id, force)
}

func isZombie(pid int) bool {
	p := readProc("/proc", pid)
	return !p.exists || p.zombie
}

func startHolder(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	return startHolderCmd(t, exec.Command("unshare", append([]string{"--mount", "--propagation", "private"}, args...)...))
}

func startHolderCmd(t *testing.T, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start holder: %v", err)
	}
	t.Cleanup(func() { stopHolder(cmd) })
	return cmd
}

func stopHolder(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

func mountinfoHas(pid int, s string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	return err == nil && strings.Contains(string(b), s)
}

func hasPID(hs []Holder, pid int) bool {
	for _, h := range hs {
		if h.PID == pid {
			return true
		}
	}
	return false
}

// Image collection against the daemon: the image a (stopped) container uses
// stays, the unused one goes, neither forced.
func TestDockerImageCollection(t *testing.T) {
	c := realDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	file := filepath.Join(t.TempDir(), "hello")
	if err := os.WriteFile(file, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tag := containerdtest.RandHex(6)
	used, unused := "mdx-test/cleanup-used:"+tag, "mdx-test/cleanup-unused:"+tag
	for _, ref := range []string{used, unused} {
		if err := c.ImportBinaryImage(ctx, ref, map[string]string{"/hello": file}, []string{`CMD ["/hello"]`}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.DeleteImage(context.Background(), ref) })
	}
	// Created, never started: it uses the image as much as a running one.
	create(t, c, containerd.Spec{Image: used})

	col := NewImageCollector(ImageConfig{UnusedFor: time.Millisecond}, c, testLog(t))
	col.Used(used)
	col.Used(unused)
	time.Sleep(10 * time.Millisecond)
	rep, err := col.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Removed, []string{unused}) {
		t.Errorf("Removed = %q; want only %s", rep.Removed, unused)
	}
	if id, err := c.ImageID(ctx, used); err != nil || id == "" {
		t.Errorf("image in use by a stopped container: id %q, %v; want kept", id, err)
	}
	if id, _ := c.ImageID(ctx, unused); id != "" {
		t.Errorf("unused image still present as %s", id)
	}
}
