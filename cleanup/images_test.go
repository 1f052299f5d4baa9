package cleanup

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/mdx-executor/mdx/containerd"
)

type fakeImages struct {
	mu      sync.Mutex
	ids     map[string]string // ref -> id
	images  []containerd.ImageSummary
	inUse   map[string]bool
	deleted []string
}

func (f *fakeImages) ListImages(_ context.Context, dangling bool) ([]containerd.ImageSummary, error) {
	var out []containerd.ImageSummary
	for _, im := range f.images {
		if !dangling || len(im.RepoTags) == 0 {
			out = append(out, im)
		}
	}
	return out, nil
}

func (f *fakeImages) ImagesInUse(context.Context) (map[string]bool, error) { return f.inUse, nil }

func (f *fakeImages) ImageID(_ context.Context, ref string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ids[ref], nil
}

func (f *fakeImages) DeleteImage(_ context.Context, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.ids[ref]
	if id == "" {
		id = ref
	}
	if f.inUse[id] {
		return fmt.Errorf("conflict: unable to delete %s (must be forced) - image is being used by stopped container 123: %w", ref, cerrdefs.ErrConflict)
	}
	f.deleted = append(f.deleted, ref)
	delete(f.ids, ref)
	return nil
}

func TestImageCollector(t *testing.T) {
	fc := newFakeClock()
	d := &fakeImages{
		ids: map[string]string{"app:old": "sha256:old", "app:inuse": "sha256:inuse", "app:fresh": "sha256:fresh",
			"someone-elses:latest": "sha256:other"},
		images: []containerd.ImageSummary{
			{ID: "sha256:dangling-old", Created: fc.Now().Add(-2 * time.Hour)},
			{ID: "sha256:dangling-new", Created: fc.Now().Add(-time.Minute)},
			{ID: "sha256:dangling-used", Created: fc.Now().Add(-2 * time.Hour)},
			{ID: "sha256:other", RepoTags: []string{"someone-elses:latest"}, Created: fc.Now().Add(-48 * time.Hour)},
		},
		inUse: map[string]bool{"sha256:inuse": true, "sha256:dangling-used": true},
	}
	c := NewImageCollector(ImageConfig{UnusedFor: time.Hour, Clock: fc}, d, testLog(t))
	c.Used("app:old")
	c.Used("app:inuse")
	c.Used("app:gone")
	fc.Advance(2 * time.Hour)
	c.Used("app:fresh")

	rep, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Removed, []string{"app:old"}) {
		t.Errorf("Removed = %q; want only app:old (in use, fresh, untracked and dangling images stay)", rep.Removed)
	}
	if st := c.Stats(); st.Tracked != 2 || st.Removed != 1 {
		t.Errorf("Stats() = %+v; want 2 tracked (inuse, fresh), 1 removed", st)
	}

	// The in-use image's clock restarted when it was last seen in use.
	d.inUse = map[string]bool{"sha256:dangling-used": true}
	fc.Advance(30 * time.Minute)
	if rep, _ := c.Collect(context.Background()); len(rep.Removed) != 0 {
		t.Errorf("30m after its last use: removed %q; want nothing", rep.Removed)
	}
	fc.Advance(time.Hour)
	rep, _ = c.Collect(context.Background())
	slices.Sort(rep.Removed)
	if want := []string{"app:fresh", "app:inuse"}; !slices.Equal(rep.Removed, want) {
		t.Errorf("removed %q; want %q", rep.Removed, want)
	}

	// Dangling images only when asked, never a used or young one.
	c.cfg.Dangling = true
	d.images[1].Created = fc.Now().Add(-time.Minute) // just pulled or built
	rep, _ = c.Collect(context.Background())
	if !slices.Equal(rep.Removed, []string{"sha256:dangling-old"}) {
		t.Errorf("dangling removed %q; want only sha256:dangling-old", rep.Removed)
	}
	if slices.Contains(d.deleted, "someone-elses:latest") || slices.Contains(d.deleted, "sha256:other") {
		t.Error("removed an image this executor never used")
	}
}
