package containerd

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/docker/docker/pkg/jsonmessage"
)

// fakePuller is a pullFunc the test steers: each pull blocks until release
// (or its ctx ends) and counts itself.
type fakePuller struct {
	calls   atomic.Int32
	release chan error
	// feed, when set, is sent each progress message it yields.
	feed chan *jsonmessage.JSONMessage
	// ended receives each pull's final error.
	ended chan error
}

func newFakePuller() *fakePuller {
	return &fakePuller{release: make(chan error), feed: make(chan *jsonmessage.JSONMessage), ended: make(chan error, 16)}
}

func (f *fakePuller) pull(ctx context.Context, _ string, progress func(*jsonmessage.JSONMessage)) error {
	f.calls.Add(1)
	for {
		select {
		case err := <-f.release:
			f.ended <- err
			return err
		case m := <-f.feed:
			progress(m)
		case <-ctx.Done():
			err := ctx.Err()
			f.ended <- err
			return err
		}
	}
}

func TestPullCoordinatorSharesOnePull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePuller()
		pc := newPullCoordinator(f.pull, time.Hour, time.Minute)
		errs := make([]error, 50)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() { errs[i] = pc.wait(t.Context(), "r/img:1", "task-"+string(rune('a'+i%26))) })
		}
		synctest.Wait()
		if n := f.calls.Load(); n != 1 {
			t.Fatalf("%d pulls for 50 waiters; want 1", n)
		}
		if p := pc.snapshot(); len(p) != 1 || p[0].Waiters != 50 || len(p[0].TaskIDs) != 50 {
			t.Fatalf("snapshot = %+v; want one pull with 50 waiters", p)
		}
		f.release <- nil
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("waiter %d: %v", i, err)
			}
		}
		if p := pc.snapshot(); len(p) != 0 {
			t.Errorf("snapshot after the pull = %+v; want empty (entries end with their pull)", p)
		}
		// A failure reaches every waiter, and the next call pulls again.
		go func() { f.release <- errors.New("manifest unknown") }()
		if err := pc.wait(t.Context(), "r/img:1", ""); err == nil || err.Error() != "manifest unknown" {
			t.Errorf("wait = %v; want the pull's error", err)
		}
		if n := f.calls.Load(); n != 2 {
			t.Errorf("%d pulls; want a new pull after the first ended", n)
		}
	})
}

func TestPullCoordinatorWaiterLeavesPullGoesOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePuller()
		pc := newPullCoordinator(f.pull, time.Hour, time.Minute)
		ctx, cancel := context.WithCancel(t.Context())
		leaver := make(chan error, 1)
		stayer := make(chan error, 1)
		go func() { leaver <- pc.wait(ctx, "r/img:1", "killed") }()
		go func() { stayer <- pc.wait(t.Context(), "r/img:1", "stays") }()
		synctest.Wait()
		cancel()
		synctest.Wait()
		select {
		case err := <-leaver:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled waiter got %v; want context.Canceled", err)
			}
		default:
			t.Fatal("cancelled waiter did not return at once")
		}
		p := pc.snapshot()
		if len(p) != 1 || !slices.Equal(p[0].TaskIDs, []string{"stays"}) {
			t.Fatalf("snapshot = %+v; want the pull going on for task stays", p)
		}
		f.release <- nil
		if err := <-stayer; err != nil {
			t.Errorf("remaining waiter: %v", err)
		}
	})
}

func TestPullCoordinatorLastWaiterCancelsPull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePuller()
		pc := newPullCoordinator(f.pull, time.Hour, time.Minute)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 2)
		for range 2 {
			go func() { done <- pc.wait(ctx, "r/img:1", "") }()
		}
		synctest.Wait()
		cancel()
		for range 2 {
			<-done
		}
		if err := <-f.ended; !errors.Is(err, context.Canceled) {
			t.Errorf("pull ended with %v; want its context cancelled", err)
		}
		synctest.Wait()
		if p := pc.snapshot(); len(p) != 0 {
			t.Errorf("snapshot = %+v; want no pull once nobody waits", p)
		}
		go func() { f.release <- nil }()
		if err := pc.wait(t.Context(), "r/img:1", ""); err != nil {
			t.Errorf("a new waiter after the cancel: %v; want a fresh pull", err)
		}
	})
}

func TestPullCoordinatorStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePuller()
		pc := newPullCoordinator(f.pull, time.Hour, 30*time.Second)
		res := make(chan error, 1)
		start := time.Now()
		go func() { res <- pc.wait(t.Context(), "r/img:1", "t") }()
		// Progress every 20 s for two minutes keeps it alive.
		for i := range 6 {
			time.Sleep(20 * time.Second)
			f.feed <- &jsonmessage.JSONMessage{ID: "layer1", Status: "Downloading",
				Progress: &jsonmessage.JSONProgress{Current: int64(i+1) * 100, Total: 1000}}
		}
		synctest.Wait()
		p := pc.snapshot()
		if len(p) != 1 || p[0].BytesDone != 600 || p[0].BytesTotal != 1000 || p[0].Layers != 1 {
			t.Fatalf("snapshot = %+v; want 600 of 1000 bytes in one layer", p)
		}
		// The same numbers again are no progress.
		f.feed <- &jsonmessage.JSONMessage{ID: "layer1", Status: "Downloading",
			Progress: &jsonmessage.JSONProgress{Current: 600, Total: 1000}}
		err := <-res
		if !errors.Is(err, ErrPullStalled) {
			t.Fatalf("wait = %v; want ErrPullStalled", err)
		}
		if d := time.Since(start); d != 150*time.Second {
			t.Errorf("stalled after %v; want 150s (last progress at 120s + 30s)", d)
		}
		t.Logf("stall error: %v", err)
	})
}

func TestPullProgressSumsLayers(t *testing.T) {
	t.Parallel()
	var p pullProgress
	now := time.Now()
	msgs := []jsonmessage.JSONMessage{
		{ID: "1", Status: "Pulling from team/web"},
		{ID: "a", Status: "Pulling fs layer"},
		{ID: "b", Status: "Pulling fs layer"},
		{ID: "c", Status: "Already exists"},
		{ID: "a", Status: "Downloading", Progress: &jsonmessage.JSONProgress{Current: 50, Total: 100}},
		{ID: "b", Status: "Downloading", Progress: &jsonmessage.JSONProgress{Current: 10, Total: 300}},
		{ID: "a", Status: "Download complete"},
		{ID: "a", Status: "Extracting", Progress: &jsonmessage.JSONProgress{Current: 400, Total: 900}},
	}
	for i := range msgs {
		p.observe(&msgs[i], now)
	}
	var info PullInfo
	p.fill(&info)
	if info.BytesDone != 110 || info.BytesTotal != 400 || info.Layers != 3 {
		t.Errorf("progress = %d/%d bytes, %d layers; want 110/400, 3", info.BytesDone, info.BytesTotal, info.Layers)
	}
}
