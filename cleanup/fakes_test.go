package cleanup

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/containerd"
)

// testLog sends the package's logs to t.Log, so they show up with the failing
// test only.
func testLog(t testing.TB) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(tWriter{t})
	l.SetLevel(logrus.DebugLevel)
	l.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true, DisableColors: true})
	return logrus.NewEntry(l)
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// fakeClock is a manual clock: timers fire only when Advance passes them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

type fakeTimer struct {
	fc   *fakeClock
	c    chan time.Time
	at   time.Time
	done bool
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{fc: f, c: make(chan time.Time, 1), at: f.now.Add(d)}
	if d <= 0 {
		t.done = true
		t.c <- f.now
		return t
	}
	f.timers = append(f.timers, t)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.fc.mu.Lock()
	defer t.fc.mu.Unlock()
	if t.done {
		return false
	}
	t.done = true
	t.fc.removeLocked(t)
	return true
}

func (f *fakeClock) removeLocked(t *fakeTimer) {
	for i, x := range f.timers {
		if x == t {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			return
		}
	}
}

// AdvanceTo moves the clock to at and fires every timer due by then.
func (f *fakeClock) AdvanceTo(at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if at.After(f.now) {
		f.now = at
	}
	kept := f.timers[:0]
	for _, t := range f.timers {
		if !t.at.After(f.now) {
			t.done = true
			t.c <- f.now
			continue
		}
		kept = append(kept, t)
	}
	f.timers = kept
}

func (f *fakeClock) Advance(d time.Duration) { f.AdvanceTo(f.Now().Add(d)) }

// nextTimer returns the earliest pending timer's deadline.
func (f *fakeClock) nextTimer() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var next time.Time
	for _, t := range f.timers {
		if next.IsZero() || t.at.Before(next) {
			next = t.at
		}
	}
	return next, !next.IsZero()
}

// waitTimerAfter waits (in real time) until some goroutine has a timer
// pending beyond after, and returns its deadline.
func (f *fakeClock) waitTimerAfter(t *testing.T, after time.Time) time.Time {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if at, ok := f.nextTimer(); ok && at.After(after) {
			return at
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no timer set after %s within 5s", after)
	return time.Time{}
}

// Docker-like errors, shaped as the real client returns them.
func errBusy(id string) error {
	return fmt.Errorf("Error response from daemon: unable to remove filesystem for %s: unlinkat /var/lib/docker/containers/%s/mounts/shm: device or resource busy: %w", id, id, cerrdefs.ErrInternal)
}

func errInProgress(id string) error {
	return fmt.Errorf("Error response from daemon: removal of container %s is already in progress: %w", id, cerrdefs.ErrConflict)
}

func errRunning(id string) error {
	return fmt.Errorf("Error response from daemon: You cannot remove a running container %s. Stop the container before attempting removal or force remove: %w", id, cerrdefs.ErrConflict)
}

func errNoSuch(id string) error {
	return fmt.Errorf("Error response from daemon: No such container: %s: %w", id, cerrdefs.ErrNotFound)
}

var errDaemonDown = fmt.Errorf("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?")

// removeCall is one RemoveContainer call the fake saw.
type removeCall struct {
	id    string
	force bool
	at    time.Time
}

// fakeAPI is a scripted Docker for the queue: per container, a list of
// errors RemoveContainer returns in turn (nil once the list is used up).
type fakeAPI struct {
	clock Clock

	mu        sync.Mutex
	labels    map[string]map[string]string // id -> labels; missing = no such container
	graph     map[string]map[string]string
	removeErr map[string][]error
	down      bool
	calls     []removeCall
	callCh    chan removeCall
	volumes   []string
}

func newFakeAPI(clock Clock) *fakeAPI {
	return &fakeAPI{
		clock: clock, labels: map[string]map[string]string{}, graph: map[string]map[string]string{},
		removeErr: map[string][]error{}, callCh: make(chan removeCall, 1000),
	}
}

func ownLabels(task string) map[string]string {
	return map[string]string{
		containerd.LabelFramework: "fw", containerd.LabelExecutor: "ex",
		containerd.LabelInstance: "me", containerd.LabelTask: task,
	}
}

func (f *fakeAPI) add(id string, labels map[string]string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.labels[id] = labels
	f.removeErr[id] = errs
}

func (f *fakeAPI) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *fakeAPI) PingDaemon(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errDaemonDown
	}
	return nil
}

func (f *fakeAPI) InspectStorage(_ context.Context, id string) (containerd.StorageInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return containerd.StorageInfo{}, errDaemonDown
	}
	l, ok := f.labels[id]
	if !ok {
		return containerd.StorageInfo{}, errNoSuch(id)
	}
	return containerd.StorageInfo{ID: id, Status: "exited", Labels: l, GraphDriver: "overlay2", GraphDriverData: f.graph[id],
		Volumes: []string{strings.Repeat("a", 64)}}, nil
}

func (f *fakeAPI) RemoveContainer(_ context.Context, id string, force bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := removeCall{id: id, force: force, at: f.clock.Now()}
	f.calls = append(f.calls, c)
	f.callCh <- c
	if f.down {
		return errDaemonDown
	}
	if _, ok := f.labels[id]; !ok {
		return errNoSuch(id)
	}
	if errs := f.removeErr[id]; len(errs) > 0 {
		f.removeErr[id] = errs[1:]
		if errs[0] != nil {
			return errs[0]
		}
	}
	delete(f.labels, id)
	return nil
}

func (f *fakeAPI) RemoveVolume(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.volumes = append(f.volumes, name)
	return nil
}

func (f *fakeAPI) removeCalls() []removeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]removeCall(nil), f.calls...)
}

func (f *fakeAPI) exists(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.labels[id]
	return ok
}

// waitCall waits for the next RemoveContainer call.
func (f *fakeAPI) waitCall(t *testing.T) removeCall {
	t.Helper()
	select {
	case c := <-f.callCh:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no RemoveContainer call within 5s")
		return removeCall{}
	}
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
