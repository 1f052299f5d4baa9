package cleanup

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/mdx-executor/mdx/containerd"
)

// fakeLister filters its containers by labels as Docker does ("" = any
// value).
type fakeLister struct{ list []containerd.Summary }

func (f *fakeLister) List(_ context.Context, labels map[string]string, _ bool) ([]containerd.Summary, error) {
	var out []containerd.Summary
	for _, c := range f.list {
		ok := true
		for k, v := range labels {
			got, has := c.Labels[k]
			ok = ok && has && (v == "" || got == v)
		}
		if ok {
			out = append(out, c)
		}
	}
	return out, nil
}

type finished map[string]time.Time

func (f finished) FinishedTasks() map[string]time.Time { return f }

func TestSweep(t *testing.T) {
	const boot = "b00t"
	fc := newFakeClock()
	now := fc.Now()
	proc := fakeProc(t, map[int]fakeProcess{
		// A live executor of another framework, started long before.
		500: {ns: "mnt:[1]", stat: "500 (executor) S 1 500 500 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 1000 10\n"},
	}, 0)
	must(t, os.MkdirAll(filepath.Join(proc, "sys", "kernel", "random"), 0o755))
	must(t, os.WriteFile(filepath.Join(proc, "sys", "kernel", "random", "boot_id"), []byte(boot), 0o644))
	must(t, os.WriteFile(filepath.Join(proc, "stat"), []byte("btime "+strconv.FormatInt(now.Add(-24*time.Hour).Unix(), 10)+"\n"), 0o644))

	own := func(id, task, state string, created time.Time) containerd.Summary {
		l := ownLabels(task)
		return containerd.Summary{ID: id, State: state, Labels: l, Created: created}
	}
	other := func(id, fw, ex, inst, pid, bootID, state string) containerd.Summary {
		return containerd.Summary{ID: id, State: state, Created: now.Add(-time.Hour), Labels: map[string]string{
			containerd.LabelFramework: fw, containerd.LabelExecutor: ex, containerd.LabelInstance: inst,
			containerd.LabelPID: pid, containerd.LabelBootID: bootID, containerd.LabelTask: "task-of-" + id,
		}}
	}
	lister := &fakeLister{list: []containerd.Summary{
		own("exited", "t-exited", "exited", now.Add(-time.Hour)),
		own("dead", "t-dead", "dead", now.Add(-time.Hour)),
		own("queued", "t-queued", "exited", now.Add(-time.Hour)),
		own("running", "t-running", "running", now.Add(-time.Hour)),
		own("created-old", "t-created-old", "created", now.Add(-10*time.Minute)),
		own("created-new", "t-created-new", "created", now.Add(-time.Minute)),
		other("earlier-instance", "fw", "ex", "old", "77", "old-boot", "running"),
		other("sibling-a", "fw", "ex", "sibling", "500", boot, "running"),
		other("sibling-b", "fw", "ex", "sibling", "500", boot, "exited"),
		other("orphan-rebooted", "fw2", "ex2", "i2", "500", "old-boot", "running"),
		other("orphan-gone", "fw2", "ex3", "i3", "4242", boot, "exited"),
		other("live-other", "fw2", "ex4", "i4", "500", boot, "running"),
		other("no-pid", "fw2", "ex5", "i5", "", "", "exited"),
		{ID: "unlabelled", State: "exited", Labels: map[string]string{"app": "db"}},
	}}

	sandbox := t.TempDir()
	mkTask := func(id string, age time.Duration) {
		dir := filepath.Join(sandbox, "tasks", id)
		must(t, os.MkdirAll(dir, 0o755))
		must(t, os.WriteFile(filepath.Join(dir, "stdout"), []byte("log"), 0o644))
		ts := now.Add(-age)
		must(t, os.Chtimes(filepath.Join(dir, "stdout"), ts, ts))
		must(t, os.Chtimes(dir, ts, ts))
	}
	mkTask("old-known", time.Hour)                                            // the manager says finished 2 days ago
	mkTask("recent-known", 48*time.Hour)                                      // the manager says finished 1 hour ago
	mkTask("old-unknown", 48*time.Hour)                                       // mtime decides
	mkTask("recent-unknown", time.Hour)                                       // mtime decides
	mkTask("t-exited", 48*time.Hour)                                          // its container still exists
	must(t, os.Symlink("/etc", filepath.Join(sandbox, "tasks", "symlinked"))) // never followed

	api := newFakeAPI(fc)
	rm := NewRemover(RemoverConfig{FrameworkID: "fw", ExecutorID: "ex", Clock: fc}, api, testLog(t))
	rm.Enqueue("queued", "t-queued", now.Add(time.Minute))
	s := NewSweeper(SweeperConfig{
		FrameworkID: "fw", ExecutorID: "ex", Instance: "me",
		CreatedGrace: 5 * time.Minute, RemoveDelay: time.Minute,
		SandboxRoot: sandbox, SandboxRetention: 24 * time.Hour,
		Tasks:    finished{"old-known": now.Add(-48 * time.Hour), "recent-known": now.Add(-time.Hour)},
		ProcRoot: proc, Clock: fc,
	}, lister, rm, testLog(t))

	rep, err := s.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(rep.Requeued)
	if want := []string{"created-old", "dead", "exited"}; !slices.Equal(rep.Requeued, want) {
		t.Errorf("Requeued = %q; want %q", rep.Requeued, want)
	}
	if want := []string{"old-known", "old-unknown"}; !slices.Equal(rep.Sandboxes, want) {
		t.Errorf("Sandboxes removed = %q; want %q", rep.Sandboxes, want)
	}
	for _, id := range []string{"recent-known", "recent-unknown", "t-exited"} {
		if _, err := os.Stat(filepath.Join(sandbox, "tasks", id)); err != nil {
			t.Errorf("sandbox of %s: %v; want kept", id, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(sandbox, "tasks", "symlinked")); err != nil {
		t.Errorf("a symlink in tasks/ was touched: %v", err)
	}

	var orphanIDs []string
	for _, o := range rep.Orphans {
		orphanIDs = append(orphanIDs, o.ContainerID)
		switch o.ContainerID {
		case "earlier-instance":
			if !o.Queued {
				t.Error("a dead earlier instance of this executor: not queued; want queued as at start")
			}
		default:
			if o.Queued {
				t.Errorf("orphan %s queued with RemoveOrphans off", o.ContainerID)
			}
		}
	}
	slices.Sort(orphanIDs)
	if want := []string{"earlier-instance", "orphan-gone", "orphan-rebooted"}; !slices.Equal(orphanIDs, want) {
		t.Errorf("orphans = %q; want %q (never a live executor's, an unlabelled one, or one without pid labels)", orphanIDs, want)
	}
	// A live instance with this executor's own ids (two agents on one
	// daemon) is reported, never queued.
	if len(rep.LiveInstances) != 1 || rep.LiveInstances[0].Instance != "sibling" || rep.LiveInstances[0].Containers != 2 {
		t.Errorf("LiveInstances = %+v; want the sibling instance with 2 containers", rep.LiveInstances)
	}
	for _, id := range []string{"sibling-a", "sibling-b"} {
		if rm.Queued(id) {
			t.Errorf("%s of a live instance of this executor was queued for removal", id)
		}
	}
	if ss := s.Stats(); len(ss.LiveInstances) != 1 {
		t.Errorf("Stats().LiveInstances = %+v; want 1", ss.LiveInstances)
	}
	st := rm.Stats()
	if st.Depth != 5 { // queued + 3 requeued + earlier-instance
		t.Errorf("queue depth = %d; want 5", st.Depth)
	}
	if ss := s.Stats(); ss.Sweeps != 1 || ss.Requeued != 3 || ss.SandboxesRemoved != 2 || len(ss.Orphans) != 3 {
		t.Errorf("Stats() = %+v", ss)
	}

	// A second sweep queues nothing twice; with RemoveOrphans on, the dead
	// executors' containers are queued, the live one's still not.
	s.cfg.RemoveOrphans = true
	rep, err = s.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Requeued) != 0 {
		t.Errorf("second sweep requeued %q; want nothing", rep.Requeued)
	}
	for _, id := range []string{"orphan-gone", "orphan-rebooted"} {
		if !rm.Queued(id) {
			t.Errorf("%s not queued with RemoveOrphans on", id)
		}
	}
	for _, id := range []string{"live-other", "no-pid", "unlabelled", "running", "created-new"} {
		if rm.Queued(id) {
			t.Errorf("%s queued; it must never be", id)
		}
	}
}

// An orphan is removed only if its executor is still dead at removal time.
func TestOrphanCheckAtRemoval(t *testing.T) {
	proc := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(proc, "sys", "kernel", "random"), 0o755))
	must(t, os.WriteFile(filepath.Join(proc, "sys", "kernel", "random", "boot_id"), []byte("b"), 0o644))
	l := Liveness{ProcRoot: proc}
	dead := containerd.StorageInfo{Labels: map[string]string{containerd.LabelFramework: "f", containerd.LabelExecutor: "e",
		containerd.LabelPID: "4242", containerd.LabelBootID: "old"}}
	if err := checkOrphan(l, dead); err != nil {
		t.Errorf("checkOrphan(dead executor) = %v; want nil", err)
	}
	unlabelled := containerd.StorageInfo{Labels: map[string]string{containerd.LabelPID: "4242", containerd.LabelBootID: "old"}}
	if err := checkOrphan(l, unlabelled); err == nil {
		t.Error("checkOrphan(no ownership labels) = nil; want ErrNotOwned")
	}
	unknown := containerd.StorageInfo{Labels: map[string]string{containerd.LabelFramework: "f", containerd.LabelExecutor: "e"}}
	if err := checkOrphan(l, unknown); err == nil {
		t.Error("checkOrphan(no pid labels) = nil; want ErrNotOwned")
	}
}

func TestSweeperRunEnds(t *testing.T) {
	fc := newFakeClock()
	rm := NewRemover(RemoverConfig{FrameworkID: "fw", ExecutorID: "ex", Clock: fc}, newFakeAPI(fc), testLog(t))
	lister := &fakeLister{list: []containerd.Summary{{ID: "x", State: "exited", Labels: ownLabels("t")}}}
	s := NewSweeper(SweeperConfig{FrameworkID: "fw", ExecutorID: "ex", Instance: "me", InitialDelay: time.Minute,
		Interval: 5 * time.Minute, ProcRoot: t.TempDir(), Clock: fc}, lister, rm, testLog(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	fc.AdvanceTo(fc.waitTimerAfter(t, fc.Now()))
	at := fc.waitTimerAfter(t, fc.Now())
	if d := at.Sub(fc.Now()); d != 5*time.Minute {
		t.Errorf("next sweep in %v; want the 5m interval", d)
	}
	if s.Stats().Sweeps != 1 || !rm.Queued("x") {
		t.Errorf("after the first sweep: sweeps=%d, x queued=%v", s.Stats().Sweeps, rm.Queued("x"))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
