package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/agent/localagent"
	"github.com/mdx-executor/mdx/status"
)

// Defaults of BenchmarkScale, overridden by the environment.
const (
	scaleTasksDefault    = 20000 // MDX_BENCH_TASKS
	scaleInFlightDefault = 50    // MDX_BENCH_INFLIGHT
	// scaleFlat is how far a curve may rise from its first checkpoint and
	// still count as flat.
	scaleFlat = 1.10
)

// loopMetric is the executor's loop latency histogram on /metrics.
const loopMetric = "mesos_executor_task_loop_latency_seconds"

// BenchmarkScale pushes MDX_BENCH_TASKS short tasks (default 20,000; scaled
// by -scale) through one executor, MDX_BENCH_INFLIGHT (default 50) at a time
// so that Docker, not the executor, is the bottleneck: each task runs the
// test program's `exit 0` with network none, and its container is removed a
// second after its exit; the executor keeps min(1000, tasks/20) finished
// records. At 1/20, 1/2 and all of the tasks (1k, 10k and 20k
// by default) it lets the tasks in flight finish and reads the executor's
// RSS, times GET /state, and takes the loop latency (the
// mesos_executor_task_loop_latency_seconds histogram, sampled by every exit)
// over the last 1/20 of the tasks before the checkpoint. It prints each
// curve and whether it stays within 10% of its first value.
//
// On the 2-core test machine Docker runs about 5 such containers a second
// when idle, so the default takes more than an hour; MDX_BENCH_TASKS=2000 is
// a ten-minute try.
func BenchmarkScale(b *testing.B) {
	s := getSetup(b)
	n := count(envInt(b, "MDX_BENCH_TASKS", scaleTasksDefault))
	inFlight := envInt(b, "MDX_BENCH_INFLIGHT", scaleInFlightDefault)
	window := max(1, n/20)
	// The finished-task records fill up by the first checkpoint (1,000, the
	// executor's default, at 20,000 tasks), so that every checkpoint after
	// it sees the table at its bound and a rising curve means a leak.
	e := startExecutor(b, s, "scale", map[string]string{
		"EXECUTOR_REMOVE_DELAY":        "1s",
		"EXECUTOR_FINISHED_TASKS_KEPT": strconv.Itoa(min(1000, window)),
	})
	time.Sleep(settle)

	var points []scalePoint
	start := time.Now()
	done := 0
	// Printed on the way out too when a later part fails, so that a long
	// run's checkpoints are not lost.
	defer func() { printScale(points, n, inFlight, time.Since(start)) }()
	for _, cp := range []int{window, n / 2, n} {
		if cp <= done {
			continue
		}
		// Up to the window's start, then the window itself between two
		// readings of the loop latency histogram.
		if err := e.runShort(done, cp-window, inFlight); err != nil {
			b.Fatal(err)
		}
		before, err := e.loopHistogram()
		if err != nil {
			b.Fatal(err)
		}
		if err := e.runShort(max(done, cp-window), cp, inFlight); err != nil {
			b.Fatal(err)
		}
		after, err := e.loopHistogram()
		if err != nil {
			b.Fatal(err)
		}
		done = cp
		p := scalePoint{tasks: cp, elapsed: time.Since(start)}
		w := after.minus(before)
		p.loopSamples = w.count
		p.loopP50, p.loopP99 = w.quantile(0.5), w.quantile(0.99)
		if w.count > 0 {
			p.loopMean = time.Duration(w.sum / float64(w.count) * float64(time.Second))
		}
		time.Sleep(settle)
		if p.rss, err = e.readResources(); err != nil {
			b.Fatal(err)
		}
		lat, tasks, err := e.timeState(stateGets)
		if err != nil {
			b.Fatal(err)
		}
		p.stateP50, p.stateP99, p.stateTasks = percentile(lat, 50), percentile(lat, 99), tasks
		p.loadAvgAtEnd = loadavg()
		points = append(points, p)
		b.Logf("%d tasks done after %v", cp, p.elapsed.Round(time.Second))
	}

	if len(points) < 2 {
		return
	}
	first, last := points[0], points[len(points)-1]
	b.ReportMetric(float64(last.rss.rssKB), "rss_end_KB")
	b.ReportMetric(float64(last.rss.rssKB)/float64(first.rss.rssKB), "rss_ratio")
	b.ReportMetric(ms(last.stateP99), "state_p99_end_ms")
	b.ReportMetric(ms(last.loopP99), "loop_p99_end_ms")
}

// scalePoint is what BenchmarkScale measured at one checkpoint.
type scalePoint struct {
	tasks        int
	rss          resources
	stateP50     time.Duration
	stateP99     time.Duration
	stateTasks   int
	loopP50      time.Duration
	loopP99      time.Duration
	loopMean     time.Duration
	loopSamples  uint64
	elapsed      time.Duration
	loadAvgAtEnd string
}

// printScale prints BenchmarkScale's table and whether each curve is flat.
func printScale(points []scalePoint, n, inFlight int, elapsed time.Duration) {
	done := 0
	if len(points) > 0 {
		done = points[len(points)-1].tasks
	}
	fmt.Printf("\nBenchmarkScale: %d of %d tasks (exit 0, network none), %d in flight, through one executor in %v (%.1f tasks/s); load average %s at the end (%d CPUs)\n\n",
		done, n, inFlight, elapsed.Round(time.Second), float64(done)/elapsed.Seconds(), loadavg(), runtime.NumCPU())
	fmt.Println("| tasks done | executor RSS | Go heap | goroutines | GET /state p50 / p99 (tasks listed) | loop latency p50 / p99 / mean (samples) | elapsed | load |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, p := range points {
		fmt.Printf("| %d | %.1f MiB | %.1f MiB | %d | %s / %s (%d) | %s / %s / %s (%d) | %v | %s |\n",
			p.tasks, float64(p.rss.rssKB)/1024, float64(p.rss.heapKB)/1024, p.rss.goroutines,
			fmtMS(p.stateP50), fmtMS(p.stateP99), p.stateTasks,
			fmtMS(p.loopP50), fmtMS(p.loopP99), fmtMS(p.loopMean), p.loopSamples,
			p.elapsed.Round(time.Second), p.loadAvgAtEnd)
	}
	if len(points) < 2 {
		return
	}
	first := points[0]
	fmt.Println()
	flat := func(name string, v func(scalePoint) float64) {
		base := v(first)
		var parts []string
		ok := true
		for _, p := range points[1:] {
			r := math.Inf(1)
			if base > 0 {
				r = v(p) / base
			}
			parts = append(parts, fmt.Sprintf("%.2fx at %d", r, p.tasks))
			ok = ok && r <= scaleFlat
		}
		word := "flat"
		if !ok {
			word = "NOT flat"
		}
		fmt.Printf("%-22s %s within %.0f%% of %d tasks (%s)\n", name+":", word, (scaleFlat-1)*100, first.tasks, strings.Join(parts, ", "))
	}
	flat("RSS", func(p scalePoint) float64 { return float64(p.rss.rssKB) })
	flat("GET /state p99", func(p scalePoint) float64 { return float64(p.stateP99) })
	flat("loop latency p99", func(p scalePoint) float64 { return float64(p.loopP99) })
	fmt.Println()
}

// runShort runs the short tasks numbered [from, to), keeping inFlight of
// them launched and not yet finished, and returns once all are TASK_FINISHED.
func (e *executorProc) runShort(from, to, inFlight int) error {
	if from >= to {
		return nil
	}
	id := func(i int) string { return fmt.Sprintf("scale-%05d", i) }
	launch := func(i int) {
		t := e.task(id(i), "exit", "0")
		// network=none, as in benchState: Docker 20.10's network controller
		// deadlocked once under bridge endpoints churned this fast.
		t.Labels.Labels = append(t.Labels.Labels, mesos.Label{Key: "docker.network", Value: ptrTo("none")})
		e.la.Launch(t)
	}
	pending := make(map[string]bool, to-from)
	for i := from; i < to; i++ {
		pending[id(i)] = true
	}
	next := from
	for ; next < to && next-from < inFlight; next++ {
		launch(next)
	}
	ctx, cancel := context.WithTimeout(context.Background(), updateTimeout)
	defer cancel()
	go func() {
		select {
		case <-e.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	var bad error
	_, err := e.la.WaitUpdate(ctx, func(u localagent.Update) bool {
		tid := u.Status.TaskID.Value
		st := u.Status.GetState()
		if !pending[tid] || !isTerminal(st) {
			return false
		}
		if st != mesos.TASK_FINISHED {
			bad = fmt.Errorf("task %s: %s (%s) %q, want TASK_FINISHED", tid, st, u.Status.GetReason(), u.Status.GetMessage())
			return true
		}
		delete(pending, tid)
		if next < to {
			launch(next)
			next++
		}
		return len(pending) == 0
	})
	if bad != nil {
		return bad
	}
	if err != nil {
		return fmt.Errorf("tasks %d-%d: %d not finished: %w", from, to-1, len(pending), err)
	}
	return nil
}

// timeState times n GETs of /state (after a few to warm up) and returns
// the latencies and how many tasks the page lists.
func (e *executorProc) timeState(n int) ([]time.Duration, int, error) {
	body, err := e.get("/state")
	if err != nil {
		return nil, 0, err
	}
	var st status.State
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, 0, fmt.Errorf("decode /state: %w", err)
	}
	for range 5 {
		if _, err := e.get("/state"); err != nil {
			return nil, 0, err
		}
	}
	lat := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		if _, err := e.get("/state"); err != nil {
			return nil, 0, err
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, len(st.Tasks), nil
}

// histogram is one reading of a Prometheus histogram: cumulative counts by
// upper bound, in increasing order.
type histogram struct {
	bounds []float64
	counts []uint64
	count  uint64
	sum    float64
}

// loopHistogram reads the loop latency histogram from /metrics.
func (e *executorProc) loopHistogram() (histogram, error) {
	body, err := e.get("/metrics")
	if err != nil {
		return histogram{}, err
	}
	return parseHistogram(string(body), loopMetric)
}

// parseHistogram reads histogram name (without labels other than le) from
// a Prometheus text page.
func parseHistogram(page, name string) (histogram, error) {
	var h histogram
	found := false
	for _, line := range strings.Split(page, "\n") {
		key, val, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(key, name) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return h, fmt.Errorf("%s: %q: %w", name, line, err)
		}
		switch {
		case strings.HasPrefix(key, name+`_bucket{le="`):
			le := strings.TrimSuffix(strings.TrimPrefix(key, name+`_bucket{le="`), `"}`)
			if le == "+Inf" {
				continue
			}
			ub, err := strconv.ParseFloat(le, 64)
			if err != nil {
				return h, fmt.Errorf("%s: bucket %q: %w", name, le, err)
			}
			h.bounds = append(h.bounds, ub)
			h.counts = append(h.counts, uint64(v))
		case key == name+"_count":
			h.count, found = uint64(v), true
		case key == name+"_sum":
			h.sum = v
		}
	}
	if !found {
		return h, fmt.Errorf("/metrics has no %s", name)
	}
	return h, nil
}

// minus returns the samples observed between reading o and reading h.
func (h histogram) minus(o histogram) histogram {
	d := histogram{bounds: h.bounds, counts: make([]uint64, len(h.counts)), count: h.count - o.count, sum: h.sum - o.sum}
	for i := range h.counts {
		d.counts[i] = h.counts[i]
		if i < len(o.counts) {
			d.counts[i] -= o.counts[i]
		}
	}
	return d
}

// quantile interpolates the q-quantile linearly within its bucket, as
// Prometheus's histogram_quantile does; above the last bound it returns the
// last bound.
func (h histogram) quantile(q float64) time.Duration {
	if h.count == 0 || len(h.bounds) == 0 {
		return 0
	}
	rank := q * float64(h.count)
	lower, below := 0.0, uint64(0)
	for i, ub := range h.bounds {
		if float64(h.counts[i]) >= rank {
			in := h.counts[i] - below
			frac := 1.0
			if in > 0 {
				frac = (rank - float64(below)) / float64(in)
			}
			return time.Duration((lower + (ub-lower)*frac) * float64(time.Second))
		}
		lower, below = ub, h.counts[i]
	}
	return time.Duration(h.bounds[len(h.bounds)-1] * float64(time.Second))
}

// envInt reads a positive integer from the environment, or def.
func envInt(b *testing.B, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", key, v)
	}
	return n
}
