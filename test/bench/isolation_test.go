package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mdx-executor/mdx/isolation"
	"github.com/mdx-executor/mdx/status"
)

// BenchmarkIsolationStats measures GET /metrics and GET /state when every one
// of 1,000 running tasks has cgroup stats, through the real reader, collector
// and status server on a Unix socket. The cgroups are fake directories laid
// out as cgroup v1 with the cgroupfs driver (the files the reader opens, with
// real-sized contents): running 1,000 containers on the 2-core test machine
// takes many minutes and measures Docker, not this. Two cases: "warm", scrapes
// within the reader's cache TTL (a scrape and a /state together), and
// "cold", every request reading all 1,000 tasks' files.
func BenchmarkIsolationStats(b *testing.B) {
	n := count(1000)
	root := b.TempDir()
	refs := fakeCgroups(b, root, n)
	for _, tc := range []struct {
		name string
		ttl  time.Duration
	}{{"warm", time.Hour}, {"cold", time.Nanosecond}} {
		b.Run(tc.name, func(b *testing.B) {
			r, err := isolation.NewReader(isolation.Layout{Root: root, Driver: "cgroupfs", Parent: "/mdx/bench"}, tc.ttl)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			col := isolation.NewCollector(r, func() []isolation.TaskRef { return refs }, nil)
			reg := prometheus.NewRegistry()
			reg.MustRegister(col)
			client := serveStatus(b, &statsSource{refs: refs, col: col}, reg)
			for _, page := range []string{"/metrics", "/state"} {
				var ds []time.Duration
				for i := 0; i < max(b.N, 50); i++ {
					start := time.Now()
					body, err := getPage(context.Background(), client, page)
					if err != nil {
						b.Fatal(err)
					}
					ds = append(ds, time.Since(start))
					if i == 0 && len(body) < n*100 {
						b.Fatalf("GET %s: %d bytes for %d tasks; stats missing", page, len(body), n)
					}
				}
				sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
				p50, p99 := percentile(ds, 50), percentile(ds, 99)
				b.ReportMetric(ms(p99), page[1:]+"_p99_ms")
				fmt.Printf("isolation stats, %d tasks, %s cache: GET %-8s p50 %s  p99 %s  (%d requests, load %s)\n",
					n, tc.name, page, fmtMS(p50), fmtMS(p99), len(ds), loadavg())
			}
		})
	}
}

// fakeCgroups writes n containers' v1 cgroup files under root.
func fakeCgroups(b *testing.B, root string, n int) []isolation.TaskRef {
	files := map[string]string{
		"memory/%s/memory.usage_in_bytes":     "104857600\n",
		"memory/%s/memory.max_usage_in_bytes": "209715200\n",
		"memory/%s/memory.limit_in_bytes":     "268435456\n",
		"memory/%s/memory.oom_control":        "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
		"cpuacct/%s/cpuacct.stat":             "user 250\nsystem 50\n",
		"cpu/%s/cpu.stat":                     "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n",
		"pids/%s/pids.current":                "7\n",
		"pids/%s/pids.max":                    "4096\n",
	}
	// A real v1 memory.stat of a small container: 36 lines.
	stat := "cache 1048576\nrss 99614720\nrss_huge 0\nshmem 0\nmapped_file 0\ndirty 0\nwriteback 0\nswap 0\npgpgin 30000\npgpgout 5000\npgfault 40000\npgmajfault 0\ninactive_anon 99614720\nactive_anon 0\ninactive_file 1048576\nactive_file 0\nunevictable 0\nhierarchical_memory_limit 268435456\nhierarchical_memsw_limit 9223372036854771712\n"
	stat += "total_cache 1048576\ntotal_rss 99614720\ntotal_rss_huge 0\ntotal_shmem 0\ntotal_mapped_file 0\ntotal_dirty 0\ntotal_writeback 0\ntotal_swap 0\ntotal_pgpgin 30000\ntotal_pgpgout 5000\ntotal_pgfault 40000\ntotal_pgmajfault 0\ntotal_inactive_anon 99614720\ntotal_active_anon 0\ntotal_inactive_file 1048576\ntotal_active_file 0\ntotal_unevictable 0\n"
	files["memory/%s/memory.stat"] = stat
	refs := make([]isolation.TaskRef, 0, n)
	for i := range n {
		id := fmt.Sprintf("%064x", i+1)
		dir := filepath.Join("mdx/bench", id)
		for pattern, content := range files {
			p := filepath.Join(root, fmt.Sprintf(pattern, dir))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		refs = append(refs, isolation.TaskRef{TaskID: fmt.Sprintf("task-%04d", i), ContainerID: id})
	}
	return refs
}

// statsSource builds /state as the executor's own source does: every running
// task with its stats from the collector.
type statsSource struct {
	refs []isolation.TaskRef
	col  *isolation.Collector
}

func (s *statsSource) State() status.State {
	stats := s.col.Stats(s.refs)
	st := status.State{ExecutorID: "bench", Isolation: &status.IsolationState{Mode: "nested"}, Tasks: make([]status.Task, 0, len(s.refs))}
	for _, r := range s.refs {
		t := status.Task{TaskID: r.TaskID, State: "TASK_RUNNING", ContainerID: r.ContainerID}
		if x, ok := stats[r.ContainerID]; ok {
			t.Stats = &status.TaskStats{CPUUserSeconds: x.CPUUserSeconds, CPUSystemSeconds: x.CPUSystemSeconds,
				MemoryBytes: x.MemoryBytes, MemoryPeakBytes: x.MemoryPeakBytes, MemoryRSSBytes: x.MemoryRSSBytes,
				MemoryCacheBytes: x.MemoryCacheBytes, MemoryLimitBytes: x.MemoryLimitBytes, Pids: x.Pids,
				PidsLimit: x.PidsLimit, OOMKills: x.OOMKills, ReadAt: x.ReadAt}
		}
		st.Tasks = append(st.Tasks, t)
	}
	return st
}

// serveStatus serves src and reg on a status socket until the benchmark ends
// and returns a client for it.
func serveStatus(b *testing.B, src status.Source, reg *prometheus.Registry) *http.Client {
	path := filepath.Join(b.TempDir(), "executor.sock")
	ln, err := status.Listen(path)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = status.New(src, reg, nil).Serve(ctx, ln)
	}()
	b.Cleanup(func() { cancel(); <-done })
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return status.Dial(ctx, path)
	}}}
}
