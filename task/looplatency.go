package task

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/mdx-executor/mdx/containerd"
)

// LoopLatencyBuckets are the upper bounds (seconds) of the loop latency
// histogram: 50 µs to about 6 s in steps of 1.5x, fine enough that a p99
// read from the buckets moves by less than the 10% a benchmark compares.
var LoopLatencyBuckets = func() []float64 {
	b := make([]float64, 30)
	for i := range b {
		b[i] = 50e-6 * math.Pow(1.5, float64(i))
	}
	return b
}()

// LoopLatency is a histogram of how long messages wait before the task loop
// handles them. It is sampled by container exits: the exit watcher stamps
// each exit when it hands it over (containerd.Exit.Sent) and the loop
// observes the age of the stamp when it handles the exit, so a sample is the
// queueing delay in front of the loop at that moment, under the real load,
// with no probe traffic of its own. Observing costs two atomic adds.
//
// The zero value is ready to use; any goroutine may read it.
type LoopLatency struct {
	counts   [31]atomic.Uint64 // per bucket, the last one above every bound
	sumNanos atomic.Int64
}

// observe records one sample. Negative durations (a clock step) count as 0.
func (h *LoopLatency) observe(d time.Duration) {
	d = max(d, 0)
	s := d.Seconds()
	i := len(LoopLatencyBuckets)
	for j, ub := range LoopLatencyBuckets {
		if s <= ub {
			i = j
			break
		}
	}
	h.counts[i].Add(1)
	h.sumNanos.Add(int64(d))
}

// Snapshot returns the sample count, their sum in seconds and the cumulative
// count per bucket bound, as a Prometheus histogram reports them.
func (h *LoopLatency) Snapshot() (count uint64, sum float64, cumulative map[float64]uint64) {
	cumulative = make(map[float64]uint64, len(LoopLatencyBuckets))
	for i, ub := range LoopLatencyBuckets {
		count += h.counts[i].Load()
		cumulative[ub] = count
	}
	count += h.counts[len(LoopLatencyBuckets)].Load()
	return count, time.Duration(h.sumNanos.Load()).Seconds(), cumulative
}

// LoopLatency returns the loop latency histogram, for /metrics.
func (m *Manager) LoopLatency() *LoopLatency { return &m.views.loop }

// observeExitLatency samples the loop latency from an exit stamped by the
// exit watcher; exits made elsewhere (the reconcile) carry no stamp.
func (m *Manager) observeExitLatency(e containerd.Exit) {
	if !e.Sent.IsZero() {
		m.views.loop.observe(time.Since(e.Sent))
	}
}
