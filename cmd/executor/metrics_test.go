package main

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/task"
)

func TestPullCollector(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	pulls := []containerd.PullInfo{{
		Image: "registry.example.com/web:1.4", TaskIDs: []string{"a", "b"}, Waiters: 2,
		BytesDone: 1000, BytesTotal: 4000, StartedAt: start,
	}}
	c := &pullCollector{pulls: func() []containerd.PullInfo { return pulls }, now: func() time.Time { return start.Add(90 * time.Second) }}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	want := `
# HELP mesos_executor_image_pull_downloaded_bytes Bytes downloaded so far by a pull in flight, summed over its layers.
# TYPE mesos_executor_image_pull_downloaded_bytes gauge
mesos_executor_image_pull_downloaded_bytes{image="registry.example.com/web:1.4"} 1000
# HELP mesos_executor_image_pull_elapsed_seconds Time since a pull in flight started.
# TYPE mesos_executor_image_pull_elapsed_seconds gauge
mesos_executor_image_pull_elapsed_seconds{image="registry.example.com/web:1.4"} 90
# HELP mesos_executor_image_pull_size_bytes Bytes a pull in flight has to download, as far as the daemon knows yet.
# TYPE mesos_executor_image_pull_size_bytes gauge
mesos_executor_image_pull_size_bytes{image="registry.example.com/web:1.4"} 4000
# HELP mesos_executor_image_pull_waiting_tasks Callers waiting for a pull in flight.
# TYPE mesos_executor_image_pull_waiting_tasks gauge
mesos_executor_image_pull_waiting_tasks{image="registry.example.com/web:1.4"} 2
# HELP mesos_executor_image_pulls_in_progress Image pulls in flight (one per image, shared by its waiting tasks).
# TYPE mesos_executor_image_pulls_in_progress gauge
mesos_executor_image_pulls_in_progress 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	pulls = nil
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 1 {
		t.Errorf("with no pulls: %d series, %v; want only the in-progress gauge", n, err)
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) != 0 {
		t.Errorf("lint: %v %v", probs, err)
	}
}

func TestLoopLatencyCollector(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(loopLatencyCollector{new(task.LoopLatency)})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetName() != "mesos_executor_task_loop_latency_seconds" {
		t.Fatalf("gathered %v; want the one loop latency histogram", mfs)
	}
	h := mfs[0].GetMetric()[0].GetHistogram()
	if h == nil || h.GetSampleCount() != 0 || len(h.GetBucket()) != len(task.LoopLatencyBuckets) {
		t.Errorf("histogram %v; want no samples and %d buckets", h, len(task.LoopLatencyBuckets))
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) != 0 {
		t.Errorf("lint: %v %v", probs, err)
	}
}
