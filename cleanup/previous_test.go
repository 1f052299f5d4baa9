package cleanup

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/containerd"
)

type fakeDocker struct {
	list      []containerd.Summary
	listLabel map[string]string
	removed   []string
	failOn    string
}

func (f *fakeDocker) List(_ context.Context, labels map[string]string, _ bool) ([]containerd.Summary, error) {
	f.listLabel = labels
	return f.list, nil
}

func (f *fakeDocker) Remove(_ context.Context, id string) error {
	if id == f.failOn {
		return errors.New("device or resource busy")
	}
	f.removed = append(f.removed, id)
	return nil
}

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// previousProc is a fake /proc with this host's boot id, btime, and one
// running executor (pid 4242, started at boot); pid 4243 does not exist.
func previousProc(t *testing.T) (root, boot string) {
	t.Helper()
	boot = "5e7c3a0e-1111-2222-3333-444455556666"
	stat := "4242 (executor) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 100 1000 10\n"
	root = fakeProc(t, map[int]fakeProcess{4242: {ns: "mnt:[1]", stat: stat}}, 0)
	must(t, os.MkdirAll(filepath.Join(root, "sys", "kernel", "random"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "sys", "kernel", "random", "boot_id"), []byte(boot+"\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "stat"), []byte("btime 1800000000\n"), 0o644))
	return root, boot
}

func TestRemovePreviousInstances(t *testing.T) {
	proc, boot := previousProc(t)
	created := strconv.FormatInt(1_800_000_000+3600, 10)
	labels := func(inst, pid, bootID, task string) map[string]string {
		return map[string]string{containerd.LabelInstance: inst, containerd.LabelTask: task, containerd.LabelPID: pid,
			containerd.LabelBootID: bootID, containerd.LabelCreatedUnix: created}
	}
	f := &fakeDocker{list: []containerd.Summary{
		{ID: "dead-running", Labels: labels("old", "4243", boot, "t1"), Created: time.Now().Add(-time.Hour)},
		{ID: "mine", Labels: labels("me", "4242", boot, "t2")},
		{ID: "rebooted", Labels: labels("older", "4242", "old-boot", "t3")},
		{ID: "dead-exited-busy", Labels: labels("old", "4243", boot, "t4"), State: "exited"},
		{ID: "live-1", Labels: labels("sibling", "4242", boot, "t5"), State: "running"},
		{ID: "live-2", Labels: labels("sibling", "4242", boot, "t6"), State: "exited"},
		{ID: "unprovable", Labels: map[string]string{containerd.LabelInstance: "legacy", containerd.LabelTask: "t7"}},
	}, failOn: "dead-exited-busy"}
	rep, err := RemovePreviousInstances(context.Background(), f, Liveness{ProcRoot: proc, Instance: "me"}, "fw", "ex", quietLog())
	if err == nil {
		t.Error("RemovePreviousInstances error = nil; want the failure removing dead-exited-busy")
	}
	if want := []string{"dead-running", "rebooted"}; !slices.Equal(f.removed, want) {
		t.Errorf("removed %v; want %v (only proven-dead instances; never mine, a live one or one without pid labels)", f.removed, want)
	}
	if rep.Removed != 2 {
		t.Errorf("Removed = %d; want 2", rep.Removed)
	}
	if len(rep.Live) != 2 || rep.Live[0].Instance != "legacy" || rep.Live[1].Instance != "sibling" ||
		rep.Live[1].Containers != 2 || rep.Live[1].PID != "4242" || !strings.Contains(rep.Live[1].Why, "is running") {
		t.Errorf("Live = %+v; want legacy (unprovable) and sibling (pid 4242 running, 2 containers)", rep.Live)
	}
	if got := f.listLabel[containerd.LabelFramework]; got != "fw" {
		t.Errorf("list filter framework = %q; want fw", got)
	}
	if got := f.listLabel[containerd.LabelExecutor]; got != "ex" {
		t.Errorf("list filter executor = %q; want ex", got)
	}
}

func TestRemovePreviousInstancesNeedsInstance(t *testing.T) {
	f := &fakeDocker{list: []containerd.Summary{{ID: "a", Labels: map[string]string{containerd.LabelInstance: "x"}}}}
	if _, err := RemovePreviousInstances(context.Background(), f, Liveness{}, "fw", "ex", quietLog()); err == nil {
		t.Error("no instance id: error = nil; want a refusal (every container would count as another instance's)")
	}
	if len(f.removed) > 0 {
		t.Errorf("removed %v without an instance id", f.removed)
	}
}
