package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/agent/localagent"
	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
	"github.com/mdx-executor/mdx/internal/testenv"
	"github.com/mdx-executor/mdx/status"
)

// Bounds of the waits. They only decide how long a broken or very slow run
// takes to fail; none of them is part of a measurement.
const (
	subscribeTimeout = time.Minute
	dockerTimeout    = time.Minute      // one Docker call of the harness
	exitTimeout      = 3 * time.Minute  // executor exit after SHUTDOWN, with hundreds of tasks
	cleanupTimeout   = 5 * time.Minute  // removing what a run left behind
	logTailBytes     = 64 << 10         // of the executor's log, printed when a benchmark fails
	removeInFlight   = 16               // concurrent removals of the cleanup
	settle           = 3 * time.Second  // quiet time before a resource reading
	statusTimeout    = 30 * time.Second // one request to the status socket
)

// setup is what every benchmark of a run shares: the engine, the task image
// and the executor binary, made once.
type setup struct {
	docker   *containerd.Client
	image    string
	executor string // the binary built from ./cmd/executor
}

var (
	setupOnce sync.Once
	shared    setup
	setupErr  error
	buildDir  string
)

// getSetup connects to Docker (skipping b without a daemon), imports the task
// image and builds the executor, once per run.
func getSetup(b *testing.B) setup {
	b.Helper()
	if testing.Short() {
		skip(b, "the benchmarks run real containers on the Docker Engine; skipped by -short")
	}
	// go test prints a benchmark's skip reason only with -v: probe the
	// daemon here to say why on every run. With CI=true containerdtest
	// fails instead.
	if !testenv.InCI() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		dc, err := containerd.New(ctx, containerd.Config{}, nil)
		cancel()
		if err != nil {
			skip(b, fmt.Sprintf("docker not reachable: %v", err))
		}
		_ = dc.Close()
	}
	docker := containerdtest.Docker(b)
	image := containerdtest.TaskImage(b, docker)
	setupOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mdx-bench-bin-")
		if err != nil {
			setupErr = err
			return
		}
		buildDir = dir
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		bin := filepath.Join(dir, "executor")
		// CGO_ENABLED=0, as `make build` builds what agents run.
		if err := containerdtest.BuildStatic(ctx, bin, "./cmd/executor"); err != nil {
			setupErr = err
			return
		}
		shared = setup{docker: docker, image: image, executor: bin}
	})
	if setupErr != nil {
		b.Fatalf("set up the benchmarks: %v", setupErr)
	}
	return shared
}

// skip prints why the benchmarks do not run, then skips b.
func skip(b *testing.B, reason string) {
	b.Helper()
	fmt.Printf("%s: skipped: %s\n", b.Name(), reason)
	b.Skip(reason)
}

// removeBuildDir is run by TestMain's containerdtest.Run after the benchmarks.
func removeBuildDir() error {
	if buildDir != "" {
		return os.RemoveAll(buildDir)
	}
	return nil
}

// executorProc is one executor process under its own local agent, with its
// own framework id (so its containers can be found and removed by label) and
// its own sandbox, where its status socket lives.
type executorProc struct {
	b       *testing.B
	s       setup
	la      *localagent.Agent
	fw, ex  string
	sandbox string
	logPath string
	status  *http.Client

	cmd     *exec.Cmd
	kill    context.CancelFunc // SIGKILLs the executor's process group
	exited  chan struct{}      // closed when the executor has exited
	waitErr error              // cmd.Wait's result, set before exited is closed
}

// startExecutor starts a local agent and an executor under it, with env added
// to the executor's environment, and waits until the executor has
// subscribed. The cleanup sends SHUTDOWN, waits for the exit (SIGKILL after
// exitTimeout), removes every container left with the framework id, and
// prints the end of the executor's log when b failed.
func startExecutor(b *testing.B, s setup, name string, env map[string]string) *executorProc {
	b.Helper()
	// The deadlines of the executor's Docker calls decide when a slow
	// daemon fails a task, which is not what a benchmark measures: on a
	// shared, loaded machine one inspect can take more than the default
	// 30 s and would end the run.
	env = maps.Clone(env)
	if env == nil {
		env = map[string]string{}
	}
	for _, k := range []string{"EXECUTOR_DOCKER_TIMEOUT", "EXECUTOR_FACTS_TIMEOUT"} {
		if _, ok := env[k]; !ok {
			env[k] = "2m"
		}
	}
	suffix := containerdtest.RandHex(4)
	// A short sandbox path: the status socket lives in it.
	sandbox, err := os.MkdirTemp("", "mdx-bench-")
	if err != nil {
		b.Fatal(err)
	}
	e := &executorProc{
		b:       b,
		s:       s,
		fw:      "bench-" + name + "-" + suffix,
		ex:      "ex-" + suffix,
		sandbox: sandbox,
		exited:  make(chan struct{}),
	}
	e.status = status.NewHTTPClient(filepath.Join(sandbox, status.SocketName))
	logDir, err := os.MkdirTemp("", "mdx-bench-log-")
	if err != nil {
		b.Fatal(err)
	}
	e.logPath = filepath.Join(logDir, "executor.log")
	logFile, err := os.Create(e.logPath)
	if err != nil {
		b.Fatal(err)
	}
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	e.la = localagent.New(localagent.Options{
		FrameworkID:  e.fw,
		ExecutorID:   e.ex,
		Capabilities: []mesos.FrameworkInfo_Capability_Type{mesos.FrameworkInfo_Capability_TASK_KILLING_STATE},
		Log:          logrus.NewEntry(quiet),
	})
	if err := e.la.Start(); err != nil {
		b.Fatal(err)
	}
	// Not the benchmark's context: the cleanup wants an orderly SHUTDOWN
	// before anything is killed.
	ctx, kill := context.WithCancel(context.Background())
	e.kill = kill
	e.cmd, err = e.la.StartExecutor(ctx, s.executor, sandbox, env, logFile, logFile)
	if err != nil {
		kill()
		e.la.Close()
		b.Fatal(err)
	}
	go func() {
		e.waitErr = e.cmd.Wait()
		close(e.exited)
	}()
	b.Cleanup(func() {
		e.la.Shutdown()
		select {
		case <-e.exited:
			if e.waitErr != nil {
				b.Logf("executor %s exited with %v after SHUTDOWN", e.fw, e.waitErr)
			}
		case <-time.After(exitTimeout):
			b.Errorf("executor %s still running %v after SHUTDOWN; killing it", e.fw, exitTimeout)
			kill()
			<-e.exited
		}
		kill()
		e.la.Close()
		if err := removeByLabel(s.docker, containerd.LabelFramework, e.fw); err != nil {
			b.Errorf("remove the containers of %s: %v", e.fw, err)
		}
		_ = logFile.Close()
		if b.Failed() {
			b.Logf("executor log (%s), last %d KiB:\n%s", e.logPath, logTailBytes>>10, tail(e.logPath))
		} else {
			_ = os.RemoveAll(logDir)
		}
		_ = os.RemoveAll(sandbox)
	})

	select {
	case <-e.la.Subscribed():
	case <-e.exited:
		b.Fatalf("executor exited before subscribing: %v", e.waitErr)
	case <-time.After(subscribeTimeout):
		b.Fatalf("executor did not subscribe within %v", subscribeTimeout)
	}
	return e
}

// pid is the executor's process id: the agent starts the binary itself, with
// no shell in between.
func (e *executorProc) pid() int { return e.cmd.Process.Pid }

// task returns a task running the test program with args, at the smallest
// resources of the issue (0.01 cpus, 32 MB).
func (e *executorProc) task(id string, args ...string) mesos.TaskInfo {
	return localagent.Task(id, map[string]string{
		"docker.image": e.s.image,
		"docker.args":  jsonArray(args),
	}, 0.01, 32)
}

// waitStates waits until every task in ids has an update in state want and
// returns those updates by task id. A task reaching another terminal state
// first, the executor exiting, or timeout fails it.
func (e *executorProc) waitStates(ids []string, want mesos.TaskState, timeout time.Duration) (map[string]localagent.Update, error) {
	pending := make(map[string]bool, len(ids))
	for _, id := range ids {
		pending[id] = true
	}
	got := make(map[string]localagent.Update, len(ids))
	var bad error
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case <-e.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	_, err := e.la.WaitUpdate(ctx, func(u localagent.Update) bool {
		id := u.Status.TaskID.Value
		if !pending[id] {
			return false
		}
		switch st := u.Status.GetState(); {
		case st == want:
			delete(pending, id)
			got[id] = u
		case isTerminal(st):
			bad = fmt.Errorf("task %s: %s (%s) %q, want %s", id, st, u.Status.GetReason(), u.Status.GetMessage(), want)
			return true
		}
		return len(pending) == 0
	})
	if bad != nil {
		return got, bad
	}
	if err != nil {
		select {
		case <-e.exited:
			return got, fmt.Errorf("executor exited (%v) with %d tasks not %s", e.waitErr, len(pending), want)
		default:
		}
		return got, fmt.Errorf("%d of %d tasks not %s: %w", len(pending), len(ids), want, err)
	}
	return got, nil
}

// get fetches a page of the status socket.
func (e *executorProc) get(page string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	return getPage(ctx, e.status, page)
}

func getPage(ctx context.Context, c *http.Client, page string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://executor"+page, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", page, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", page, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.200s", page, resp.Status, body)
	}
	return body, nil
}

// resources is one reading of the executor's footprint.
type resources struct {
	rssKB, anonKB int64
	goroutines    int
	fds           int
	// heapKB and stackKB are the Go heap and goroutine stacks in use.
	heapKB, stackKB int64
}

// readResources reads VmRSS and RssAnon from /proc and the goroutine and
// open-file counts from /metrics.
func (e *executorProc) readResources() (resources, error) {
	var r resources
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", e.pid()))
	if err != nil {
		return r, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			r.rssKB = n
		case "RssAnon":
			r.anonKB = n
		}
	}
	if err := sc.Err(); err != nil {
		return r, err
	}
	if r.rssKB == 0 {
		return r, errors.New("no VmRSS in /proc/PID/status")
	}
	body, err := e.get("/metrics")
	if err != nil {
		return r, err
	}
	m := unlabelled(body)
	g, ok := m["go_goroutines"]
	if !ok {
		return r, errors.New("/metrics has no go_goroutines")
	}
	r.goroutines = int(g)
	r.fds = int(m["process_open_fds"])
	r.heapKB = int64(m["go_memstats_heap_inuse_bytes"]) >> 10
	r.stackKB = int64(m["go_memstats_stack_inuse_bytes"]) >> 10
	return r, nil
}

// unlabelled returns the samples without labels of a Prometheus text page.
func unlabelled(page []byte) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(string(page), "\n") {
		if line == "" || line[0] == '#' || strings.Contains(line, "{") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = v
		}
	}
	return out
}

// profile saves the executor's pprof page (e.g. "heap",
// "profile?seconds=10") as DIR/name when -pprof is set; it returns at once
// and the returned function waits for the download.
func (e *executorProc) profile(page, name string) (wait func()) {
	return e.save("/debug/pprof/"+page, name)
}

// save saves a page of the status socket as DIR/name when -pprof is set, in
// the background; the returned function waits for it.
func (e *executorProc) save(page, name string) (wait func()) {
	if *pprofDir == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		body, err := getPage(ctx, e.status, page)
		if err != nil {
			e.b.Logf("profile %s: %v", page, err)
			return
		}
		if err := os.MkdirAll(*pprofDir, 0o755); err != nil {
			e.b.Logf("profile %s: %v", page, err)
			return
		}
		path := filepath.Join(*pprofDir, name)
		if err := os.WriteFile(path, body, 0o644); err != nil {
			e.b.Logf("profile %s: %v", page, err)
			return
		}
		e.b.Logf("saved the executor's %s as %s", page, path)
	}()
	return func() { <-done }
}

// removeByLabel force-removes every container with label key=value, a few at
// a time.
func removeByLabel(dc *containerd.Client, key, value string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	list, err := dc.List(ctx, map[string]string{key: value}, true)
	if err != nil {
		return err
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, removeInFlight)
	)
	for _, c := range list {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := dc.Remove(ctx, c.ID); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func isTerminal(s mesos.TaskState) bool {
	switch s {
	case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_LOST,
		mesos.TASK_ERROR, mesos.TASK_DROPPED, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}

// tail returns the end of a file.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > logTailBytes {
		_, _ = f.Seek(-logTailBytes, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
