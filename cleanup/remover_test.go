package cleanup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdx-executor/mdx/containerd"
)

// newTestRemover returns a Remover on a fake clock and a fake Docker, with
// its workers running until the test ends. The jitter is pinned to 0 so the
// sequence is exact; TestBackoffDelay covers the jitter itself.
func newTestRemover(t *testing.T, cfg RemoverConfig) (*Remover, *fakeAPI, *fakeClock) {
	t.Helper()
	fc := newFakeClock()
	api := newFakeAPI(fc)
	cfg.FrameworkID, cfg.ExecutorID = "fw", "ex"
	cfg.Clock = fc
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = t.TempDir() // no holders unless a test builds some
	}
	r := NewRemover(cfg, api, testLog(t))
	r.rand = func() float64 { return 0 }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
	})
	return r, api, fc
}

// Busy six times, then removable: the attempts must be spaced 1, 2, 4, 8,
// 8, 8 s apart (base 1 s, cap 8 s), each failure counted as a retry.
func TestRemoverBackoffSequence(t *testing.T) {
	r, api, fc := newTestRemover(t, RemoverConfig{
		Workers: 1, BackoffBase: time.Second, BackoffMax: 8 * time.Second, MaxAttempts: 100,
	})
	busy := errBusy("c1")
	api.add("c1", ownLabels("t1"), busy, busy, busy, busy, busy, busy)
	start := fc.Now()
	r.Enqueue("c1", "t1", start)

	var gaps []time.Duration
	prev := api.waitCall(t).at
	for i := 0; i < 6; i++ {
		at := fc.waitTimerAfter(t, fc.Now())
		fc.AdvanceTo(at)
		c := api.waitCall(t)
		gaps = append(gaps, c.at.Sub(prev))
		prev = c.at
	}
	want := []time.Duration{1, 2, 4, 8, 8, 8}
	for i, g := range gaps {
		if g != want[i]*time.Second {
			t.Errorf("gap before attempt %d = %v; want %v (all gaps %v)", i+2, g, want[i]*time.Second, gaps)
		}
	}
	eventually(t, "the removal to complete", func() bool { return r.Stats().Depth == 0 })
	st := r.Stats()
	if st.Retries != 6 || st.Removed != 1 {
		t.Errorf("Stats() retries=%d removed=%d; want 6 and 1", st.Retries, st.Removed)
	}
	for _, c := range api.removeCalls() {
		if c.force {
			t.Errorf("removal of an exited container used force")
		}
	}
}

// Nothing is attempted before notBefore: the exit is reported first.
func TestRemoverWaitsForNotBefore(t *testing.T) {
	r, api, fc := newTestRemover(t, RemoverConfig{})
	api.add("c1", ownLabels("t1"))
	r.Enqueue("c1", "t1", fc.Now().Add(time.Minute))
	at := fc.waitTimerAfter(t, fc.Now())
	if want := fc.Now().Add(time.Minute); !at.Equal(want) {
		t.Errorf("worker wakes at %v; want %v", at, want)
	}
	if n := len(api.removeCalls()); n != 0 {
		t.Fatalf("%d removal calls before notBefore; want 0", n)
	}
	fc.AdvanceTo(at)
	c := api.waitCall(t)
	if c.at.Before(at) {
		t.Errorf("removed at %v, before notBefore %v", c.at, at)
	}
}

func TestRemoverDedupe(t *testing.T) {
	r, api, fc := newTestRemover(t, RemoverConfig{})
	api.add("c1", ownLabels("t1"))
	now := fc.Now()
	r.Enqueue("c1", "t1", now.Add(time.Minute))
	r.Enqueue("c1", "t1", now.Add(2*time.Minute)) // the later one wins
	r.Enqueue("c1", "", now.Add(time.Second))     // an earlier one does not
	if d := r.Stats().Depth; d != 1 {
		t.Fatalf("Depth = %d after three Enqueues of one container; want 1", d)
	}
	fc.waitTimerAfter(t, now)
	fc.Advance(time.Minute)
	time.Sleep(20 * time.Millisecond)
	if n := len(api.removeCalls()); n != 0 {
		t.Fatalf("removed after 1m; want the later notBefore (2m) to hold")
	}
	fc.Advance(time.Minute)
	api.waitCall(t)
	eventually(t, "the queue to empty", func() bool { return r.Stats().Depth == 0 })
	if n := len(api.removeCalls()); n != 1 {
		t.Errorf("%d removal calls; want 1", n)
	}
}

func TestRemoverOutcomesCountAsDone(t *testing.T) {
	r, api, fc := newTestRemover(t, RemoverConfig{})
	api.add("progress", ownLabels("t2"), errInProgress("progress"))
	api.add("gone-at-remove", ownLabels("t3"), errNoSuch("gone-at-remove"))
	// "gone" is not added: the inspect already says no such container.
	for _, id := range []string{"gone", "progress", "gone-at-remove"} {
		r.Enqueue(id, "t-"+id, fc.Now())
	}
	eventually(t, "the queue to empty", func() bool { return r.Stats().Depth == 0 })
	st := r.Stats()
	if st.Removed != 3 || st.Retries != 0 {
		t.Errorf("Stats() removed=%d retries=%d; want 3 and 0", st.Removed, st.Retries)
	}
	for _, c := range api.removeCalls() {
		if c.id == "gone" {
			t.Errorf("RemoveContainer called for a container the inspect did not find")
		}
	}
}

func TestRemoverRefusesUnlabelled(t *testing.T) {
	r, api, fc := newTestRemover(t, RemoverConfig{})
	api.add("foreign", map[string]string{"com.example.app": "db"})
	api.add("other-executor", map[string]string{containerd.LabelFramework: "fw", containerd.LabelExecutor: "someone-else"})
	r.Enqueue("foreign", "t1", fc.Now())
	r.Enqueue("other-executor", "t2", fc.Now())
	eventually(t, "the queue to empty", func() bool { return r.Stats().Depth == 0 })
	if n := len(api.removeCalls()); n != 0 {
		t.Errorf("%d RemoveContainer calls for containers without our labels; want 0", n)
	}
	if !api.exists("foreign") || !api.exists("other-executor") {
		t.Error("a container without our labels was removed")
	}
	if got := r.Stats().Refused; got != 2 {
		t.Errorf("Refused = %d; want 2", got)
	}
}

func TestRemoverForcesStillRunning(t *testing.T) {
	r, api, fc := newTestRemover(t, RemoverConfig{})
	api.add("c1", ownLabels("t1"), errRunning("c1"))
	r.Enqueue("c1", "t1", fc.Now())
	eventually(t, "the queue to empty", func() bool { return r.Stats().Depth == 0 })
	calls := api.removeCalls()
	if len(calls) != 2 || calls[0].force || !calls[1].force {
		t.Errorf("calls = %+v; want one without force, then one with force", calls)
	}
	if st := r.Stats(); st.Retries != 0 {
		t.Errorf("Retries = %d; want 0 (not a filesystem failure)", st.Retries)
	}
}

// A daemon that is down pauses the queue: no retries are burnt, and the
// removal goes through once it answers again.
func TestRemoverPausesWhileDaemonDown(t *testing.T) {
	r, api, fc := newTestRemover(t, RemoverConfig{Workers: 2, PausePoll: 5 * time.Second})
	api.add("c1", ownLabels("t1"))
	api.add("c2", ownLabels("t2"))
	api.setDown(true)
	r.Enqueue("c1", "t1", fc.Now())
	eventually(t, "the queue to pause", func() bool { return r.Stats().Paused })
	r.Enqueue("c2", "t2", fc.Now())
	// Hours of a dead daemon: the prober pings, nothing else happens.
	for i := 0; i < 100; i++ {
		at := fc.waitTimerAfter(t, fc.Now())
		fc.AdvanceTo(at)
	}
	st := r.Stats()
	if !st.Paused || st.Retries != 0 || st.Depth != 2 {
		t.Fatalf("while down: paused=%v retries=%d depth=%d; want true, 0, 2", st.Paused, st.Retries, st.Depth)
	}
	api.setDown(false)
	// The prober may already be pinging; keep its clock moving until it
	// has seen the daemon answer.
	eventually(t, "the queue to resume and empty", func() bool {
		fc.Advance(5 * time.Second)
		return r.Stats().Depth == 0
	})
	st = r.Stats()
	if st.Paused || st.Retries != 0 || st.Removed != 2 {
		t.Errorf("after: paused=%v retries=%d removed=%d; want false, 0, 2", st.Paused, st.Retries, st.Removed)
	}
}

// A full queue drops the oldest failing entry for a new one; with none
// failing it drops the new one. The sweep finds either again.
func TestRemoverQueueBound(t *testing.T) {
	fc := newFakeClock()
	api := newFakeAPI(fc)
	r := NewRemover(RemoverConfig{FrameworkID: "fw", ExecutorID: "ex", Capacity: 3, Clock: fc}, api, testLog(t))
	later := fc.Now().Add(time.Hour)
	for _, id := range []string{"a", "b", "c", "d"} {
		r.Enqueue(id, "t-"+id, later)
	}
	if st := r.Stats(); st.Depth != 3 || st.Dropped != 1 || r.Queued("d") {
		t.Fatalf("depth=%d dropped=%d d queued=%v; want 3, 1, false", st.Depth, st.Dropped, r.Queued("d"))
	}
	r.mu.Lock()
	r.entries["b"].attempts, r.entries["b"].firstFail = 3, fc.Now().Add(-time.Minute)
	r.entries["c"].attempts, r.entries["c"].firstFail = 1, fc.Now()
	r.mu.Unlock()
	r.Enqueue("e", "t-e", later)
	if st := r.Stats(); st.Depth != 3 || st.Dropped != 2 || r.Queued("b") || !r.Queued("e") || !r.Queued("c") {
		t.Errorf("depth=%d dropped=%d b=%v c=%v e=%v; want 3, 2, false, true, true",
			st.Depth, st.Dropped, r.Queued("b"), r.Queued("c"), r.Queued("e"))
	}
}

// A removal that keeps failing busy becomes stuck, names the holder found in
// another mount namespace, is still retried, and completes when the holder
// is gone.
func TestRemoverStuckReportsHolders(t *testing.T) {
	id := "c0ffee" + repeat("0", 58)
	merged := "/var/lib/docker/overlay2/" + repeat("ab", 32) + "/merged"
	proc := fakeProc(t, map[int]fakeProcess{
		1:   {ns: "mnt:[1]", mountinfo: rootMountinfo},
		42:  {ns: "mnt:[4026532403]", cmdline: "sleep\x0030\x00", mountinfo: rootMountinfo + "700 600 0:40 / " + merged + " rw - overlay overlay rw\n"},
		43:  {ns: "mnt:[4026532403]", comm: "bash"},
		100: {ns: "mnt:[77]", mountinfo: rootMountinfo},
	}, 1)
	var got []Holder
	var mu sync.Mutex
	r, api, fc := newTestRemover(t, RemoverConfig{
		Workers: 1, MaxAttempts: 3, BackoffBase: time.Second, StuckRetry: time.Hour, ProcRoot: proc,
		OnHolders: func(cid, task string, hs []Holder) {
			mu.Lock()
			defer mu.Unlock()
			if cid == id && task == "t1" {
				got = hs
			}
		},
	})
	api.add(id, ownLabels("t1"), errBusy(id), errBusy(id), errBusy(id), errBusy(id))
	api.mu.Lock()
	api.graph[id] = map[string]string{"MergedDir": merged}
	api.mu.Unlock()
	r.Enqueue(id, "t1", fc.Now())
	for i := 0; i < 3; i++ {
		api.waitCall(t)
		if i < 2 {
			fc.AdvanceTo(fc.waitTimerAfter(t, fc.Now()))
		}
	}
	at := fc.waitTimerAfter(t, fc.Now())
	if d := at.Sub(fc.Now()); d != time.Hour {
		t.Errorf("a stuck removal retries after %v; want StuckRetry (1h)", d)
	}
	st := r.Stats()
	if len(st.Stuck) != 1 || st.StuckCount != 1 {
		t.Fatalf("Stats().Stuck = %+v; want one entry", st.Stuck)
	}
	s := st.Stuck[0]
	if s.ContainerID != id || s.TaskID != "t1" || s.Attempts != 3 || s.LastError == "" {
		t.Errorf("stuck = %+v; want %s, t1, 3 attempts, an error", s, id)
	}
	if len(s.Holders) != 2 || s.Holders[0].PID != 42 || s.Holders[0].Command != "sleep 30" ||
		s.Holders[0].MountNS != "mnt:[4026532403]" || s.Holders[0].Mountpoint != merged || s.Holders[1].PID != 43 {
		t.Errorf("holders = %+v; want pids 42 (sleep 30) and 43 in mnt:[4026532403] at %s", s.Holders, merged)
	}
	mu.Lock()
	if len(got) != 2 {
		t.Errorf("OnHolders got %+v; want the two holders", got)
	}
	mu.Unlock()
	fc.Advance(30 * time.Minute)
	if o := r.Stats().OldestStuck; o < 30*time.Minute {
		t.Errorf("OldestStuck = %v; want >= 30m", o)
	}
	// The fourth attempt fails again, the fifth succeeds.
	fc.AdvanceTo(fc.waitTimerAfter(t, fc.Now()))
	api.waitCall(t)
	fc.AdvanceTo(fc.waitTimerAfter(t, fc.Now()))
	api.waitCall(t)
	eventually(t, "the stuck removal to complete", func() bool { return r.Stats().Depth == 0 })
	if st := r.Stats(); st.StuckCount != 0 || st.Removed != 1 || st.Retries != 4 {
		t.Errorf("after: stuck=%d removed=%d retries=%d; want 0, 1, 4", st.StuckCount, st.Removed, st.Retries)
	}
}

func TestRemoverDrain(t *testing.T) {
	api := newFakeAPI(wallClock{})
	r := NewRemover(RemoverConfig{FrameworkID: "fw", ExecutorID: "ex", BackoffBase: 10 * time.Millisecond, ProcRoot: t.TempDir()}, api, testLog(t))
	later := time.Now().Add(time.Hour)
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		api.add(id, ownLabels("t-"+id))
		r.Enqueue(id, "t-"+id, later)
	}
	api.add("busy", ownLabels("t-busy"), errBusy("busy"), errBusy("busy"))
	r.Enqueue("busy", "t-busy", later)
	// Run is not running: Drain works on its own, ignoring notBefore.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Drain(ctx); err != nil {
		t.Fatalf("Drain() = %v; want nil", err)
	}
	if d := r.Stats().Depth; d != 0 {
		t.Errorf("Depth after Drain = %d; want 0", d)
	}
	for _, c := range api.removeCalls() {
		if !c.force {
			t.Errorf("Drain removed %s without force; a task killed at shutdown may still run", c.id)
		}
	}

	api.add("stuck", ownLabels("t-stuck"), errBusy("stuck"), errBusy("stuck"), errBusy("stuck"), errBusy("stuck"),
		errBusy("stuck"), errBusy("stuck"), errBusy("stuck"), errBusy("stuck"), errBusy("stuck"), errBusy("stuck"))
	r.Enqueue("stuck", "t-stuck", later)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	err := r.Drain(ctx2)
	if !errors.Is(err, ErrDrainIncomplete) {
		t.Fatalf("Drain() with an always-busy container = %v; want ErrDrainIncomplete", err)
	}
	t.Logf("Drain error, as an operator sees it: %v", err)
}

func repeat(s string, n int) string { return strings.Repeat(s, n) }

// fakeProcess is one process of a fake /proc.
type fakeProcess struct {
	ns        string // the ns/mnt link target; "" = no link (kernel thread)
	cmdline   string
	comm      string
	mountinfo string
	stat      string
}

const rootMountinfo = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"

// fakeProc builds a /proc tree with the given processes; self is the pid
// "self" points at (0: none).
func fakeProc(t *testing.T, procs map[int]fakeProcess, self int) string {
	t.Helper()
	root := t.TempDir()
	for pid, p := range procs {
		dir := filepath.Join(root, strconv.Itoa(pid))
		must(t, os.MkdirAll(filepath.Join(dir, "ns"), 0o755))
		if p.ns != "" {
			must(t, os.Symlink(p.ns, filepath.Join(dir, "ns", "mnt")))
		}
		for name, content := range map[string]string{"cmdline": p.cmdline, "comm": p.comm, "mountinfo": p.mountinfo, "stat": p.stat} {
			if content != "" {
				must(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
			}
		}
	}
	if self != 0 {
		must(t, os.Symlink(strconv.Itoa(self), filepath.Join(root, "self")))
	}
	return root
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
