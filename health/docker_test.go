package health_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
	"github.com/mdx-executor/mdx/health"
)

// The tests in this file probe real containers of the test image
// (test/taskbin, whose `serve PORT` answers NNN on /status/NNN) through the
// Docker Engine. They are skipped with -short.

func TestMain(m *testing.M) { containerdtest.Main(m) }

var _ health.Execer = (*containerd.Client)(nil)

// fast is a Spec that probes every 200ms from the start.
func fast(typ health.Type) *health.Spec {
	return &health.Spec{Type: typ, Path: "/", Scheme: "http", Interval: 200 * time.Millisecond,
		Timeout: 2 * time.Second, Failures: 3}
}

func requireDocker(t *testing.T) (*containerd.Client, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: needs the Docker Engine, and -short is set")
	}
	c := containerdtest.Docker(t)
	return c, containerdtest.TaskImage(t, c)
}

// runContainer starts the test image with cmd on network ("" = bridge) and
// returns its target as the task manager builds it from an inspect: always
// the pid, whose network namespace every probe runs in; the IP only as
// information.
func runContainer(t *testing.T, c *containerd.Client, image, network string, cmd ...string) health.Target {
	t.Helper()
	fw, ex, task := "fw-test", "ex-health-"+containerdtest.RandHex(4), "task-"+containerdtest.RandHex(4)
	id, err := c.Create(t.Context(), containerd.Spec{
		Name:  containerd.ContainerName(fw, ex, task),
		Image: image,
		Cmd:   cmd,
		Labels: map[string]string{
			containerd.LabelFramework: fw, containerd.LabelExecutor: ex, containerd.LabelTask: task,
		},
		Network: network,
		Init:    true,
	})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Remove(ctx, id); err != nil {
			t.Errorf("remove container: %v", err)
		}
	})
	if err := c.Start(t.Context(), id); err != nil {
		t.Fatalf("start: %v", err)
	}
	info, err := c.Inspect(t.Context(), id)
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	tg := health.Target{TaskID: task, ContainerID: id, Pid: info.Pid, HostNetwork: network == "host"}
	if len(info.IPs) > 0 && network != "host" && network != "none" {
		tg.IP = info.IPs[0]
	}
	if tg.Pid <= 0 || (tg.IP == "" && network == "") {
		t.Fatalf("inspect = %+v: want a pid, and an IP on the bridge", info)
	}
	return tg
}

// supervise runs a Supervisor until the test ends, with t's logs.
func supervise(t *testing.T, c *containerd.Client, opts health.Options) *health.Supervisor {
	t.Helper()
	l := logrus.New()
	l.SetOutput(testWriter{t})
	l.SetLevel(logrus.InfoLevel)
	s := health.NewSupervisor(opts, c, logrus.NewEntry(l))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run() = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of its ctx ending")
		}
	})
	return s
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// results collects one check's reports.
type results chan health.Result

func newResults() results { return make(results, 1000) }

func (r results) report(res health.Result) { r <- res }

// next returns the next report, failing the test after timeout.
func (r results) next(t *testing.T, timeout time.Duration) health.Result {
	t.Helper()
	select {
	case res := <-r:
		t.Logf("report: %+v", res)
		return res
	case <-time.After(timeout):
		t.Fatalf("no health report within %v", timeout)
		return health.Result{}
	}
}

// none fails if a report arrives within d.
func (r results) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case res := <-r:
		t.Errorf("unexpected report: %+v", res)
	case <-time.After(d):
	}
}

func TestDockerHTTP(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	tg := runContainer(t, c, image, "", "serve", "8080")
	s := supervise(t, c, health.Options{})
	base := "HTTP GET http://127.0.0.1:8080"
	in := " " + inNetns(tg)

	// The server needs a moment: the grace period hides the refusals.
	ok := newResults()
	spec := fast(health.HTTP)
	spec.Port, spec.Grace = 8080, 20*time.Second
	s.Start(tg, spec, ok.report)
	if r := ok.next(t, 20*time.Second); !r.Healthy || r.Kill || r.Message != base+"/"+in+" returned 200" || r.TaskID != tg.TaskID {
		t.Fatalf("first report = %+v, want healthy from %s/", r, base)
	}
	if last, found := s.Last(tg.TaskID); !found || !last.Healthy || last.Time.IsZero() {
		t.Errorf("Last() = %+v, %v", last, found)
	}

	// A second task on the same container whose path answers 503: it was
	// never healthy, has no grace, and is killed after 3 failures, once.
	sick := newResults()
	sickTarget := tg
	sickTarget.TaskID += "-503"
	spec = fast(health.HTTP)
	spec.Port, spec.Path = 8080, "/status/503"
	s.Start(sickTarget, spec, sick.report)
	if r := sick.next(t, 10*time.Second); r.Healthy || r.Kill || r.ConsecutiveFailures != 1 || r.Message != base+"/status/503"+in+" returned 503" {
		t.Errorf("first report = %+v, want unhealthy after one 503", r)
	}
	if r := sick.next(t, 10*time.Second); r.Healthy || !r.Kill || r.ConsecutiveFailures != 3 || !strings.Contains(r.Message, "returned 503") {
		t.Errorf("second report = %+v, want the kill after 3 failures", r)
	}
	sick.none(t, time.Second)
	if last, _ := s.Last(sickTarget.TaskID); !last.Killed {
		t.Errorf("Last() = %+v, want Killed", last)
	}

	// The same path with statuses accepting 503 is healthy.
	accepted := newResults()
	acceptTarget := tg
	acceptTarget.TaskID += "-statuses"
	spec.Statuses = []uint32{200, 503}
	s.Start(acceptTarget, spec, accepted.report)
	if r := accepted.next(t, 10*time.Second); !r.Healthy || r.Message != base+"/status/503"+in+" returned 503" {
		t.Errorf("report with statuses [200 503] = %+v, want healthy", r)
	}

	// The healthy task stayed healthy and quiet all along.
	ok.none(t, 0)
	for _, id := range []string{tg.TaskID, sickTarget.TaskID, acceptTarget.TaskID} {
		s.Stop(id)
	}
}

func TestDockerHTTPRecoversAndFails(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	// Serving starts after 1s: refused until then, which is about 5
	// failures, below the threshold of 10. Probed through the container's
	// netns, held from Start: after the kill the probes go to the dead
	// namespace, never to whatever takes the container's address.
	tg := runContainer(t, c, image, "none", "sleep", "1s", "--", "serve", "8080")
	s := supervise(t, c, health.Options{})
	res := newResults()
	spec := fast(health.HTTP)
	spec.Port, spec.Failures, spec.Timeout = 8080, 10, 300*time.Millisecond
	s.Start(tg, spec, res.report)

	r := res.next(t, 10*time.Second)
	if r.Healthy || !strings.Contains(r.Message, "connection refused") {
		t.Fatalf("first report = %+v, want unhealthy: connection refused", r)
	}
	if r = res.next(t, 15*time.Second); !r.Healthy || r.ConsecutiveFailures != 0 {
		t.Fatalf("second report = %+v, want healthy once the server is up", r)
	}
	if r.Kill {
		t.Fatal("killed before the server came up")
	}

	// The container dies: the probes fail (timeouts or unreachable) until
	// the threshold.
	if err := c.Kill(t.Context(), tg.ContainerID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	if r = res.next(t, 10*time.Second); r.Healthy || r.Kill {
		t.Errorf("report after the container died = %+v, want unhealthy", r)
	}
	if r = res.next(t, 20*time.Second); !r.Kill || r.ConsecutiveFailures != 10 {
		t.Errorf("report = %+v, want the kill after 10 failures", r)
	}
	s.Stop(tg.TaskID)
}

func TestDockerTCP(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	tg := runContainer(t, c, image, "", "serve", "8080")
	s := supervise(t, c, health.Options{})

	open := newResults()
	spec := fast(health.TCP)
	spec.Port, spec.Grace = 8080, 20*time.Second
	s.Start(tg, spec, open.report)
	if r := open.next(t, 20*time.Second); !r.Healthy || r.Message != fmt.Sprintf("TCP connect 127.0.0.1:8080 %s succeeded", inNetns(tg)) {
		t.Errorf("report = %+v, want healthy", r)
	}

	closed := newResults()
	closedTarget := tg
	closedTarget.TaskID += "-closed"
	spec = fast(health.TCP)
	spec.Port, spec.Failures = 9, 2
	s.Start(closedTarget, spec, closed.report)
	want := fmt.Sprintf("TCP connect 127.0.0.1:9 %s failed: connection refused", inNetns(tg))
	if r := closed.next(t, 10*time.Second); r.Healthy || r.Message != want {
		t.Errorf("report = %+v, want unhealthy with %q", r, want)
	}
	if r := closed.next(t, 10*time.Second); !r.Kill || r.ConsecutiveFailures != 2 {
		t.Errorf("report = %+v, want the kill after 2 failures", r)
	}
	s.Stop(tg.TaskID)
	s.Stop(closedTarget.TaskID)
}

func TestDockerCommand(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	tg := runContainer(t, c, image, "", "sleep", "1h")
	s := supervise(t, c, health.Options{})

	tests := []struct {
		name    string
		labels  map[string]string
		healthy bool
		msg     string
	}{
		{"exit 0", map[string]string{"health.cmd": `["/task", "exit", "0"]`}, true, "command exited with 0"},
		{"exit 1", map[string]string{"health.cmd": `["/task", "exit", "1"]`}, false, "command exited with 1"},
		{"output", map[string]string{"health.cmd": `["/task", "echo", "db", "down", "--", "exit", "2"]`}, false, "command exited with 2: db down"},
		{"timeout", map[string]string{"health.cmd": `["/task", "sleep", "10s"]`, "health.timeout": "300ms"}, false, "command timed out after 300ms"},
	}
	var wg sync.WaitGroup
	for i, tt := range tests {
		labels := map[string]string{"health.type": "cmd", "health.delay": "0s", "health.interval": "200ms", "health.grace": "0s"}
		for k, v := range tt.labels {
			labels[k] = v
		}
		spec, err := health.Parse(nil, labels)
		if err != nil {
			t.Fatalf("%s: Parse(%v): %v", tt.name, labels, err)
		}
		task := tg
		task.TaskID = fmt.Sprintf("%s-%d", tg.TaskID, i)
		res := newResults()
		s.Start(task, spec, res.report)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.Stop(task.TaskID)
			select {
			case r := <-res:
				if r.Healthy != tt.healthy || r.Message != tt.msg {
					t.Errorf("%s: report = %+v, want healthy=%v %q", tt.name, r, tt.healthy, tt.msg)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("%s: no report within 20s", tt.name)
			}
		}()
	}
	wg.Wait()
}

// freePort returns a TCP port that is free on the host right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestDockerHostNetwork(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	port := freePort(t)
	tg := runContainer(t, c, image, "host", "serve", strconv.Itoa(port))
	if tg.IP != "" || !tg.HostNetwork {
		t.Fatalf("target = %+v, want no IP on the host network", tg)
	}
	s := supervise(t, c, health.Options{})
	res := newResults()
	spec := fast(health.HTTP)
	spec.Port, spec.Path, spec.Grace = uint32(port), "/status/204", 20*time.Second
	s.Start(tg, spec, res.report)
	want := fmt.Sprintf("HTTP GET http://127.0.0.1:%d/status/204 (network namespace of pid %d) returned 204", port, tg.Pid)
	if r := res.next(t, 20*time.Second); !r.Healthy || r.Message != want {
		t.Errorf("report = %+v, want healthy: %q", r, want)
	}
	s.Stop(tg.TaskID)
	health.AssertThreadsInOwnNetns(t)
}

// TestDockerNoneNetwork probes a container that has nothing but a loopback:
// only a dial from inside its namespace can reach it.
func TestDockerNoneNetwork(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	tg := runContainer(t, c, image, "none", "serve", "8080")
	if tg.IP != "" || tg.HostNetwork {
		t.Fatalf("target = %+v, want no IP on the none network", tg)
	}
	s := supervise(t, c, health.Options{})

	web := newResults()
	spec := fast(health.HTTP)
	spec.Port, spec.Grace = 8080, 20*time.Second
	s.Start(tg, spec, web.report)
	want := fmt.Sprintf("HTTP GET http://127.0.0.1:8080/ (network namespace of pid %d) returned 200", tg.Pid)
	if r := web.next(t, 20*time.Second); !r.Healthy || r.Message != want {
		t.Errorf("HTTP report = %+v, want healthy: %q", r, want)
	}

	closed := newResults()
	closedTarget := tg
	closedTarget.TaskID += "-closed"
	spec = fast(health.TCP)
	spec.Port = 9
	s.Start(closedTarget, spec, closed.report)
	want = fmt.Sprintf("TCP connect 127.0.0.1:9 (network namespace of pid %d) failed: connection refused", tg.Pid)
	if r := closed.next(t, 10*time.Second); r.Healthy || r.Message != want {
		t.Errorf("TCP report = %+v, want %q", r, want)
	}
	s.Stop(tg.TaskID)
	s.Stop(closedTarget.TaskID)
	health.AssertThreadsInOwnNetns(t)
}

func TestDockerGenericCheck(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	tg := runContainer(t, c, image, "", "sleep", "1s", "--", "serve", "8080")
	s := supervise(t, c, health.Options{})

	parse := func(ci *mesos.CheckInfo) *health.CheckSpec {
		t.Helper()
		zero, fast := 0.0, 0.2
		ci.DelaySeconds, ci.IntervalSeconds = &zero, &fast
		spec, err := health.ParseCheck(ci)
		if err != nil {
			t.Fatal(err)
		}
		return spec
	}
	type report struct {
		taskID string
		status mesos.CheckStatusInfo
	}
	reports := make(chan report, 100)
	collect := func(taskID string, st mesos.CheckStatusInfo) { reports <- report{taskID, st} }

	// TCP: refused while the server sleeps, then connected. Exactly two
	// reports, since only changes are reported, and never a kill.
	s.StartCheck(tg, parse(&mesos.CheckInfo{Type: mesos.CheckInfo_TCP, TCP: &mesos.CheckInfo_Tcp{Port: 8080}}), collect)
	var got []string
	deadline := time.After(6 * time.Second)
collecting:
	for {
		select {
		case r := <-reports:
			if r.taskID != tg.TaskID || r.status.GetType() != mesos.CheckInfo_TCP || r.status.TCP == nil {
				t.Fatalf("report %s %v: want a TCP status of %s", r.taskID, r.status.String(), tg.TaskID)
			}
			got = append(got, fmt.Sprint(r.status.TCP.GetSucceeded()))
		case <-deadline:
			break collecting
		}
	}
	if strings.Join(got, " ") != "false true" {
		t.Errorf("TCP check results = %v, want [false true]", got)
	}
	s.Stop(tg.TaskID)

	// HTTP and COMMAND results carry the code, whatever it is.
	httpTask, cmdTask := tg, tg
	httpTask.TaskID += "-http"
	cmdTask.TaskID += "-cmd"
	path := "/status/503"
	s.StartCheck(httpTask, parse(&mesos.CheckInfo{Type: mesos.CheckInfo_HTTP, HTTP: &mesos.CheckInfo_Http{Port: 8080, Path: &path}}), collect)
	cmd, shell := "exit 3", true // /bin/sh -c "exit 3"
	s.StartCheck(cmdTask, parse(&mesos.CheckInfo{Type: mesos.CheckInfo_COMMAND,
		Command: &mesos.CheckInfo_Command{Command: mesos.CommandInfo{Value: &cmd, Shell: &shell}}}), collect)
	seen := map[string]string{}
	for len(seen) < 2 {
		select {
		case r := <-reports:
			seen[r.taskID] = r.status.String()
			switch r.taskID {
			case httpTask.TaskID:
				if r.status.HTTP.GetStatusCode() != 503 {
					t.Errorf("HTTP check = %v, want status_code 503", r.status.String())
				}
			case cmdTask.TaskID:
				if r.status.Command == nil || r.status.Command.GetExitCode() != 3 {
					t.Errorf("COMMAND check = %v, want exit_code 3", r.status.String())
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("reports so far %v: want one from each check within 10s", seen)
		}
	}
	s.Stop(httpTask.TaskID)
	s.Stop(cmdTask.TaskID)
}

// TestDockerStopLeavesNoGoroutine runs many checks of every kind, stops them,
// and looks for any goroutine of the package still running. It is not
// parallel, so the other tests' checks are not running meanwhile.
func TestDockerStopLeavesNoGoroutine(t *testing.T) {
	c, image := requireDocker(t)
	bridge := runContainer(t, c, image, "", "serve", "8080")
	none := runContainer(t, c, image, "none", "serve", "8080")
	s := supervise(t, c, health.Options{MaxConcurrent: 4})

	var ids []string
	for i := range 10 {
		for _, tg := range []health.Target{bridge, none} {
			tg.TaskID = fmt.Sprintf("%s-%d", tg.TaskID, i)
			ids = append(ids, tg.TaskID)
			for _, typ := range []health.Type{health.HTTP, health.TCP} {
				spec := fast(typ)
				spec.Port, spec.Grace, spec.Interval = 8080, time.Minute, 50*time.Millisecond
				if typ == health.TCP {
					s.StartCheck(tg, &health.CheckSpec{Type: typ, Port: 8080, Interval: 50 * time.Millisecond, Timeout: time.Second}, nil)
				} else {
					s.Start(tg, spec, nil)
				}
			}
		}
	}
	cmd := bridge
	cmd.TaskID += "-cmd"
	ids = append(ids, cmd.TaskID)
	spec := fast(health.Command)
	spec.Cmd, spec.Interval = []string{"/task", "sleep", "1h"}, time.Millisecond
	s.Start(cmd, spec, nil) // Stop must cancel the exec in flight
	time.Sleep(1500 * time.Millisecond)
	if n := len(healthGoroutines()); n < len(ids) {
		t.Fatalf("%d goroutines of package health while %d tasks are checked: the stack filter is broken", n, len(ids))
	}

	stopped := time.Now()
	for _, id := range ids {
		s.Stop(id)
	}
	deadline := stopped.Add(10 * time.Second)
	for {
		left := healthGoroutines()
		if len(left) == 0 {
			t.Logf("all check goroutines ended %v after Stop", time.Since(stopped).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of package health still running 10s after Stop:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	health.AssertThreadsInOwnNetns(t)
}

// healthGoroutines returns the stacks of the goroutines running code of
// package health, apart from Supervisor.Run and the tests themselves.
func healthGoroutines() []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		s := string(g)
		if strings.Contains(s, "mdx/health.") && !strings.Contains(s, "health.(*Supervisor).Run") &&
			!strings.Contains(s, "mdx/health_test.") {
			out = append(out, s)
		}
	}
	return out
}

// BenchmarkDocker200HTTPChecks measures the executor-side CPU of 200 tasks
// with an HTTP health check every second against a real container (the
// server's CPU is in the container, not in this process). Each iteration runs
// the checks for 10s; run it with -benchtime=1x.
func BenchmarkDocker200HTTPChecks(b *testing.B) {
	c := containerdtest.Docker(b)
	image := containerdtest.TaskImage(b, c)
	tg := benchContainer(b, c, image)
	const tasks, window = 200, 10 * time.Second

	for range b.N {
		s := health.NewSupervisor(health.Options{}, c, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		var mu sync.Mutex
		healthy := 0
		for i := range tasks {
			task := tg
			task.TaskID = fmt.Sprintf("%s-%d", tg.TaskID, i)
			s.Start(task, &health.Spec{Type: health.HTTP, Port: 8080, Path: "/", Interval: time.Second,
				Timeout: 5 * time.Second, Grace: time.Minute, Failures: 3}, func(r health.Result) {
				mu.Lock()
				defer mu.Unlock()
				if r.Healthy {
					healthy++
				}
			})
		}
		time.Sleep(2 * time.Second) // past the jitter: every check is probing
		before, start := cpuTime(b), time.Now()
		time.Sleep(window)
		used, wall := cpuTime(b)-before, time.Since(start)
		cancel()
		<-done
		if healthy != tasks {
			b.Fatalf("%d of %d checks reported healthy", healthy, tasks)
		}
		b.ReportMetric(100*used.Seconds()/wall.Seconds(), "cpu%")
		b.ReportMetric(float64(used.Microseconds())/(float64(tasks)*wall.Seconds()), "cpu-µs/probe")
	}
}

func benchContainer(b *testing.B, c *containerd.Client, image string) health.Target {
	fw, ex, task := "fw-test", "ex-health-"+containerdtest.RandHex(4), "bench-"+containerdtest.RandHex(4)
	id, err := c.Create(b.Context(), containerd.Spec{
		Name: containerd.ContainerName(fw, ex, task), Image: image, Cmd: []string{"serve", "8080"}, Init: true,
		Labels: map[string]string{containerd.LabelFramework: fw, containerd.LabelExecutor: ex, containerd.LabelTask: task},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Remove(context.Background(), id) })
	if err := c.Start(b.Context(), id); err != nil {
		b.Fatal(err)
	}
	info, err := c.Inspect(b.Context(), id)
	if err != nil || len(info.IPs) == 0 {
		b.Fatalf("inspect = %+v, %v", info, err)
	}
	return health.Target{TaskID: task, ContainerID: id, IP: info.IPs[0], Pid: info.Pid}
}

// cpuTime is the user+system CPU time of this process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
