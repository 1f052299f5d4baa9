package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/agent/localagent"
	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/status"
)

// Task counts of issue 3, before -scale.
const (
	launchTasks = 30   // (a) sequential launches, and as many raw ones
	burstTasks  = 100  // (b) launched at once; also the lower RSS reading
	rssTasks    = 300  // (d) running tasks of the higher RSS reading
	exitTasks   = 30   // (c)
	stateTasks  = 1000 // (e) tasks known to the executor
	stateWave   = 50   // (e) tasks in flight while the 1000 are made
	stateGets   = 200  // (e) timed requests
)

// Pacing and bounds of the phases.
const (
	// launchPause separates the samples of (a), so that each launch finds
	// the executor and the daemon done with the previous one.
	launchPause = 200 * time.Millisecond
	// exitSleep is how long each task of (c) runs before it exits 0.
	exitSleep = 2 * time.Second
	// A bound on one wait for a set of updates, generous for a loaded host.
	updateTimeout = 10 * time.Minute
	// stateRemovalWait bounds the wait for the (e) containers to be removed
	// (EXECUTOR_REMOVE_DELAY=1s) before /state is timed.
	stateRemovalWait = 3 * time.Minute
)

// count scales a task count by -scale, keeping at least 2.
func count(n int) int {
	return max(2, int(math.Round(float64(n)**scale)))
}

// BenchmarkExecutor runs the five measurements of issue 3 on one engine and
// one image, then prints the table. Each sub-benchmark does its work once,
// whatever b.N: a run takes minutes of real containers, and its samples are
// the tasks, not the iterations (run it with -benchtime 1x).
func BenchmarkExecutor(b *testing.B) {
	s := getSetup(b)
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	info, err := s.docker.DaemonInfo(ctx)
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	r := &results{env: fmt.Sprintf("Docker %s (API %s, %s, cgroup v%s) at %s; %d CPUs; load average %s at the start; -scale %g",
		info.ServerVersion, info.APIVersion, info.Driver, info.CgroupVersion, s.docker.Host(), runtime.NumCPU(), loadavg(), *scale)}
	b.Run("launch", func(b *testing.B) { benchLaunch(b, s, r) })
	b.Run("burst_rss", func(b *testing.B) { benchBurstRSS(b, s, r) })
	b.Run("exit", func(b *testing.B) { benchExit(b, s, r) })
	b.Run("state", func(b *testing.B) { benchState(b, s, r) })
	r.write(os.Stdout)
}

// benchLaunch is (a): LAUNCH -> TASK_RUNNING of sequential tasks, each next
// to a raw create+start of the same container. The executor and raw samples
// alternate (and alternate which goes first), so that both see the same
// daemon, the same number of running containers and the same host load.
func benchLaunch(b *testing.B, s setup, r *results) {
	n := count(launchTasks)
	e := startExecutor(b, s, "launch", nil)
	raw := newRawRunner(b, s)
	time.Sleep(settle)

	var execLat, rawLat []time.Duration
	ctx := context.Background()
	for i := range n {
		execSample := func() {
			id := fmt.Sprintf("launch-%03d", i)
			t0 := time.Now()
			e.la.Launch(e.task(id, "sleep", "1h"))
			ups, err := e.waitStates([]string{id}, mesos.TASK_RUNNING, updateTimeout)
			if err != nil {
				b.Fatal(err)
			}
			execLat = append(execLat, ups[id].Received.Sub(t0))
		}
		rawSample := func() {
			d, err := raw.run(ctx, fmt.Sprintf("raw-%03d", i), "sleep", "1h")
			if err != nil {
				b.Fatal(err)
			}
			rawLat = append(rawLat, d)
		}
		if i%2 == 0 {
			execSample()
			time.Sleep(launchPause)
			rawSample()
		} else {
			rawSample()
			time.Sleep(launchPause)
			execSample()
		}
		time.Sleep(launchPause)
	}
	r.launch.exec, r.launch.raw = execLat, rawLat
	em, rm := percentile(execLat, 50), percentile(rawLat, 50)
	b.ReportMetric(ms(em), "exec_p50_ms")
	b.ReportMetric(ms(percentile(execLat, 90)), "exec_p90_ms")
	b.ReportMetric(ms(rm), "raw_p50_ms")
	b.ReportMetric(ms(percentile(rawLat, 90)), "raw_p90_ms")
	b.ReportMetric(ratio(em, rm), "p50_ratio")
}

// benchBurstRSS is (b) and (d) on one executor: its RSS idle; a burst of raw
// create+start calls, all in flight at once, then removed; the same number of
// tasks launched at once through the executor; its RSS with them running;
// more tasks up to the higher count; its RSS again.
func benchBurstRSS(b *testing.B, s setup, r *results) {
	n, high := count(burstTasks), count(rssTasks)
	e := startExecutor(b, s, "burst", nil)
	raw := newRawRunner(b, s)
	time.Sleep(settle)
	idle, err := e.readResources()
	if err != nil {
		b.Fatal(err)
	}
	r.rss.idle = idle

	// Raw: n goroutines wait on one start signal, so that all n calls are
	// in flight together, as n LAUNCH events are.
	rawDone := make([]time.Duration, n)
	var wg sync.WaitGroup
	var errOnce sync.Once
	var rawErr error
	startSig := make(chan struct{})
	var t0 time.Time
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startSig
			if _, err := raw.run(context.Background(), fmt.Sprintf("burst-raw-%03d", i), "sleep", "1h"); err != nil {
				errOnce.Do(func() { rawErr = err })
				return
			}
			rawDone[i] = time.Since(t0)
		}()
	}
	time.Sleep(100 * time.Millisecond) // let every goroutine reach the signal
	t0 = time.Now()
	close(startSig)
	wg.Wait()
	rawWall := time.Since(t0)
	if rawErr != nil {
		b.Fatal(rawErr)
	}
	if err := raw.removeAll(); err != nil {
		b.Fatal(err)
	}
	time.Sleep(settle)

	// Executor: n LAUNCH events back to back.
	ids := make([]string, n)
	tasks := make([]mesos.TaskInfo, n)
	for i := range n {
		ids[i] = fmt.Sprintf("burst-%03d", i)
		tasks[i] = e.task(ids[i], "sleep", "1h")
	}
	wait := e.profile(fmt.Sprintf("profile?seconds=%d", int(rawWall.Seconds()*1.5)+2), "burst-cpu.pprof")
	t0 = time.Now()
	for _, t := range tasks {
		e.la.Launch(t)
	}
	ups, err := e.waitStates(ids, mesos.TASK_RUNNING, updateTimeout)
	if err != nil {
		b.Fatal(err)
	}
	wait()
	e.save("/metrics", "burst-metrics.txt")()
	var execWall time.Duration
	execDone := make([]time.Duration, 0, n)
	for _, u := range ups {
		d := u.Received.Sub(t0)
		execDone = append(execDone, d)
		execWall = max(execWall, d)
	}
	r.burst.n, r.burst.exec, r.burst.raw = n, execWall, rawWall
	r.burst.execLat, r.burst.rawLat = execDone, rawDone
	b.ReportMetric(ms(execWall), "exec_wall_ms")
	b.ReportMetric(ms(rawWall), "raw_wall_ms")
	b.ReportMetric(ratio(execWall, rawWall), "wall_ratio")

	time.Sleep(settle)
	low, err := e.readResources()
	if err != nil {
		b.Fatal(err)
	}
	r.rss.low, r.rss.nLow = low, n

	// Up to the higher count, a wave at a time: this part is not timed.
	for next := n; next < high; {
		var wave []string
		for ; next < high && len(wave) < stateWave; next++ {
			id := fmt.Sprintf("rss-%03d", next)
			wave = append(wave, id)
			e.la.Launch(e.task(id, "sleep", "1h"))
		}
		if _, err := e.waitStates(wave, mesos.TASK_RUNNING, updateTimeout); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(settle)
	hi, err := e.readResources()
	if err != nil {
		b.Fatal(err)
	}
	r.rss.high, r.rss.nHigh = hi, high
	e.profile("heap", "heap.pprof")()
	e.profile("goroutine", "goroutine.pprof")()

	b.ReportMetric(float64(idle.rssKB), "rss_idle_KB")
	b.ReportMetric(float64(low.rssKB), fmt.Sprintf("rss_%d_KB", n))
	b.ReportMetric(float64(hi.rssKB), fmt.Sprintf("rss_%d_KB", high))
	b.ReportMetric(float64(hi.rssKB-idle.rssKB)/float64(high), "rss_per_task_KB")
	b.ReportMetric(float64(hi.goroutines), fmt.Sprintf("goroutines_%d", high))
}

// benchExit is (c): tasks that sleep, then exit 0, one at a time (the next
// is launched once the previous has finished, so that no container start
// competes with an exit in the daemon); for each, Docker's State.FinishedAt
// (the real exit, kept readable by EXECUTOR_REMOVE_DELAY=10m) to the receipt
// of TASK_FINISHED at the agent. As Docker's own share, a plain API client
// records FinishedAt to the receipt of the "die" event, and to the end of its
// inspect of the container after that event.
func benchExit(b *testing.B, s setup, r *results) {
	n := count(exitTasks)
	e := startExecutor(b, s, "exit", map[string]string{"EXECUTOR_REMOVE_DELAY": "10m"})
	dies := watchDies(b, e.fw)
	time.Sleep(settle)

	ids := make([]string, n)
	ups := make(map[string]localagent.Update, n)
	for i := range n {
		ids[i] = fmt.Sprintf("exit-%03d", i)
		e.la.Launch(e.task(ids[i], "sleep", exitSleep.String()))
		got, err := e.waitStates(ids[i:i+1], mesos.TASK_FINISHED, updateTimeout)
		if err != nil {
			b.Fatal(err)
		}
		ups[ids[i]] = got[ids[i]]
	}
	time.Sleep(time.Second) // the die watcher's inspects are done
	e.save("/metrics", "exit-metrics.txt")()

	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	list, err := s.docker.List(ctx, map[string]string{containerd.LabelFramework: e.fw}, true)
	if err != nil {
		b.Fatal(err)
	}
	byTask := map[string]string{}
	for _, c := range list {
		byTask[c.Labels[containerd.LabelTask]] = c.ID
	}
	var execLat, dockerLat, inspLat, ownLat []time.Duration
	for _, id := range ids {
		cid, ok := byTask[id]
		if !ok {
			b.Fatalf("task %s: no container (removed before it could be inspected?)", id)
		}
		info, err := s.docker.Inspect(ctx, cid)
		if err != nil {
			b.Fatal(err)
		}
		if info.FinishedAt.IsZero() {
			b.Fatalf("task %s: container %.12s has no FinishedAt", id, cid)
		}
		execLat = append(execLat, ups[id].Received.Sub(info.FinishedAt))
		got, ok, err := dies.received(cid)
		if err != nil {
			b.Fatal(err)
		}
		if ok {
			dockerLat = append(dockerLat, got.event.Sub(info.FinishedAt))
			// The executor's own share: its update after Docker's die
			// event reached a plain client of the same daemon.
			ownLat = append(ownLat, ups[id].Received.Sub(got.event))
			if !got.inspected.IsZero() {
				inspLat = append(inspLat, got.inspected.Sub(info.FinishedAt))
			}
		}
	}
	if len(dockerLat) < len(execLat) {
		b.Logf("the die event of %d of %d containers did not reach the watcher", len(execLat)-len(dockerLat), len(execLat))
	}
	r.exit.exec, r.exit.docker, r.exit.inspect, r.exit.own = execLat, dockerLat, inspLat, ownLat
	b.ReportMetric(ms(percentile(execLat, 50)), "exec_p50_ms")
	b.ReportMetric(ms(percentile(execLat, 99)), "exec_p99_ms")
	b.ReportMetric(ms(percentile(dockerLat, 50)), "die_event_p50_ms")
	b.ReportMetric(ms(percentile(dockerLat, 99)), "die_event_p99_ms")
}

// benchState is (e): GET /state over the Unix socket with many tasks known to
// the executor. The tasks are short (exit 0), launched a wave at a time, and
// their containers are removed after EXECUTOR_REMOVE_DELAY=1s; the executor
// keeps their records. The requests are timed once the removals are done.
func benchState(b *testing.B, s setup, r *results) {
	n := count(stateTasks)
	e := startExecutor(b, s, "state", map[string]string{"EXECUTOR_REMOVE_DELAY": "1s"})
	time.Sleep(settle)
	for next := 0; next < n; {
		var wave []string
		for ; next < n && len(wave) < stateWave; next++ {
			id := fmt.Sprintf("state-%04d", next)
			wave = append(wave, id)
			// network=none: these tasks only have to exist, and a
			// thousand bridge endpoints churned this fast deadlocked the
			// network controller of Docker 20.10 (libnetwork) once.
			t := e.task(id, "exit", "0")
			t.Labels.Labels = append(t.Labels.Labels, mesos.Label{Key: "docker.network", Value: ptrTo("none")})
			e.la.Launch(t)
		}
		if _, err := e.waitStates(wave, mesos.TASK_FINISHED, updateTimeout); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(stateRemovalWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
		left, err := s.docker.List(ctx, map[string]string{containerd.LabelFramework: e.fw}, true)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Logf("%d containers still not removed after %v; timing /state anyway", len(left), stateRemovalWait)
			break
		}
		time.Sleep(time.Second)
	}
	time.Sleep(settle)

	body, err := e.get("/state")
	if err != nil {
		b.Fatal(err)
	}
	var st status.State
	if err := json.Unmarshal(body, &st); err != nil {
		b.Fatalf("decode /state: %v", err)
	}
	if len(st.Tasks) < n {
		b.Fatalf("/state lists %d tasks, want at least %d", len(st.Tasks), n)
	}
	for range 5 { // warm up the connection and the server's buffers
		if _, err := e.get("/state"); err != nil {
			b.Fatal(err)
		}
	}
	wait := e.profile("profile?seconds=5", "state-cpu.pprof")
	lat := make([]time.Duration, 0, stateGets)
	for range stateGets {
		t0 := time.Now()
		if _, err := e.get("/state"); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	wait()
	r.state.tasks, r.state.bytes, r.state.lat = len(st.Tasks), len(body), lat
	b.ReportMetric(ms(percentile(lat, 50)), "state_p50_ms")
	b.ReportMetric(ms(percentile(lat, 99)), "state_p99_ms")
	b.ReportMetric(float64(len(body)), "state_bytes")
}

func ptrTo[T any](v T) *T { return &v }
