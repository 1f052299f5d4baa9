package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/health"
	"github.com/mdx-executor/mdx/policy"
)

// waitTimeout bounds every wait for the manager to do something. It is
// generous on purpose: it is never a timing assertion, only the point at which
// a test stops waiting for something that did not happen.
const waitTimeout = 10 * time.Second

const testImage = "busybox:1.36" // the image of testTask

var _ Runtime = (*fakeRuntime)(nil)
var _ Publisher = (*fakePublisher)(nil)

// fakeRuntime is a Runtime that records every call. A test can hold a call
// (it blocks until released or until its ctx ends), make it fail, choose what
// Inspect says, and end a container's log stream by marking it exited.
//
// Call keys are "EnsureImage <ref>", "Create <task id>", "Start <id>",
// "Inspect <id>", "Kill <id> <signal>", "Remove <id>" and "Logs <id>".
// Create returns the container id "ctr-<task id>".
type fakeRuntime struct {
	// mu guards everything that follows.
	mu     sync.Mutex
	calls  []string
	holds  map[string]chan struct{} // call key -> closed when released
	errs   map[string]error         // call key -> the error it returns
	info   containerd.Info          // Inspect's answer; ID is filled in
	specs  map[string]containerd.Spec
	exited map[string]chan struct{} // container id -> closed when it exits
	stop   chan struct{}            // closed by stopAll: ends every Logs
	ended  map[string]bool          // container id -> its Logs call returned
}

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{
		holds:  map[string]chan struct{}{},
		errs:   map[string]error{},
		specs:  map[string]containerd.Spec{},
		exited: map[string]chan struct{}{},
		stop:   make(chan struct{}),
		ended:  map[string]bool{},
		// A running container has a pid and, on a bridge, an address:
		// the manager waits for both before TASK_RUNNING.
		info: containerd.Info{Pid: 4242, IPs: []string{"172.17.0.2"}},
	}
}

// hold makes the call with this key block until the returned func is called
// (or the call's ctx ends, when it returns ctx.Err()).
func (f *fakeRuntime) hold(key string) (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.holds[key] = ch
	f.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// fail makes the call with this key return err.
func (f *fakeRuntime) fail(key string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[key] = err
}

// setInfo sets what Inspect says. A running container always has a pid and,
// on a bridge, an address, so missing ones get test values; setRawInfo
// leaves them out.
func (f *fakeRuntime) setInfo(info containerd.Info) {
	if info.Pid == 0 {
		info.Pid = 4242
	}
	if info.IPs == nil {
		info.IPs = []string{"172.17.0.2"}
	}
	f.setRawInfo(info)
}

func (f *fakeRuntime) setRawInfo(info containerd.Info) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.info = info
}

// call records key and blocks while the key is held.
func (f *fakeRuntime) call(ctx context.Context, key string) error {
	f.mu.Lock()
	f.calls = append(f.calls, key)
	hold, err := f.holds[key], f.errs[key]
	f.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (f *fakeRuntime) EnsureImageFor(ctx context.Context, _, ref string, force bool) (containerd.ImageResult, error) {
	return containerd.ImageResult{}, f.call(ctx, "EnsureImage "+ref)
}

func (f *fakeRuntime) Create(ctx context.Context, spec containerd.Spec) (string, error) {
	taskID := spec.Labels[containerd.LabelTask]
	if err := f.call(ctx, "Create "+taskID); err != nil {
		return "", err
	}
	id := "ctr-" + taskID
	f.mu.Lock()
	defer f.mu.Unlock()
	// A later run of the same task id gets a container of its own.
	for n := 2; f.hasSpec(id); n++ {
		id = fmt.Sprintf("ctr-%s-%d", taskID, n)
	}
	f.specs[id] = spec
	return id, nil
}

func (f *fakeRuntime) hasSpec(id string) bool {
	_, ok := f.specs[id]
	return ok
}

func (f *fakeRuntime) Start(ctx context.Context, id string) error {
	return f.call(ctx, "Start "+id)
}

func (f *fakeRuntime) Inspect(ctx context.Context, id string) (containerd.Info, error) {
	if err := f.call(ctx, "Inspect "+id); err != nil {
		return containerd.Info{}, err
	}
	exited := f.exitedCh(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	info := f.info
	info.ID, info.Running = id, true
	select {
	case <-exited:
		info.Running = false // as Docker reports an exited container
	default:
	}
	return info, nil
}

func (f *fakeRuntime) Kill(ctx context.Context, id, signal string) error {
	return f.call(ctx, "Kill "+id+" "+signal)
}

func (f *fakeRuntime) Remove(ctx context.Context, id string) error {
	return f.call(ctx, "Remove "+id)
}

// Logs writes one line to each stream, then follows until the container
// exits (when it writes a last line to stdout), ctx ends or the test stops
// the fake.
func (f *fakeRuntime) Logs(ctx context.Context, id string, _ time.Time, stdout, stderr io.Writer) error {
	if err := f.call(ctx, "Logs "+id); err != nil {
		return err
	}
	defer func() {
		f.mu.Lock()
		f.ended[id] = true
		f.mu.Unlock()
	}()
	fmt.Fprintf(stdout, "out of %s\n", id)
	fmt.Fprintf(stderr, "err of %s\n", id)
	select {
	case <-ctx.Done():
	case <-f.exitedCh(id):
		fmt.Fprintf(stdout, "last words of %s\n", id)
	case <-f.stop:
	}
	return nil
}

func (f *fakeRuntime) exitedCh(id string) chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := f.exited[id]
	if ch == nil {
		ch = make(chan struct{})
		f.exited[id] = ch
	}
	return ch
}

// markExited ends the container's log stream, as Docker does when it exits.
func (f *fakeRuntime) markExited(id string) {
	ch := f.exitedCh(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// logsEnded reports whether a Logs call of container id has returned.
func (f *fakeRuntime) logsEnded(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ended[id]
}

// stopAll ends every log stream.
func (f *fakeRuntime) stopAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
}

// count returns how many calls started with prefix.
func (f *fakeRuntime) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// callIndex returns the position of the first call starting with prefix, or
// -1.
func (f *fakeRuntime) callIndex(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.IndexFunc(f.calls, func(c string) bool { return strings.HasPrefix(c, prefix) })
}

// signals returns the signals sent to container id, in order.
func (f *fakeRuntime) signals(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if s, ok := strings.CutPrefix(c, "Kill "+id+" "); ok {
			out = append(out, s)
		}
	}
	return out
}

// fakeRemover records the containers queued for removal.
type fakeRemover struct {
	mu  sync.Mutex
	ids []string
}

func (f *fakeRemover) Enqueue(containerID, _ string, _ time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = append(f.ids, containerID)
}

// queued returns the queued ids, sorted.
func (f *fakeRemover) queued() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.ids)
	sort.Strings(out)
	return out
}

func (f *fakeRuntime) spec(id string) (containerd.Spec, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.specs[id]
	return s, ok
}

// fakePublisher records status updates in order.
type fakePublisher struct {
	// mu guards everything that follows.
	mu         sync.Mutex
	updates    []mesos.TaskStatus
	unacked    int
	unackCalls int
}

func (p *fakePublisher) Update(s mesos.TaskStatus) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	uuid := []byte(fmt.Sprintf("uuid-%d", len(p.updates)+1))
	s.UUID = uuid
	p.updates = append(p.updates, s)
	return uuid
}

// uuidOf returns the uuid Update gave st.
func (p *fakePublisher) uuidOf(st mesos.TaskStatus) []byte { return st.UUID }

func (p *fakePublisher) Unacknowledged() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unackCalls++
	return p.unacked
}

func (p *fakePublisher) setUnacknowledged(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unacked = n
}

func (p *fakePublisher) unacknowledgedCalls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unackCalls
}

// statuses returns the updates sent for one task, in order.
func (p *fakePublisher) statuses(taskID string) []mesos.TaskStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []mesos.TaskStatus
	for _, s := range p.updates {
		if s.TaskID.Value == taskID {
			out = append(out, s)
		}
	}
	return out
}

func (p *fakePublisher) states(taskID string) []mesos.TaskState {
	var out []mesos.TaskState
	for _, s := range p.statuses(taskID) {
		out = append(out, s.GetState())
	}
	return out
}

// testLogger sends the manager's log to t.Log until the test's cleanups have
// run.
func testLogger(t *testing.T) *logrus.Entry {
	var live atomic.Bool
	live.Store(true)
	t.Cleanup(func() { live.Store(false) })
	l := logrus.New()
	l.SetOutput(logWriter{t: t, live: &live})
	l.SetLevel(logrus.DebugLevel)
	return logrus.NewEntry(l)
}

type logWriter struct {
	t    *testing.T
	live *atomic.Bool
}

func (w logWriter) Write(b []byte) (int, error) {
	if w.live.Load() {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

// harness runs one Manager against the fakes.
type harness struct {
	t      *testing.T
	cfg    Config
	m      *Manager
	rt     *fakeRuntime
	pub    *fakePublisher
	rm     *fakeRemover
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned
	err    error         // Run's result, set before done is closed
	syncs  int
}

// newHarness starts a Manager's loop. Zero fields of cfg get test defaults:
// a fresh sandbox and a RemoveDelay so long that containers are only removed
// when a test asks for it.
func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	log := testLogger(t)
	if cfg.SandboxRoot == "" {
		cfg.SandboxRoot = t.TempDir()
	}
	if cfg.RemoveDelay == 0 {
		cfg.RemoveDelay = time.Hour
	}
	if cfg.Policy.FrameworkID == "" {
		cfg.Policy.FrameworkID = "F0"
	}
	if cfg.Policy.ExecutorID == "" {
		cfg.Policy.ExecutorID = "E0"
	}
	h := &harness{t: t, cfg: cfg, rt: newFakeRuntime(), pub: &fakePublisher{}, rm: &fakeRemover{}, done: make(chan struct{})}
	if cfg.Remover == nil {
		cfg.Remover = h.rm
	}
	h.m = New(cfg, h.rt, h.pub, log)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		h.err = h.m.Run(ctx)
		close(h.done)
	}()
	t.Cleanup(func() {
		cancel()
		h.rt.stopAll()
		select {
		case <-h.done:
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return after its ctx was cancelled")
		}
	})
	return h
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func subscribedEvent(killingCap bool) *executor.Event {
	fi := mesos.FrameworkInfo{User: "root", Name: "test"}
	if killingCap {
		fi.Capabilities = []mesos.FrameworkInfo_Capability{{Type: mesos.FrameworkInfo_Capability_TASK_KILLING_STATE}}
	}
	return &executor.Event{Type: executor.Event_SUBSCRIBED, Subscribed: &executor.Event_Subscribed{
		ExecutorInfo:  mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "E0"}},
		FrameworkInfo: fi,
		AgentInfo:     mesos.AgentInfo{Hostname: "agent-1", ID: &mesos.AgentID{Value: "S0"}},
	}}
}

func launchEvent(info *mesos.TaskInfo) *executor.Event {
	return &executor.Event{Type: executor.Event_LAUNCH, Launch: &executor.Event_Launch{Task: *info}}
}

// killEvent is a KILL, with a kill policy override if grace is given.
func killEvent(taskID string, grace ...time.Duration) *executor.Event {
	k := &executor.Event_Kill{TaskID: mesos.TaskID{Value: taskID}}
	if len(grace) > 0 {
		k.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(grace[0])}}
	}
	return &executor.Event{Type: executor.Event_KILL, Kill: k}
}

func shutdownEvent() *executor.Event { return &executor.Event{Type: executor.Event_SHUTDOWN} }

// managerTask is testTask with the given id and labels.
func managerTask(id string, kv ...string) *mesos.TaskInfo {
	ti := testTask()
	ti.Name, ti.TaskID.Value = id, id
	if len(kv) > 0 {
		ti.Labels = labels(kv...)
	}
	return ti
}

func (h *harness) subscribe(killingCap bool) { h.m.HandleEvent(subscribedEvent(killingCap)) }

func (h *harness) launch(info *mesos.TaskInfo) { h.m.HandleEvent(launchEvent(info)) }

// sync returns once the loop has handled everything posted before it: it
// sends a KILL for a task nobody knows and waits for its update.
func (h *harness) sync() {
	h.t.Helper()
	h.syncs++
	id := fmt.Sprintf("sync-%d", h.syncs)
	h.m.HandleEvent(killEvent(id))
	waitFor(h.t, "the loop to handle "+id, func() bool { return len(h.pub.statuses(id)) > 0 })
}

// waitState waits for an update of the task in state s and returns it.
func (h *harness) waitState(taskID string, s mesos.TaskState) mesos.TaskStatus {
	h.t.Helper()
	var got mesos.TaskStatus
	waitFor(h.t, fmt.Sprintf("%s of task %s", s, taskID), func() bool {
		for _, st := range h.pub.statuses(taskID) {
			if st.GetState() == s {
				got = st
				return true
			}
		}
		return false
	})
	return got
}

// waitTerminal waits for the task's terminal update and returns it.
func (h *harness) waitTerminal(taskID string) mesos.TaskStatus {
	h.t.Helper()
	var got mesos.TaskStatus
	waitFor(h.t, "a terminal update of task "+taskID, func() bool {
		for _, st := range h.pub.statuses(taskID) {
			if isTerminal(st.GetState()) {
				got = st
				return true
			}
		}
		return false
	})
	return got
}

// running launches a task and waits for its RUNNING update. It returns the
// container id.
func (h *harness) running(info *mesos.TaskInfo) string {
	h.t.Helper()
	h.launch(info)
	h.waitState(info.TaskID.Value, mesos.TASK_RUNNING)
	return "ctr-" + info.TaskID.Value
}

// exit makes container id exit with code: its log stream ends and the exit
// is reported, as the Docker adapter would.
func (h *harness) exit(id string, code int) {
	h.rt.markExited(id)
	h.m.HandleExit(containerd.Exit{ContainerID: id, ExitCode: code})
}

// waitSignal waits until container id has been sent sig.
func (h *harness) waitSignal(id, sig string) {
	h.t.Helper()
	waitFor(h.t, sig+" to "+id, func() bool { return slices.Contains(h.rt.signals(id), sig) })
}

// waitRun waits for Run to return and returns its error.
func (h *harness) waitRun() error {
	h.t.Helper()
	select {
	case <-h.done:
		return h.err
	case <-time.After(waitTimeout):
		h.t.Fatalf("Run did not return")
		return nil
	}
}

func (h *harness) runReturned() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

func (h *harness) view(taskID string) (View, bool) {
	for _, v := range h.m.Snapshot() {
		if v.TaskID == taskID {
			return v, true
		}
	}
	return View{}, false
}

func checkStates(t *testing.T, taskID string, got []mesos.TaskState, want ...mesos.TaskState) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("updates of task %s = %v; want %v", taskID, got, want)
	}
}

func checkReason(t *testing.T, st mesos.TaskStatus, want mesos.TaskStatus_Reason) {
	t.Helper()
	if st.Reason == nil && want == 0 {
		return
	}
	if st.Reason == nil || *st.Reason != want {
		t.Errorf("%s update of task %s has reason %v; want %v", st.GetState(), st.TaskID.Value, st.Reason, want)
	}
}

func checkMessage(t *testing.T, st mesos.TaskStatus, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(st.GetMessage(), w) {
			t.Errorf("%s update of task %s has message %q; want it to mention %q", st.GetState(), st.TaskID.Value, st.GetMessage(), w)
		}
	}
}

func TestLaunchReportsStartingThenRunning(t *testing.T) {
	h := newHarness(t, Config{})
	h.rt.setInfo(containerd.Info{IPs: []string{"172.17.0.5", "fd00::5"}})
	h.subscribe(false)
	cid := h.running(managerTask("t1"))

	sts := h.pub.statuses("t1")
	checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_RUNNING)
	if len(sts) != 2 {
		t.FailNow()
	}
	if sts[0].ContainerStatus != nil {
		t.Errorf("STARTING update has container status %v; want none before the container runs", sts[0].ContainerStatus)
	}
	var ips []string
	for _, ni := range sts[1].GetContainerStatus().GetNetworkInfos() {
		for _, ip := range ni.IPAddresses {
			ips = append(ips, ip.GetIPAddress())
		}
	}
	if !slices.Contains(ips, "172.17.0.5") {
		t.Errorf("RUNNING update has IP addresses %q; want 172.17.0.5 among them", ips)
	}

	if ie, ic, is := h.rt.callIndex("EnsureImage "+testImage), h.rt.callIndex("Create t1"), h.rt.callIndex("Start "+cid); ie < 0 || ie > ic || ic > is {
		t.Errorf("call order EnsureImage=%d Create=%d Start=%d; want pull, then create, then start", ie, ic, is)
	}
	spec, ok := h.rt.spec(cid)
	if !ok {
		t.Fatalf("no container was created for t1")
	}
	if got := spec.Labels[containerd.LabelTask]; got != "t1" {
		t.Errorf("container label %s = %q; want %q", containerd.LabelTask, got, "t1")
	}
	if !slices.Contains(spec.Env, "MESOS_TASK_ID=t1") {
		t.Errorf("container env = %q; want MESOS_TASK_ID=t1 in it", spec.Env)
	}
	wantMount := containerd.Mount{HostPath: filepath.Join(h.cfg.SandboxRoot, "tasks", "t1", "sandbox"), ContainerPath: containerd.SandboxMountPoint}
	if len(spec.Mounts) == 0 || spec.Mounts[0] != wantMount {
		t.Errorf("container mounts = %+v; want the sandbox mount %+v first", spec.Mounts, wantMount)
	}
	if fi, err := os.Stat(wantMount.HostPath); err != nil || !fi.IsDir() {
		t.Errorf("task sandbox %s: %v; want a directory", wantMount.HostPath, err)
	}

	waitFor(t, "the snapshot to show t1 running", func() bool {
		v, ok := h.view("t1")
		return ok && v.State == "TASK_RUNNING"
	})
	v, _ := h.view("t1")
	if v.ContainerID != cid || v.IP != "172.17.0.5" || v.Image != testImage || v.StartedAt == nil || v.ExitCode != nil {
		t.Errorf("Snapshot() t1 = %+v; want container %s, IP 172.17.0.5, image %s, a start time and no exit code", v, cid, testImage)
	}
}

func TestContainerExit(t *testing.T) {
	tests := []struct {
		name       string
		resources  []mesos.Resource
		exit       containerd.Exit // ContainerID is filled in
		wantState  mesos.TaskState
		wantReason mesos.TaskStatus_Reason
		wantMsg    []string
	}{
		{
			name:      "exit 0 is FINISHED",
			exit:      containerd.Exit{ExitCode: 0},
			wantState: mesos.TASK_FINISHED,
			wantMsg:   []string{"status 0"},
		},
		{
			name:      "exit 3 is FAILED",
			exit:      containerd.Exit{ExitCode: 3},
			wantState: mesos.TASK_FAILED,
			wantMsg:   []string{"status 3"},
		},
		{
			name:      "exit 137 names SIGKILL",
			exit:      containerd.Exit{ExitCode: 137},
			wantState: mesos.TASK_FAILED,
			wantMsg:   []string{"status 137", "signal 9", "SIGKILL"},
		},
		{
			name:      "exit 143 names SIGTERM",
			exit:      containerd.Exit{ExitCode: 143},
			wantState: mesos.TASK_FAILED,
			wantMsg:   []string{"status 143", "signal 15", "SIGTERM"},
		},
		{
			name:      "Docker's error is passed on",
			exit:      containerd.Exit{ExitCode: 127, Error: "exec: \"/app\": no such file"},
			wantState: mesos.TASK_FAILED,
			wantMsg:   []string{"status 127", `"/app": no such file`},
		},
		{
			name:       "OOM kill is a memory limitation",
			resources:  []mesos.Resource{scalar("mem", 256)},
			exit:       containerd.Exit{ExitCode: 137, OOMKilled: true},
			wantState:  mesos.TASK_FAILED,
			wantReason: mesos.REASON_CONTAINER_LIMITATION_MEMORY,
			wantMsg:    []string{"OOM", "256 MiB"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			info := managerTask("t1")
			info.Resources = tt.resources
			cid := h.running(info)

			e := tt.exit
			e.ContainerID, e.TaskID = cid, "t1"
			h.rt.markExited(cid)
			h.m.HandleExit(e)
			st := h.waitTerminal("t1")

			checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_RUNNING, tt.wantState)
			checkReason(t, st, tt.wantReason)
			checkMessage(t, st, tt.wantMsg...)

			// The terminal update does not wait for the log stream; the
			// follower still copies everything into the sandbox.
			dir := filepath.Join(h.cfg.SandboxRoot, "tasks", "t1")
			for file, want := range map[string]string{"stdout": "out of " + cid + "\nlast words of " + cid + "\n", "stderr": "err of " + cid} {
				waitFor(t, "the sandbox "+file+" to hold all output", func() bool {
					b, err := os.ReadFile(filepath.Join(dir, file))
					return err == nil && strings.Contains(string(b), want)
				})
			}

			waitFor(t, "the snapshot to show the exit", func() bool {
				v, _ := h.view("t1")
				return v.ExitCode != nil
			})
			if v, _ := h.view("t1"); *v.ExitCode != tt.exit.ExitCode || v.State != tt.wantState.String() || v.FinishedAt == nil {
				t.Errorf("Snapshot() t1 = %+v (exit code %d); want %s with exit code %d and a finish time", v, *v.ExitCode, tt.wantState, tt.exit.ExitCode)
			}
		})
	}
}

func TestInvalidTaskFailsWithoutAContainer(t *testing.T) {
	tests := []struct {
		name    string
		info    *mesos.TaskInfo
		wantMsg string
	}{
		{
			name:    "unknown label",
			info:    managerTask("t1", "docker.bogus", "1"),
			wantMsg: "docker.bogus",
		},
		{
			name: "no image",
			info: func() *mesos.TaskInfo {
				ti := managerTask("t1")
				ti.Container = nil
				return ti
			}(),
			wantMsg: "no image",
		},
		{
			name:    "task id that is no directory name",
			info:    managerTask("../t1"),
			wantMsg: "task id",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.launch(tt.info)
			id := tt.info.TaskID.Value
			st := h.waitTerminal(id)
			checkStates(t, id, h.pub.states(id), mesos.TASK_FAILED)
			checkReason(t, st, mesos.REASON_TASK_INVALID)
			checkMessage(t, st, tt.wantMsg)
			h.sync()
			if n := h.rt.count("EnsureImage") + h.rt.count("Create"); n != 0 {
				t.Errorf("runtime got %d EnsureImage/Create calls; want none for an invalid task", n)
			}
		})
	}
}

func TestLaunchFailure(t *testing.T) {
	tests := []struct {
		name       string
		failKey    string
		err        error
		wantNoCall string // a call that must not happen after the failure
		wantQueued bool
	}{
		{
			name:       "pull fails",
			failKey:    "EnsureImage " + testImage,
			err:        errors.New("pull access denied for busybox, repository does not exist"),
			wantNoCall: "Create",
		},
		{
			name:       "create fails",
			failKey:    "Create t1",
			err:        errors.New("Conflict. The container name is already in use"),
			wantNoCall: "Start",
		},
		{
			name:       "start fails",
			failKey:    "Start ctr-t1",
			err:        errors.New("OCI runtime create failed: exec format error"),
			wantNoCall: "Logs",
			wantQueued: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.rt.fail(tt.failKey, tt.err)
			h.launch(managerTask("t1"))
			st := h.waitTerminal("t1")
			checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_FAILED)
			checkReason(t, st, mesos.REASON_CONTAINER_LAUNCH_FAILED)
			checkMessage(t, st, tt.err.Error())
			if tt.wantQueued {
				waitFor(t, "the created container to be queued for removal", func() bool { return slices.Contains(h.rm.queued(), "ctr-t1") })
			}
			h.sync()
			if n := h.rt.count(tt.wantNoCall); n != 0 {
				t.Errorf("runtime got %d %s calls after the failure; want none", n, tt.wantNoCall)
			}
		})
	}
}

func TestDuplicateLaunchIsIgnored(t *testing.T) {
	t.Run("running", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.running(managerTask("t1"))
		h.launch(managerTask("t1"))
		h.sync()
		checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_RUNNING)
		if n := h.rt.count("Create"); n != 1 {
			t.Errorf("runtime got %d Create calls; want 1", n)
		}
	})
	t.Run("launching", func(t *testing.T) {
		h := newHarness(t, Config{})
		release := h.rt.hold("EnsureImage " + testImage)
		h.launch(managerTask("t1"))
		h.launch(managerTask("t1"))
		h.sync()
		release()
		h.waitState("t1", mesos.TASK_RUNNING)
		h.sync()
		checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_RUNNING)
		if n := h.rt.count("EnsureImage"); n != 1 {
			t.Errorf("runtime got %d EnsureImage calls; want 1", n)
		}
		if n := h.rt.count("Create"); n != 1 {
			t.Errorf("runtime got %d Create calls; want 1", n)
		}
	})
}

func TestKillUnknownTask(t *testing.T) {
	h := newHarness(t, Config{})
	h.subscribe(true)
	h.m.HandleEvent(killEvent("ghost"))
	st := h.waitTerminal("ghost")
	checkStates(t, "ghost", h.pub.states("ghost"), mesos.TASK_KILLED)
	if st.GetMessage() == "" {
		t.Errorf("KILLED update of an unknown task has no message; want one saying why")
	}
	checkMessage(t, st, "does not know")
}

func TestKillRunningTask(t *testing.T) {
	tests := []struct {
		name       string
		killingCap bool
		stopSignal string // the image's, from Inspect
		wantFirst  string
		wantStates []mesos.TaskState
	}{
		{
			name:       "SIGTERM then SIGKILL with TASK_KILLING",
			killingCap: true,
			wantFirst:  "SIGTERM",
			wantStates: []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLING, mesos.TASK_KILLED},
		},
		{
			name:       "no TASK_KILLING without the capability",
			wantFirst:  "SIGTERM",
			wantStates: []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLED},
		},
		{
			name:       "the image's stop signal",
			killingCap: true,
			stopSignal: "SIGQUIT",
			wantFirst:  "SIGQUIT",
			wantStates: []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLING, mesos.TASK_KILLED},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.subscribe(tt.killingCap)
			h.rt.setInfo(containerd.Info{StopSignal: tt.stopSignal})
			cid := h.running(managerTask("t1", "kill.grace", "50ms"))

			h.m.HandleEvent(killEvent("t1"))
			h.waitSignal(cid, "SIGKILL")
			sigs := h.rt.signals(cid)
			if len(sigs) < 2 || sigs[0] != tt.wantFirst {
				t.Errorf("signals to the container = %q; want %s first, then SIGKILL", sigs, tt.wantFirst)
			}
			for _, s := range sigs[1:] {
				if s != "SIGKILL" {
					t.Errorf("signals to the container = %q; want only SIGKILL after %s", sigs, tt.wantFirst)
					break
				}
			}

			h.exit(cid, 137)
			st := h.waitTerminal("t1")
			checkStates(t, "t1", h.pub.states("t1"), tt.wantStates...)
			checkReason(t, st, 0)
			checkMessage(t, st, "killed")
		})
	}
}

func TestKillGraceOverride(t *testing.T) {
	none := time.Duration(-1) // a KILL without a kill policy
	tests := []struct {
		name      string
		taskGrace string          // the kill.grace label
		kills     []time.Duration // KILL overrides, in order
	}{
		{name: "a shorter override shortens", taskGrace: "1h", kills: []time.Duration{50 * time.Millisecond}},
		{name: "a longer override does not lengthen", taskGrace: "50ms", kills: []time.Duration{time.Hour}},
		{name: "a second KILL shortens a kill under way", taskGrace: "1h", kills: []time.Duration{none, 50 * time.Millisecond}},
		{name: "a second KILL does not lengthen a kill under way", taskGrace: "50ms", kills: []time.Duration{none, time.Hour}},
		{name: "a second KILL without a policy keeps a shortened grace", taskGrace: "1h", kills: []time.Duration{50 * time.Millisecond, none}},
	}
	for _, tt := range tests {
		// The fake clock makes "a later KILL arrives before the first
		// grace ends" certain rather than likely.
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, Config{})
				h.subscribe(true)
				cid := h.running(managerTask("t1", "kill.grace", tt.taskGrace))
				for i, g := range tt.kills {
					if g == none {
						h.m.HandleEvent(killEvent("t1"))
					} else {
						h.m.HandleEvent(killEvent("t1", g))
					}
					if i == 0 {
						h.waitSignal(cid, "SIGTERM")
					}
				}
				h.waitSignal(cid, "SIGKILL")
				if sigs := h.rt.signals(cid); sigs[0] != "SIGTERM" {
					t.Errorf("signals to the container = %q; want SIGTERM first", sigs)
				}
				h.exit(cid, 137)
				h.waitTerminal("t1")
				checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLING, mesos.TASK_KILLED)
			})
		})
	}
}

func TestKillDuringLaunch(t *testing.T) {
	tests := []struct {
		name        string
		killingCap  bool
		holdKey     string
		wantCreated bool // Create and Start were called before the KILL
		// ran: Start was in flight; it completes (a cancelled start
		// request may start the container anyway), then the container is
		// signalled and its exit ends the task.
		ran        bool
		wantStates []mesos.TaskState
	}{
		{
			name:       "while pulling",
			holdKey:    "EnsureImage " + testImage,
			wantStates: []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_KILLED},
		},
		{
			name:       "while pulling, with TASK_KILLING",
			killingCap: true,
			holdKey:    "EnsureImage " + testImage,
			wantStates: []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_KILLING, mesos.TASK_KILLED},
		},
		{
			name:        "while starting",
			holdKey:     "Start ctr-t1",
			wantCreated: true,
			ran:         true,
			wantStates:  []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_KILLED},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.subscribe(tt.killingCap)
			release := h.rt.hold(tt.holdKey)
			t.Cleanup(release)
			h.launch(managerTask("t1"))
			waitFor(t, tt.holdKey+" to be called", func() bool { return h.rt.count(tt.holdKey) > 0 })

			h.m.HandleEvent(killEvent("t1"))
			if tt.ran {
				h.sync()
				release()
				h.waitSignal("ctr-t1", "SIGTERM")
				h.exit("ctr-t1", 143)
			}
			st := h.waitTerminal("t1")
			checkStates(t, "t1", h.pub.states("t1"), tt.wantStates...)
			if !tt.ran {
				checkReason(t, st, mesos.REASON_TASK_KILLED_DURING_LAUNCH)
			}
			if tt.wantCreated {
				waitFor(t, "the created container to be queued for removal", func() bool { return slices.Contains(h.rm.queued(), "ctr-t1") })
			}
			h.sync()
			want := 0
			if tt.wantCreated {
				want = 1
			}
			if c, s := h.rt.count("Create"), h.rt.count("Start"); c != want || s != want {
				t.Errorf("runtime got %d Create and %d Start calls; want %d of each: the launch stops where the KILL found it", c, s, want)
			}
			if n := h.rt.count("Logs"); n != 0 && !tt.ran {
				t.Errorf("runtime got %d Logs calls; want none for a container that never ran", n)
			}
		})
	}
}

// TestKillWhileInspecting covers a KILL that arrives after Start returned but
// while the manager still inspects the container for its stop signal and
// address: the kill must still use the image's stop signal.
func TestKillWhileInspecting(t *testing.T) {
	h := newHarness(t, Config{})
	h.rt.setInfo(containerd.Info{StopSignal: "SIGQUIT", IPs: []string{"172.17.0.7"}})
	release := h.rt.hold("Inspect ctr-t1")
	t.Cleanup(release)
	h.launch(managerTask("t1", "kill.grace", "50ms"))
	waitFor(t, "the container to be inspected", func() bool { return h.rt.count("Inspect ctr-t1") > 0 })

	h.m.HandleEvent(killEvent("t1"))
	h.sync() // the KILL is handled before Inspect returns
	release()
	h.waitSignal("ctr-t1", "SIGKILL")
	if sigs := h.rt.signals("ctr-t1"); sigs[0] != "SIGQUIT" {
		t.Errorf("signals to the container = %q; want the image's SIGQUIT first", sigs)
	}
	h.exit("ctr-t1", 137)
	h.waitTerminal("t1")
	// No RUNNING once the kill has started: it would tell the framework
	// the task came back.
	checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_KILLED)
}

// TestExitBeforeStarted covers an exit that Docker reports before the loop
// has seen Start return (a container that exits at once).
func TestExitBeforeStarted(t *testing.T) {
	tests := []struct {
		code int
		want mesos.TaskState
	}{
		{0, mesos.TASK_FINISHED},
		{2, mesos.TASK_FAILED},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("exit %d", tt.code), func(t *testing.T) {
			h := newHarness(t, Config{})
			release := h.rt.hold("Start ctr-t1")
			t.Cleanup(release)
			h.launch(managerTask("t1"))
			waitFor(t, "the loop to learn the container id", func() bool {
				v, _ := h.view("t1")
				return v.ContainerID == "ctr-t1"
			})
			h.exit("ctr-t1", tt.code)
			h.sync()
			checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING)

			release()
			h.waitTerminal("t1")
			checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_RUNNING, tt.want)
		})
	}
}

func TestRepeatedExitsAreIdempotent(t *testing.T) {
	h := newHarness(t, Config{})
	cid := h.running(managerTask("t1"))
	h.exit(cid, 0)
	h.exit(cid, 0)
	h.m.HandleExit(containerd.Exit{ContainerID: cid, ExitCode: 1})
	h.waitTerminal("t1")
	h.exit(cid, 0)
	h.m.HandleExit(containerd.Exit{ContainerID: cid, ExitCode: 137, OOMKilled: true})
	h.m.HandleExit(containerd.Exit{ContainerID: "not-ours", ExitCode: 1})
	h.sync()
	checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FINISHED)
	if v, _ := h.view("t1"); v.ExitCode == nil || *v.ExitCode != 0 {
		t.Errorf("Snapshot() t1 exit code = %v; want 0", v.ExitCode)
	}
}

func TestTerminalTaskGetsNoMoreUpdates(t *testing.T) {
	tests := []struct {
		name  string
		after func(h *harness, cid string)
	}{
		{"KILL", func(h *harness, cid string) { h.m.HandleEvent(killEvent("t1")) }},
		{"KILL with a kill policy", func(h *harness, cid string) { h.m.HandleEvent(killEvent("t1", 0)) }},
		{"another exit", func(h *harness, cid string) { h.exit(cid, 1) }},
		{"health change", func(h *harness, cid string) { h.m.SetHealth("t1", false, false, "down") }},
		{"health kill", func(h *harness, cid string) { h.m.SetHealth("t1", false, true, "down") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.subscribe(true)
			cid := h.running(managerTask("t1"))
			h.exit(cid, 0)
			h.waitTerminal("t1")

			tt.after(h, cid)
			h.sync()
			checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FINISHED)
			if sigs := h.rt.signals(cid); len(sigs) != 0 {
				t.Errorf("signals to the exited container = %q; want none", sigs)
			}
			if n := h.rt.count("Create"); n != 1 {
				t.Errorf("runtime got %d Create calls; want 1", n)
			}
		})
	}
}

func TestMaxCompletionTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		h.subscribe(true)
		info := managerTask("t1", "kill.grace", "1h")
		info.MaxCompletionTime = &mesos.DurationInfo{Nanoseconds: int64(5 * time.Second)}
		cid := h.running(info)

		h.waitSignal(cid, "SIGKILL")
		h.exit(cid, 137)
		st := h.waitTerminal("t1")
		checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FAILED)
		checkReason(t, st, mesos.REASON_MAX_COMPLETION_TIME_REACHED)
		checkMessage(t, st, "max_completion_time")
	})
}

// TestMaxCompletionTimeDuringLaunch: Mesos counts max_completion_time from the
// launch, so a pull that outlasts it fails the task for that reason; nobody
// asked for it to be killed.
func TestMaxCompletionTimeDuringLaunch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		h.subscribe(true)
		release := h.rt.hold("EnsureImage " + testImage)
		t.Cleanup(release)
		info := managerTask("t1")
		info.MaxCompletionTime = &mesos.DurationInfo{Nanoseconds: int64(5 * time.Second)}
		h.launch(info)

		st := h.waitTerminal("t1")
		checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_FAILED)
		checkReason(t, st, mesos.REASON_MAX_COMPLETION_TIME_REACHED)
		if n := h.rt.count("Create"); n != 0 {
			t.Errorf("runtime got %d Create calls; want none", n)
		}
	})
}

func TestShutdown(t *testing.T) {
	tests := []struct {
		name  string
		start func(h *harness)
	}{
		{"SHUTDOWN event", func(h *harness) { h.m.HandleEvent(shutdownEvent()) }},
		{"Shutdown method", func(h *harness) { h.m.Shutdown("test") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{ShutdownGrace: 10 * time.Second})
			h.subscribe(true)
			a := h.running(managerTask("a", "kill.grace", "50ms"))
			b := h.running(managerTask("b", "kill.grace", "50ms"))
			c := h.running(managerTask("c"))
			h.exit(c, 0)
			h.waitTerminal("c")
			release := h.rt.hold("EnsureImage slow:1")
			t.Cleanup(release)
			h.launch(managerTask("d", "docker.image", "slow:1"))
			waitFor(t, "the pull of d", func() bool { return h.rt.count("EnsureImage slow:1") > 0 })

			tt.start(h)
			h.waitSignal(a, "SIGKILL")
			h.waitSignal(b, "SIGKILL")
			if h.runReturned() {
				t.Fatalf("Run returned before every task was terminal")
			}
			h.exit(a, 137)
			h.exit(b, 137)
			if err := h.waitRun(); err != nil {
				t.Errorf("Run() = %v; want nil after a shutdown", err)
			}

			for _, id := range []string{"a", "b"} {
				checkStates(t, id, h.pub.states(id), mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLING, mesos.TASK_KILLED)
				if sigs := h.rt.signals("ctr-" + id); sigs[0] != "SIGTERM" {
					t.Errorf("signals to ctr-%s = %q; want SIGTERM first", id, sigs)
				}
			}
			checkStates(t, "c", h.pub.states("c"), mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FINISHED)
			checkStates(t, "d", h.pub.states("d"), mesos.TASK_STARTING, mesos.TASK_KILLING, mesos.TASK_KILLED)
			sts := h.pub.statuses("d")
			checkReason(t, sts[len(sts)-1], mesos.REASON_TASK_KILLED_DURING_LAUNCH)

			// Every container that existed is queued for removal exactly
			// once; d never got one.
			want := []string{a, b, c}
			if got := h.rm.queued(); !slices.Equal(got, want) {
				t.Errorf("containers queued for removal = %q; want %q (each once)", got, want)
			}
		})
	}
}

func TestShutdownWithoutTasks(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.HandleEvent(shutdownEvent())
	if err := h.waitRun(); err != nil {
		t.Errorf("Run() = %v; want nil", err)
	}
}

// TestShutdownDeadline covers a container whose exit Docker never confirms:
// the task is reported KILLED before the agent's grace period ends.
func TestShutdownDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{ShutdownGrace: 10 * time.Second})
		cid := h.running(managerTask("t1", "kill.grace", "1h"))
		start := time.Now()
		h.m.HandleEvent(shutdownEvent())
		if err := h.waitRun(); err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
		if d := time.Since(start); d >= h.cfg.ShutdownGrace {
			t.Errorf("Run returned %v after SHUTDOWN; want it within the shutdown grace %v", d, h.cfg.ShutdownGrace)
		}
		st := h.waitTerminal("t1")
		checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLED)
		checkMessage(t, st, "shutdown")
		if sigs := h.rt.signals(cid); len(sigs) < 2 || sigs[0] != "SIGTERM" || sigs[1] != "SIGKILL" {
			t.Errorf("signals to the container = %q; want SIGTERM, then SIGKILL", sigs)
		}
		if got := h.rm.queued(); !slices.Equal(got, []string{cid}) {
			t.Errorf("containers queued for removal = %q; want %q", got, []string{cid})
		}
	})
}

func TestLaunchAfterShutdown(t *testing.T) {
	h := newHarness(t, Config{ShutdownGrace: 10 * time.Second})
	a := h.running(managerTask("a", "kill.grace", "1h"))
	h.m.HandleEvent(shutdownEvent())
	h.waitSignal(a, "SIGTERM")

	h.launch(managerTask("b", "docker.image", "other:1"))
	st := h.waitTerminal("b")
	checkStates(t, "b", h.pub.states("b"), mesos.TASK_KILLED)
	checkReason(t, st, mesos.REASON_TASK_KILLED_DURING_LAUNCH)
	if n := h.rt.count("EnsureImage other:1"); n != 0 {
		t.Errorf("runtime got %d pulls for a task launched after SHUTDOWN; want none", n)
	}

	h.exit(a, 143)
	if err := h.waitRun(); err != nil {
		t.Errorf("Run() = %v; want nil", err)
	}
	checkStates(t, "a", h.pub.states("a"), mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLED)
}

func TestIdleTimeout(t *testing.T) {
	t.Run("waits for acknowledgements", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, Config{IdleTimeout: time.Second})
			h.pub.setUnacknowledged(2)
			time.Sleep(10 * time.Second)
			if h.runReturned() {
				t.Fatalf("Run() = %v with 2 updates unacknowledged; want it to keep running", h.err)
			}
			if n := h.pub.unacknowledgedCalls(); n == 0 {
				t.Errorf("Unacknowledged was never called after the idle timeout")
			}
			h.pub.setUnacknowledged(0)
			if err := h.waitRun(); !errors.Is(err, ErrIdle) {
				t.Errorf("Run() = %v; want ErrIdle", err)
			}
		})
	})
	t.Run("not while a task runs", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, Config{IdleTimeout: time.Second})
			cid := h.running(managerTask("t1"))
			time.Sleep(10 * time.Second)
			if h.runReturned() {
				t.Fatalf("Run() = %v while a task runs; want it to keep running", h.err)
			}
			h.exit(cid, 0)
			h.waitTerminal("t1")
			if err := h.waitRun(); !errors.Is(err, ErrIdle) {
				t.Errorf("Run() = %v; want ErrIdle once the task is done", err)
			}
		})
	})
	t.Run("disabled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, Config{})
			time.Sleep(24 * time.Hour)
			if h.runReturned() {
				t.Errorf("Run() = %v without an idle timeout; want it to keep running", h.err)
			}
		})
	})
}

func TestRunReturnsWhenContextEnds(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *harness)
	}{
		{"no tasks", func(h *harness) {}},
		{"a running task", func(h *harness) { h.running(managerTask("t1")) }},
		{"a task being killed", func(h *harness) {
			cid := h.running(managerTask("t1", "kill.grace", "1h"))
			h.m.HandleEvent(killEvent("t1"))
			h.waitSignal(cid, "SIGTERM")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, Config{})
				tt.setup(h)
				h.cancel()
				select {
				case <-h.done:
					if !errors.Is(h.err, context.Canceled) {
						t.Errorf("Run() = %v; want context.Canceled", h.err)
					}
				case <-time.After(time.Minute):
					t.Errorf("Run did not return within a minute of its ctx ending")
				}
			})
		})
	}
}

// fakeHealth is a HealthChecker that records what the manager asks of it and
// lets the test report results through the callbacks it was given.
type fakeHealth struct {
	// mu guards everything that follows.
	mu          sync.Mutex
	targets     map[string]health.Target // task id -> Start's target
	specs       map[string]*health.Spec
	checks      map[string]*health.CheckSpec // task id -> StartCheck's spec
	stops       []string
	report      map[string]func(health.Result)
	reportCheck map[string]func(string, mesos.CheckStatusInfo)
}

var _ HealthChecker = (*fakeHealth)(nil)

func newFakeHealth() *fakeHealth {
	return &fakeHealth{
		targets:     map[string]health.Target{},
		specs:       map[string]*health.Spec{},
		checks:      map[string]*health.CheckSpec{},
		report:      map[string]func(health.Result){},
		reportCheck: map[string]func(string, mesos.CheckStatusInfo){},
	}
}

func (f *fakeHealth) Start(t health.Target, spec *health.Spec, report func(health.Result)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.targets[t.TaskID], f.specs[t.TaskID], f.report[t.TaskID] = t, spec, report
}

func (f *fakeHealth) StartCheck(t health.Target, spec *health.CheckSpec, report func(string, mesos.CheckStatusInfo)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks[t.TaskID], f.reportCheck[t.TaskID] = spec, report
}

func (f *fakeHealth) Stop(taskID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops = append(f.stops, taskID)
}

func (f *fakeHealth) started(taskID string) (health.Target, *health.Spec, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.report[taskID]
	return f.targets[taskID], f.specs[taskID], ok
}

func (f *fakeHealth) checkStarted(taskID string) (*health.CheckSpec, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.reportCheck[taskID]
	return f.checks[taskID], ok
}

func (f *fakeHealth) stopped(taskID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.stops, taskID)
}

// send reports a health result as the supervisor would, from its own
// goroutine.
func (f *fakeHealth) send(r health.Result) {
	f.mu.Lock()
	report := f.report[r.TaskID]
	f.mu.Unlock()
	report(r)
}

func (f *fakeHealth) sendCheck(taskID string, st mesos.CheckStatusInfo) {
	f.mu.Lock()
	report := f.reportCheck[taskID]
	f.mu.Unlock()
	report(taskID, st)
}

func healthyOf(sts []mesos.TaskStatus) []string {
	var out []string
	for _, s := range sts {
		if s.Healthy == nil {
			out = append(out, "-")
		} else {
			out = append(out, fmt.Sprint(*s.Healthy))
		}
	}
	return out
}

func TestHealthCheck(t *testing.T) {
	fh := newFakeHealth()
	h := newHarness(t, Config{Health: fh})
	h.subscribe(true)
	h.rt.setInfo(containerd.Info{IPs: []string{"172.17.0.9"}, Pid: 4242})
	cid := h.running(managerTask("t1", "kill.grace", "50ms", "health.type", "http", "health.port", "8080"))

	waitFor(t, "the health check to start", func() bool { _, _, ok := fh.started("t1"); return ok })
	tg, spec, _ := fh.started("t1")
	if want := (health.Target{TaskID: "t1", ContainerID: cid, IP: "172.17.0.9", Pid: 4242}); tg != want {
		t.Errorf("health check target = %+v; want %+v", tg, want)
	}
	if spec.Type != health.HTTP || spec.Port != 8080 {
		t.Errorf("health check spec = %+v; want an http check of port 8080", spec)
	}

	// Every report of a running task is an update: the supervisor
	// reports changes only.
	fh.send(health.Result{TaskID: "t1", Healthy: true, Message: "HTTP GET returned 200"})
	waitFor(t, "the healthy update", func() bool { return len(h.pub.statuses("t1")) == 3 })
	fh.send(health.Result{TaskID: "t1", Healthy: false, Message: "HTTP GET returned 503", ConsecutiveFailures: 1})
	waitFor(t, "the unhealthy update", func() bool { return len(h.pub.statuses("t1")) == 4 })
	fh.send(health.Result{TaskID: "t1", Healthy: false, Kill: true, Message: "HTTP GET returned 503", ConsecutiveFailures: 3})
	h.waitSignal(cid, "SIGKILL")
	if !fh.stopped("t1") {
		t.Errorf("the health check was not stopped when the kill started")
	}
	fh.send(health.Result{TaskID: "t1", Healthy: true, Message: "late"}) // raced the kill: ignored
	h.exit(cid, 137)
	st := h.waitTerminal("t1")

	checkStates(t, "t1", h.pub.states("t1"),
		mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_RUNNING, mesos.TASK_RUNNING, mesos.TASK_KILLING, mesos.TASK_KILLED)
	sts := h.pub.statuses("t1")
	if got, want := healthyOf(sts), []string{"-", "-", "true", "false", "false", "false"}; !slices.Equal(got, want) {
		t.Errorf("healthy of the updates = %q; want %q", got, want)
	}
	if len(sts) == 6 {
		checkReason(t, sts[2], mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED)
		checkReason(t, sts[3], mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED)
		checkMessage(t, sts[3], "returned 503")
	}
	checkReason(t, st, 0)
	checkMessage(t, st, "health check", "returned 503")
}

func TestHealthCheckTarget(t *testing.T) {
	tests := []struct {
		network string
		want    health.Target // TaskID, ContainerID and Pid are filled in
	}{
		{network: "bridge", want: health.Target{IP: "172.17.0.9"}},
		{network: "backend", want: health.Target{IP: "172.17.0.9"}},
		{network: "host", want: health.Target{HostNetwork: true}},
		{network: "none", want: health.Target{}},
	}
	for _, tt := range tests {
		t.Run(tt.network, func(t *testing.T) {
			fh := newFakeHealth()
			h := newHarness(t, Config{Health: fh, Policy: Policy{Operator: policy.Policy{AllowHostNamespaces: true, AllowedNetworks: []string{"*"}}}})
			h.rt.setInfo(containerd.Info{IPs: []string{"172.17.0.9"}, Pid: 77})
			cid := h.running(managerTask("t1", "docker.network", tt.network, "health.type", "cmd", "health.cmd", `["true"]`))
			waitFor(t, "the health check to start", func() bool { _, _, ok := fh.started("t1"); return ok })
			want := tt.want
			want.TaskID, want.ContainerID, want.Pid = "t1", cid, 77
			if got, _, _ := fh.started("t1"); got != want {
				t.Errorf("health check target = %+v; want %+v", got, want)
			}
		})
	}
}

func TestHealthCheckNotStarted(t *testing.T) {
	t.Run("no health check asked for", func(t *testing.T) {
		fh := newFakeHealth()
		h := newHarness(t, Config{Health: fh})
		h.running(managerTask("t1"))
		h.sync()
		if _, _, ok := fh.started("t1"); ok {
			t.Errorf("a health check was started for a task without one")
		}
	})
	t.Run("killed during launch", func(t *testing.T) {
		fh := newFakeHealth()
		h := newHarness(t, Config{Health: fh})
		release := h.rt.hold("Inspect ctr-t1")
		t.Cleanup(release)
		h.launch(managerTask("t1", "health.type", "tcp", "health.port", "80"))
		waitFor(t, "the container to be inspected", func() bool { return h.rt.count("Inspect ctr-t1") > 0 })
		h.m.HandleEvent(killEvent("t1"))
		h.sync()
		release()
		h.waitSignal("ctr-t1", "SIGTERM")
		if _, _, ok := fh.started("t1"); ok {
			t.Errorf("a health check was started for a task being killed")
		}
	})
	t.Run("no checker", func(t *testing.T) {
		// A task that asks for a check still runs when the executor
		// has no checker.
		h := newHarness(t, Config{})
		h.running(managerTask("t1", "health.type", "tcp", "health.port", "80"))
		sts := h.pub.statuses("t1")
		if last := sts[len(sts)-1]; last.Healthy != nil {
			t.Errorf("RUNNING update healthy = %v; want none without a checker", *last.Healthy)
		}
	})
}

func TestGenericCheck(t *testing.T) {
	fh := newFakeHealth()
	h := newHarness(t, Config{Health: fh})
	info := managerTask("t1")
	info.Check = &mesos.CheckInfo{Type: mesos.CheckInfo_TCP, TCP: &mesos.CheckInfo_Tcp{Port: 6379}}
	cid := h.running(info)

	waitFor(t, "the check to start", func() bool { _, ok := fh.checkStarted("t1"); return ok })
	if spec, _ := fh.checkStarted("t1"); spec.Type != health.TCP || spec.Port != 6379 {
		t.Errorf("check spec = %+v; want a tcp check of port 6379", spec)
	}
	initial := mesos.CheckStatusInfo{Type: mesos.CheckInfo_TCP.Enum(), TCP: &mesos.CheckStatusInfo_Tcp{}}
	for _, st := range h.pub.statuses("t1") {
		if !reflect.DeepEqual(st.CheckStatus, &initial) {
			t.Errorf("%s update check_status = %v; want %v before the first result", st.GetState(), st.CheckStatus, &initial)
		}
	}

	ok := mesos.CheckStatusInfo{Type: mesos.CheckInfo_TCP.Enum(), TCP: &mesos.CheckStatusInfo_Tcp{Succeeded: ptr(true)}}
	fh.sendCheck("t1", ok)
	waitFor(t, "the check update", func() bool { return len(h.pub.statuses("t1")) == 3 })
	h.exit(cid, 0)
	h.waitTerminal("t1")
	checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_RUNNING, mesos.TASK_FINISHED)
	sts := h.pub.statuses("t1")
	checkReason(t, sts[2], mesos.REASON_TASK_CHECK_STATUS_UPDATED)
	for _, st := range sts[2:] {
		if !reflect.DeepEqual(st.CheckStatus, &ok) {
			t.Errorf("%s update check_status = %v; want the last result %v", st.GetState(), st.CheckStatus, &ok)
		}
	}
	if !fh.stopped("t1") {
		t.Errorf("the check was not stopped when the task ended")
	}
}

func TestSnapshot(t *testing.T) {
	h := newHarness(t, Config{})
	h.rt.setInfo(containerd.Info{IPs: []string{"10.0.0.9"}})
	a := h.running(managerTask("a"))
	b := h.running(managerTask("b"))
	h.running(managerTask("c"))
	h.launch(managerTask("d", "docker.bogus", "x"))
	h.exit(a, 0)
	h.exit(b, 3)
	h.waitTerminal("a")
	h.waitTerminal("b")
	h.waitTerminal("d")
	h.sync()

	type want struct {
		state       string
		exitCode    *int
		containerID string
		reason      string
		history     []string
		started     bool
		finished    bool
	}
	zero, three := 0, 3
	wants := map[string]want{
		"a": {"TASK_FINISHED", &zero, "ctr-a", "", []string{"TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"}, true, true},
		"b": {"TASK_FAILED", &three, "ctr-b", "", []string{"TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"}, true, true},
		"c": {"TASK_RUNNING", nil, "ctr-c", "", []string{"TASK_STARTING", "TASK_RUNNING"}, true, false},
		"d": {"TASK_FAILED", nil, "", "REASON_TASK_INVALID", []string{"TASK_FAILED"}, false, true},
	}
	// The harness's sync barriers are KILLs of unknown tasks, which the
	// snapshot lists too (killed once): leave them out.
	views := slices.DeleteFunc(h.m.Snapshot(), func(v View) bool { return strings.HasPrefix(v.TaskID, "sync-") })
	var ids []string
	for _, v := range views {
		ids = append(ids, v.TaskID)
	}
	if want := []string{"a", "b", "c", "d"}; !slices.Equal(ids, want) {
		t.Fatalf("Snapshot() task ids = %q; want %q in order", ids, want)
	}
	for _, v := range views {
		w := wants[v.TaskID]
		var history []string
		for _, e := range v.History {
			history = append(history, e.State)
		}
		got := want{v.State, v.ExitCode, v.ContainerID, v.Reason, history, v.StartedAt != nil, v.FinishedAt != nil}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("Snapshot() %s = %+v; want %+v", v.TaskID, got, w)
		}
	}
	if v, _ := h.view("c"); v.IP != "10.0.0.9" || v.Image != testImage {
		t.Errorf("Snapshot() c IP, image = %q, %q; want %q, %q", v.IP, v.Image, "10.0.0.9", testImage)
	}
}

// TestKillWhileCreating covers a KILL that arrives while Docker creates the
// container: the create completes (Docker would create it even for an
// abandoned request), the container is never started, and it is queued for
// removal so it cannot leak.
func TestKillWhileCreating(t *testing.T) {
	h := newHarness(t, Config{})
	release := h.rt.hold("Create t1")
	t.Cleanup(release)
	h.launch(managerTask("t1"))
	waitFor(t, "Create to be called", func() bool { return h.rt.count("Create t1") > 0 })

	h.m.HandleEvent(killEvent("t1"))
	h.sync()
	release()
	st := h.waitTerminal("t1")
	checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_KILLED)
	checkReason(t, st, mesos.REASON_TASK_KILLED_DURING_LAUNCH)
	waitFor(t, "the created container to be queued for removal", func() bool { return slices.Contains(h.rm.queued(), "ctr-t1") })
	if n := h.rt.count("Start"); n != 0 {
		t.Errorf("runtime got %d Start calls; want none after the KILL", n)
	}
}

// TestLateOOMReport covers Docker reporting a container's OOM kill only
// after its exit (the oom event trails the die): a SIGKILL exit that the
// executor did not cause waits briefly and still ends as a memory limitation.
func TestLateOOMReport(t *testing.T) {
	h := newHarness(t, Config{})
	cid := h.running(managerTask("t1"))
	h.exit(cid, 137)
	h.m.HandleExit(containerd.Exit{ContainerID: cid, ExitCode: 137, OOMKilled: true})
	st := h.waitTerminal("t1")
	checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FAILED)
	checkReason(t, st, mesos.REASON_CONTAINER_LIMITATION_MEMORY)
}

// TestUnexplainedSIGKILL: a SIGKILL exit with no OOM report is a plain
// failure once the short wait for a late report has passed.
func TestUnexplainedSIGKILL(t *testing.T) {
	h := newHarness(t, Config{})
	cid := h.running(managerTask("t1"))
	h.exit(cid, 137)
	st := h.waitTerminal("t1")
	checkStates(t, "t1", h.pub.states("t1"), mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FAILED)
	if st.Reason != nil && st.GetReason() == mesos.REASON_CONTAINER_LIMITATION_MEMORY {
		t.Errorf("reason = %s; want no memory limitation without an OOM report", st.GetReason())
	}
	checkMessage(t, st, "signal 9")
}
