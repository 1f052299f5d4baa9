// Package leak holds the executor's resource leak test: it runs the real
// binary under the local agent against the real Docker Engine and checks that
// file descriptors, goroutines and Docker connections do not grow with the
// number of tasks that have come and gone (the idea of node_exporter's
// TestFileDescriptorLeak).
package leak

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/agent/localagent"
	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
	"github.com/mdx-executor/mdx/status"
)

func TestMain(m *testing.M) { containerdtest.Main(m) }

const (
	// Tasks run after the warm-up, at most inFlight at once.
	// 400 tasks: the Docker daemon on the 2-core test machines starts about
	// 1.5 containers a second when 50 start at once (fuse-overlayfs), so
	// 1,000 did not fit the test's deadline; the slack below is fixed, so
	// 400 still fail on one leaked descriptor per 40 tasks.
	warmup   = 50
	tasks    = 400
	inFlight = 50

	// Allowed growth over the warmed-up baseline: fixed, not proportional
	// to the number of tasks.
	fdSlack        = 10
	goroutineSlack = 20
	connSlack      = 2

	// The executor's gauge of open connections to the Docker daemon.
	connMetric = "mesos_executor_docker_connections"
)

// sample is one reading of the executor's resources.
type sample struct {
	fds, goroutines, metricFDs int
	conns                      int // -1: the executor does not export connMetric
}

func (s sample) String() string {
	conns := "n/a"
	if s.conns >= 0 {
		conns = strconv.Itoa(s.conns)
	}
	return fmt.Sprintf("fds %d (process_open_fds %d), goroutines %d, docker connections %s", s.fds, s.metricFDs, s.goroutines, conns)
}

func TestExecutorLeaks(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped under -short: runs the executor binary with 450 Docker tasks (a few minutes)")
	}
	c := containerdtest.Docker(t)
	image := containerdtest.TaskImage(t, c)
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()

	bin := filepath.Join(t.TempDir(), "executor")
	if err := containerdtest.BuildStatic(ctx, bin, "./cmd/executor"); err != nil {
		t.Fatal(err)
	}

	fw := "leak-fw-" + containerdtest.RandHex(4)
	la := localagent.New(localagent.Options{FrameworkID: fw, ExecutorID: "leak-executor"})
	if err := la.Start(); err != nil {
		t.Fatal(err)
	}
	defer la.Close()
	sandbox := t.TempDir()
	logPath := filepath.Join(sandbox, "executor.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd, err := la.StartExecutor(ctx, bin, sandbox, map[string]string{
		"EXECUTOR_REMOVE_DELAY": "100ms",
		"EXECUTOR_LOG_LEVEL":    "warn",
	}, logFile, logFile)
	if err != nil {
		t.Fatal(err)
	}
	// exited is closed when the executor has exited, with exitErr set.
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("executor log (%s):\n%s", logPath, tail(logPath, 40))
		}
	}()
	select {
	case <-la.Subscribed():
	case <-exited:
		t.Fatalf("executor exited before subscribing: %v", exitErr)
	case <-ctx.Done():
		t.Fatal("executor did not subscribe")
	}

	pid := cmd.Process.Pid
	metrics := status.NewHTTPClient(filepath.Join(sandbox, status.SocketName))
	// A connection per scrape, closed after it, so that the scrape itself
	// costs the same descriptors and goroutines every time.
	metrics.Transport.(*http.Transport).DisableKeepAlives = true
	read := func() sample {
		t.Helper()
		return readSample(t, ctx, metrics, pid)
	}
	t.Logf("after subscribing: %v", read())

	// run launches n tasks, keeping up to inFlight of them running at
	// once, and waits until all are terminal. Every task must finish.
	launched := 0
	run := func(n int, progress func(done int)) {
		t.Helper()
		pending := map[string]bool{}
		done := 0
		for done < n {
			for len(pending) < inFlight && done+len(pending) < n {
				id := fmt.Sprintf("leak-%04d", launched)
				launched++
				pending[id] = true
				la.Launch(localagent.Task(id, map[string]string{
					"docker.image": image,
					"docker.args":  `["echo","x"]`,
					// No network endpoint: Docker's bridge setup halves
					// the rate on this kind of host and is not the
					// executor's to leak.
					"docker.network": "none",
				}, 0.01, 16))
			}
			for id := range pending {
				state, ok := la.TaskState(id)
				if !ok || !terminal(state) {
					continue
				}
				if state != mesos.TASK_FINISHED {
					t.Fatalf("task %s ended %v, want TASK_FINISHED; last update: %+v", id, state, lastStatus(la, id))
				}
				delete(pending, id)
				done++
				if progress != nil {
					progress(done)
				}
			}
			select {
			case <-exited:
				t.Fatalf("executor exited with %d tasks pending: %v", len(pending), exitErr)
			case <-ctx.Done():
				t.Fatalf("%d of %d tasks done: %v", done, n, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	settle := func() sample {
		t.Helper()
		waitRemoved(t, ctx, c, fw)
		// Let the last containers' goroutines (log copiers, exit
		// handling, removal timers) finish.
		time.Sleep(2 * time.Second)
		return read()
	}

	// Warm-up: the first tasks create what lives as long as the executor
	// (idle Docker connections in the pool, the events stream, worker
	// goroutines); only growth after that is a leak.
	start := time.Now()
	run(warmup, nil)
	base := settle()
	t.Logf("baseline after %d warm-up tasks (%v): %v", warmup, time.Since(start).Round(time.Millisecond), base)

	start = time.Now()
	run(tasks, func(done int) {
		if done%100 == 0 {
			t.Logf("%d tasks done (%v): %v", done, time.Since(start).Round(time.Millisecond), read())
		}
	})
	ran := time.Since(start)
	waitRemoved(t, ctx, c, fw)
	t.Logf("%d tasks launched and finished in %v (%.1f tasks/s), containers removed after %v",
		tasks, ran.Round(time.Millisecond), float64(tasks)/ran.Seconds(), time.Since(start).Round(time.Millisecond))

	// Poll: idle connections and exiting goroutines may take a moment.
	var end sample
	ok := func(s sample) bool {
		return s.fds <= base.fds+fdSlack && s.goroutines <= base.goroutines+goroutineSlack &&
			(s.conns < 0 || s.conns <= base.conns+connSlack)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		end = read()
		if ok(end) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("after %d more tasks: %v", tasks, end)
	if end.fds > base.fds+fdSlack {
		t.Errorf("open fds grew from %d to %d over %d tasks (allowed +%d); %s", base.fds, end.fds, tasks, fdSlack, fdKinds(pid))
	}
	if end.goroutines > base.goroutines+goroutineSlack {
		t.Errorf("goroutines grew from %d to %d over %d tasks (allowed +%d)", base.goroutines, end.goroutines, tasks, goroutineSlack)
	}
	switch {
	case end.conns < 0:
		t.Logf("the executor exports no %s yet; Docker connections are covered by the fd count only", connMetric)
	case end.conns > base.conns+connSlack:
		t.Errorf("docker connections grew from %d to %d over %d tasks (allowed +%d)", base.conns, end.conns, tasks, connSlack)
	}

	la.Shutdown()
	select {
	case <-exited:
		if exitErr != nil {
			t.Errorf("executor exit after SHUTDOWN: %v", exitErr)
		}
	case <-time.After(60 * time.Second):
		t.Error("executor did not exit within 60s of SHUTDOWN")
	}
}

// readSample reads the executor's fd count from /proc and its metrics from
// the status socket.
func readSample(t *testing.T, ctx context.Context, client *http.Client, pid int) sample {
	t.Helper()
	m := scrape(t, ctx, client)
	s := sample{
		fds:        countFDs(t, pid),
		goroutines: int(m["go_goroutines"]),
		metricFDs:  int(m["process_open_fds"]),
		conns:      -1,
	}
	if v, ok := m[connMetric]; ok {
		s.conns = int(v)
	}
	if _, ok := m["go_goroutines"]; !ok {
		t.Fatal("the executor's /metrics has no go_goroutines")
	}
	return s
}

// scrape returns the unlabelled samples of the executor's /metrics.
func scrape(t *testing.T, ctx context.Context, client *http.Client) map[string]float64 {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, "http://executor/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.Contains(line, "{") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.Fields(value)[0], 64); err == nil {
			out[name] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	return out
}

func countFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("executor fds: %v", err)
	}
	return len(ents)
}

// fdKinds summarises what the executor's descriptors point at, for the
// failure message: "socket 12, pipe 4, /path 1, ...".
func fdKinds(pid int) string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err.Error()
	}
	kinds := map[string]int{}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if i := strings.Index(target, ":["); i > 0 {
			target = target[:i] // socket:[123] -> socket
		}
		kinds[target]++
	}
	return fmt.Sprint(kinds)
}

func terminal(s mesos.TaskState) bool {
	switch s {
	case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_ERROR,
		mesos.TASK_LOST, mesos.TASK_DROPPED, mesos.TASK_GONE:
		return true
	}
	return false
}

func lastStatus(la *localagent.Agent, id string) mesos.TaskStatus {
	var last mesos.TaskStatus
	for _, u := range la.Updates() {
		if u.Status.TaskID.Value == id {
			last = u.Status
		}
	}
	return last
}

// waitRemoved waits until no container of the framework is left.
func waitRemoved(t *testing.T, ctx context.Context, c *containerd.Client, fw string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		left, err := c.List(ctx, map[string]string{containerd.LabelFramework: fw}, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d containers not removed after 2 minutes", len(left))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
