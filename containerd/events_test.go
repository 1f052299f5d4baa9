package containerd

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/sirupsen/logrus"
)

// fakeSource is a scripted eventsSource. Each Events call takes the next
// session from sessions (or blocks until ctx ends when none is left); List
// and Inspect answer from the maps.
type fakeSource struct {
	mu       sync.Mutex
	sessions []func(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error)
	opens    []events.ListOptions
	lists    int
	list     []Summary
	// listFrom is the first List call (1-based) that returns list; the
	// earlier ones return nothing.
	listFrom int
	infos    map[string]Info
	inspects []string
}

func (f *fakeSource) Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error) {
	f.mu.Lock()
	f.opens = append(f.opens, opts)
	var next func(context.Context, events.ListOptions) (<-chan events.Message, <-chan error)
	if len(f.sessions) > 0 {
		next, f.sessions = f.sessions[0], f.sessions[1:]
	}
	f.mu.Unlock()
	if next != nil {
		return next(ctx, opts)
	}
	errs := make(chan error, 1)
	go func() { <-ctx.Done(); errs <- ctx.Err() }()
	return nil, errs
}

func (f *fakeSource) List(context.Context, map[string]string, bool) ([]Summary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.lists < f.listFrom {
		return nil, nil
	}
	return f.list, nil
}

func (f *fakeSource) Inspect(_ context.Context, id string) (Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inspects = append(f.inspects, id)
	info, ok := f.infos[id]
	if !ok {
		return Info{}, errors.New("no such container (fake)")
	}
	return info, nil
}

func (f *fakeSource) snapshot() (opens []events.ListOptions, lists int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]events.ListOptions(nil), f.opens...), f.lists
}

// fakeClock is the watch's time: tests move it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func quiet() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

func dieEvent(id string, code int, at time.Time) events.Message {
	return events.Message{Type: events.ContainerEventType, Action: events.ActionDie, TimeNano: at.UnixNano(),
		Actor: events.Actor{ID: id, Attributes: map[string]string{"exitCode": strconv.Itoa(code), LabelTask: "task-" + id}}}
}

func oomEvent(id string, at time.Time) events.Message {
	return events.Message{Type: events.ContainerEventType, Action: events.ActionOOM, TimeNano: at.UnixNano(),
		Actor: events.Actor{ID: id}}
}

// scripted returns a session that delivers msgs (all at once, into a
// buffered channel) and then stays open until ctx ends.
func scripted(msgs ...events.Message) func(context.Context, events.ListOptions) (<-chan events.Message, <-chan error) {
	return func(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
		ch := make(chan events.Message, len(msgs))
		for _, m := range msgs {
			ch <- m
		}
		errs := make(chan error, 1)
		go func() { <-ctx.Done(); errs <- ctx.Err() }()
		return ch, errs
	}
}

// failing returns a session whose stream fails at once, after run.
func failing(run func()) func(context.Context, events.ListOptions) (<-chan events.Message, <-chan error) {
	return func(context.Context, events.ListOptions) (<-chan events.Message, <-chan error) {
		if run != nil {
			run()
		}
		errs := make(chan error, 1)
		errs <- errors.New("connection reset (fake)")
		return nil, errs
	}
}

type watchRun struct {
	out        chan Exit
	reconnects *atomic.Uint64
	cancel     context.CancelFunc
	done       chan error
}

func startWatch(t *testing.T, src eventsSource, tune watchTuning, outBuf int) *watchRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &watchRun{out: make(chan Exit, outBuf), reconnects: new(atomic.Uint64), cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- watchExits(ctx, src, r.reconnects, quiet(), map[string]string{LabelFramework: "fw"}, r.out, tune)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("watchExits returned %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("watchExits did not return after cancel")
		}
	})
	return r
}

// next waits for the next exit; the deadline only catches a hung watch.
func (r *watchRun) next(t *testing.T) Exit {
	t.Helper()
	select {
	case e := <-r.out:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no exit reported")
		return Exit{}
	}
}

func testTuning(clock *fakeClock) watchTuning {
	tune := defaultTuning()
	tune.now = clock.Now
	tune.after = func(time.Duration) <-chan time.Time { // reopen at once
		ch := make(chan time.Time, 1)
		ch <- clock.Now()
		return ch
	}
	return tune
}

// A burst larger than the queue while the consumer is slow: the reader must
// not block the daemon's side, so the session ends with errExitQueueFull,
// the stream is reopened from the last event handled (so that dockerd
// replays what the full queue dropped), and the list reconciles again.
func TestWatchExitsQueueOverflowReopens(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	base := clock.Now()
	var burst []events.Message
	for i := range 10 {
		burst = append(burst, dieEvent("c"+strconv.Itoa(i), 1, base.Add(time.Duration(i+1)*time.Second)))
	}
	src := &fakeSource{
		sessions: []func(context.Context, events.ListOptions) (<-chan events.Message, <-chan error){scripted(burst...)},
		list:     []Summary{{ID: "c9", State: "exited"}},
		listFrom: 2, // c9's exit was dropped with the full queue; the reopen's list finds it
		infos:    map[string]Info{"c9": {ID: "c9", ExitCode: 1, Labels: map[string]string{LabelTask: "task-c9"}}},
	}
	tune := testTuning(clock)
	tune.queueSize = 2
	r := startWatch(t, src, tune, 0) // unbuffered: nobody receives until the reader has overflowed

	// Until the test receives, the handler is stuck sending the first exit
	// and the reader can only queue two more: it gives up on the burst. The
	// exits that made it out are a prefix of the burst, in order; c9's
	// was dropped, and the reopened session's list reports it.
	var got []string
	for {
		e := r.next(t)
		if e.ContainerID == "c9" {
			if e.ExitCode != 1 {
				t.Errorf("c9 exit = %+v, want code 1 from the reconciling list", e)
			}
			break
		}
		got = append(got, e.ContainerID)
	}
	if len(got) < 2 || len(got) > 3 {
		t.Fatalf("exits before the reopen = %v, want the first 2 or 3 of the burst (queue of 2, plus the one being sent)", got)
	}
	for i, id := range got {
		if id != "c"+strconv.Itoa(i) {
			t.Errorf("exits before the reopen = %v, want c0, c1, ... in order", got)
			break
		}
	}
	opens, lists := src.snapshot()
	if len(opens) != 2 {
		t.Fatalf("events opened %d times, want 2 (one reopen after the overflow)", len(opens))
	}
	wantSince := base.Add(time.Duration(len(got)) * time.Second).UTC().Format(time.RFC3339Nano)
	if opens[1].Since != wantSince {
		t.Errorf("reopened with since=%s, want %s (the last event handled, so dockerd replays the dropped ones)", opens[1].Since, wantSince)
	}
	if lists != 2 {
		t.Errorf("reconciling lists = %d, want 2 (one per open)", lists)
	}
	if n := r.reconnects.Load(); n != 1 {
		t.Errorf("reconnects = %d, want 1", n)
	}
}

// The reopen backoff doubles per failed attempt up to its cap, and a
// stream that stayed open for healthyAfter resets it.
func TestWatchExitsBackoffResets(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	tune := testTuning(clock)
	tune.backoffMin, tune.backoffMax, tune.healthyAfter = 100*time.Millisecond, 800*time.Millisecond, 10*time.Second
	var mu sync.Mutex
	var waits []time.Duration
	const attempts = 8
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tune.after = func(d time.Duration) <-chan time.Time {
		mu.Lock()
		waits = append(waits, d)
		if len(waits) == attempts {
			cancel()
		}
		mu.Unlock()
		ch := make(chan time.Time, 1)
		ch <- clock.Now()
		return ch
	}
	healthy := func() { clock.Advance(tune.healthyAfter) } // this stream "stayed up" 10 s
	var sessions []func(context.Context, events.ListOptions) (<-chan events.Message, <-chan error)
	for i := range attempts {
		if i == 5 {
			sessions = append(sessions, failing(healthy))
		} else {
			sessions = append(sessions, failing(nil))
		}
	}
	src := &fakeSource{sessions: sessions}
	reconnects := new(atomic.Uint64)
	if err := watchExits(ctx, src, reconnects, quiet(), map[string]string{LabelFramework: "fw"}, make(chan Exit), tune); err != nil {
		t.Fatal(err)
	}
	// Backoff before each wait: 100, 200, 400, 800, 800 (capped), then the
	// healthy stream resets it: 100, 200, 400.
	want := []time.Duration{100, 200, 400, 800, 800, 100, 200, 400}
	if len(waits) != attempts {
		t.Fatalf("waits = %v, want %d", waits, attempts)
	}
	for i, w := range waits {
		b := want[i] * time.Millisecond
		if w < b/2 || w > b {
			t.Errorf("wait %d = %v, want within [%v, %v] (jitter over the upper half of backoff %v); all: %v", i, w, b/2, b, b, waits)
		}
	}
}

// Docker may send the oom event after the die. The die is reported at once
// (exit 137, not OOM, after the inspect finds no OOM flag either); the late
// oom event reports the same exit again, now OOMKilled, and only once.
func TestWatchExitsOOMAfterDie(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	at := clock.Now()
	src := &fakeSource{
		sessions: []func(context.Context, events.ListOptions) (<-chan events.Message, <-chan error){
			scripted(dieEvent("hog", 137, at), oomEvent("hog", at), oomEvent("hog", at), dieEvent("marker", 3, at)),
		},
		infos: map[string]Info{"hog": {ID: "hog", ExitCode: 137, FinishedAt: at, Labels: map[string]string{LabelTask: "task-hog"}}},
	}
	r := startWatch(t, src, testTuning(clock), 8)
	first := r.next(t)
	if first.ContainerID != "hog" || first.ExitCode != 137 || first.OOMKilled {
		t.Errorf("first exit = %+v, want hog 137 without OOM", first)
	}
	second := r.next(t)
	if second.ContainerID != "hog" || second.ExitCode != 137 || !second.OOMKilled || second.TaskID != "task-hog" {
		t.Errorf("exit after the late oom = %+v, want hog 137 OOMKilled for task-hog", second)
	}
	// Events are handled in order: the marker's die comes next unless the
	// second oom event reported hog a third time.
	if e := r.next(t); e.ContainerID != "marker" {
		t.Errorf("after the second oom event: %+v, want the marker's exit (hog reported only twice)", e)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if len(src.inspects) != 1 {
		t.Errorf("inspects = %v, want one (the SIGKILL-looking die)", src.inspects)
	}
}

// An oom remembered longer than oomMemory no longer marks a die, and a die
// older than that is no longer corrected by an oom: forget() expires both
// maps, so a watch that lives for weeks holds only recent records.
func TestWatchExitsForgetExpires(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	tune := testTuning(clock)
	w := &exitWatch{tune: tune, log: quiet()}
	w.forget()
	w.ooms["old-oom"] = clock.Now()
	w.died["old-die"] = Exit{ContainerID: "old-die", FinishedAt: clock.Now()}
	clock.Advance(tune.oomMemory / 2)
	w.ooms["new-oom"] = clock.Now()
	w.died["new-die"] = Exit{ContainerID: "new-die", FinishedAt: clock.Now()}
	clock.Advance(tune.oomMemory/2 + time.Second)
	w.forget()
	if _, ok := w.ooms["old-oom"]; ok || len(w.ooms) != 1 {
		t.Errorf("ooms after expiry = %v, want only new-oom", w.ooms)
	}
	if _, ok := w.died["old-die"]; ok || len(w.died) != 1 {
		t.Errorf("died after expiry = %v, want only new-die", w.died)
	}

	// The same through the event path: an oom, then a die of that container
	// more than oomMemory later (a restart policy could do it; so can a
	// recycled id in a test) is not an OOM.
	msgs := make(chan events.Message, 4)
	src := &fakeSource{sessions: []func(context.Context, events.ListOptions) (<-chan events.Message, <-chan error){
		func(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
			errs := make(chan error, 1)
			go func() { <-ctx.Done(); errs <- ctx.Err() }()
			return msgs, errs
		},
	}}
	r := startWatch(t, src, tune, 8)
	msgs <- oomEvent("c", clock.Now())
	msgs <- dieEvent("marker", 3, clock.Now()) // proves the oom was handled
	if e := r.next(t); e.ContainerID != "marker" {
		t.Fatalf("exit = %+v, want marker", e)
	}
	clock.Advance(tune.oomMemory + time.Second)
	msgs <- dieEvent("c", 2, clock.Now())
	if e := r.next(t); e.ContainerID != "c" || e.OOMKilled {
		t.Errorf("die %v after the oom = %+v, want c not OOMKilled", tune.oomMemory+time.Second, e)
	}
}
