package cleanup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdx-executor/mdx/containerd"
)

// fakeHost is a HostAPI over a fakeLister, with per-container inspect data.
type fakeHost struct {
	fakeLister
	finished map[string]time.Time
	images   []containerd.ImageSummary
	inUse    map[string]bool
	removed  []removeCall
	deleted  []string
}

func (f *fakeHost) InspectStorage(_ context.Context, id string) (containerd.StorageInfo, error) {
	for _, c := range f.list {
		if c.ID == id {
			return containerd.StorageInfo{ID: id, Status: c.State, Labels: c.Labels, FinishedAt: f.finished[id]}, nil
		}
	}
	return containerd.StorageInfo{}, errNoSuch(id)
}

func (f *fakeHost) RemoveContainer(_ context.Context, id string, force bool) error {
	f.removed = append(f.removed, removeCall{id: id, force: force})
	return nil
}

func (f *fakeHost) RemoveVolume(context.Context, string) error { return nil }

func (f *fakeHost) ListImages(context.Context, bool) ([]containerd.ImageSummary, error) {
	return f.images, nil
}

func (f *fakeHost) ImagesInUse(context.Context) (map[string]bool, error) { return f.inUse, nil }

func (f *fakeHost) DeleteImage(_ context.Context, ref string) error {
	f.deleted = append(f.deleted, ref)
	return nil
}

func TestPlanHostSweep(t *testing.T) {
	const boot = "b00t"
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	proc := fakeProc(t, map[int]fakeProcess{
		500: {ns: "mnt:[1]", stat: "500 (executor) S 1 500 500 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 1000 10\n"},
	}, 0)
	must(t, os.MkdirAll(filepath.Join(proc, "sys", "kernel", "random"), 0o755))
	must(t, os.WriteFile(filepath.Join(proc, "sys", "kernel", "random", "boot_id"), []byte(boot), 0o644))
	must(t, os.WriteFile(filepath.Join(proc, "stat"), []byte("btime 1\n"), 0o644))
	c := func(id, state, ex, pid, bootID string) containerd.Summary {
		l := map[string]string{containerd.LabelFramework: "fw", containerd.LabelTask: "task-" + id,
			containerd.LabelPID: pid, containerd.LabelBootID: bootID,
			containerd.LabelCreatedUnix: "1000"}
		if ex != "" {
			l[containerd.LabelExecutor] = ex
		}
		return containerd.Summary{ID: id, Names: []string{"n-" + id}, State: state, Labels: l}
	}
	h := &fakeHost{
		fakeLister: fakeLister{list: []containerd.Summary{
			c("old-exit", "exited", "live", "500", boot),
			c("fresh-exit", "exited", "live", "500", boot),
			c("dead-exec-exit", "dead", "gone", "4242", boot),
			c("live-running", "running", "live", "500", boot),
			c("orphan-running", "running", "gone", "4242", boot),
			c("orphan-created", "created", "rebooted", "500", "old"),
			c("removing", "removing", "gone", "4242", boot),
			c("no-executor-label", "exited", "", "500", boot),
		}},
		finished: map[string]time.Time{"old-exit": now.Add(-time.Hour), "fresh-exit": now.Add(-time.Minute)},
		images: []containerd.ImageSummary{
			{ID: "sha256:unused", Created: now.Add(-time.Hour), Size: 17e6},
			{ID: "sha256:used", Created: now.Add(-time.Hour)},
			{ID: "sha256:young", Created: now.Add(-time.Minute)},
		},
		inUse: map[string]bool{"sha256:used": true},
	}
	opts := HostSweepOptions{MinAge: 5 * time.Minute, DanglingImages: true, ProcRoot: proc, Now: now}
	actions, skipped, err := PlanHostSweep(context.Background(), h, opts)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range actions {
		got = append(got, a.Kind+":"+a.ID)
		if a.Kind == KindOrphan != a.Force {
			t.Errorf("%s: force=%v; orphans (and only they) need force", a.ID, a.Force)
		}
	}
	want := "container:old-exit container:dead-exec-exit orphan:orphan-running orphan:orphan-created image:sha256:unused"
	if strings.Join(got, " ") != want {
		t.Errorf("plan = %s\nwant   %s", strings.Join(got, " "), want)
	}
	if skipped != 4 {
		t.Errorf("skipped = %d; want 4 (fresh exit, live running, removing, unlabelled)", skipped)
	}
	for i := range actions {
		ApplyHostAction(context.Background(), h, &actions[i], opts)
		if !actions[i].Removed || actions[i].Err != "" {
			t.Errorf("apply %s: removed=%v err=%q", actions[i].ID, actions[i].Removed, actions[i].Err)
		}
	}
	if len(h.removed) != 4 || len(h.deleted) != 1 {
		t.Errorf("removed %v, deleted %v; want 4 containers, 1 image", h.removed, h.deleted)
	}
}
