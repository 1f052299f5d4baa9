package task

import (
	"testing"
	"time"

	"github.com/mdx-executor/mdx/containerd"
)

func TestLoopLatencyBuckets(t *testing.T) {
	var h LoopLatency
	h.observe(30 * time.Microsecond) // first bucket (<= 50 µs)
	h.observe(3 * time.Millisecond)  // a middle one
	h.observe(time.Minute)           // above every bound
	h.observe(-5 * time.Millisecond) // a clock step: counted as 0
	count, sum, cum := h.Snapshot()
	if count != 4 {
		t.Fatalf("count = %d; want 4", count)
	}
	if want := (time.Minute + 3*time.Millisecond + 30*time.Microsecond).Seconds(); sum < want-1e-9 || sum > want+1e-9 {
		t.Errorf("sum = %v; want %v", sum, want)
	}
	first, last := LoopLatencyBuckets[0], LoopLatencyBuckets[len(LoopLatencyBuckets)-1]
	if cum[first] != 2 {
		t.Errorf("bucket <= %g has %d; want 2 (30 µs and the negative sample)", first, cum[first])
	}
	if cum[last] != 3 {
		t.Errorf("bucket <= %g has %d; want 3 (all but the minute)", last, cum[last])
	}
	for i := 1; i < len(LoopLatencyBuckets); i++ {
		if cum[LoopLatencyBuckets[i]] < cum[LoopLatencyBuckets[i-1]] {
			t.Fatalf("buckets not cumulative at %g", LoopLatencyBuckets[i])
		}
	}
}

// TestLoopLatencySampledByExits: an exit stamped by the watcher is one
// sample of at least its age; the reconcile's unstamped exits are none.
func TestLoopLatencySampledByExits(t *testing.T) {
	h := newHarness(t, Config{})
	cid := h.running(managerTask("t1"))
	h.m.HandleExit(containerd.Exit{ContainerID: "not-ours"}) // no stamp
	age := 20 * time.Millisecond
	h.m.HandleExit(containerd.Exit{ContainerID: cid, Sent: time.Now().Add(-age)})
	h.waitTerminal("t1")
	count, sum, _ := h.m.LoopLatency().Snapshot()
	if count != 1 {
		t.Fatalf("loop latency samples = %d; want 1 (the stamped exit only)", count)
	}
	if sum < age.Seconds() {
		t.Errorf("loop latency sum = %vs; want at least the stamp's age %v", sum, age)
	}
}
