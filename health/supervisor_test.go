package health

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"
)

// The tests in this file check the scheduling and reporting rules with a fake
// Execer (command checks) inside a synctest bubble, so that delays of minutes
// run instantly and every time is exact.

// step is the fake command's behaviour for one probe.
type step struct {
	code int
	dur  time.Duration // how long the command runs
	err  error
}

var (
	pass = step{code: 0}
	fail = step{code: 1}
)

// fakeExec plays a script of steps, repeating the last one, and records when
// each probe started and ended.
type fakeExec struct {
	script []step

	mu      sync.Mutex
	starts  []time.Duration // since t0
	ends    []time.Duration
	running int
	peak    int // most commands running at once
	t0      time.Time
}

func newFakeExec(script ...step) *fakeExec {
	return &fakeExec{script: script, t0: time.Now()}
}

func (f *fakeExec) Exec(ctx context.Context, containerID string, cmd []string, maxOutput int) (int, []byte, error) {
	f.mu.Lock()
	n := len(f.starts)
	f.starts = append(f.starts, time.Since(f.t0))
	f.running++
	f.peak = max(f.peak, f.running)
	s := f.script[min(n, len(f.script)-1)]
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running--
		f.ends = append(f.ends, time.Since(f.t0))
		f.mu.Unlock()
	}()

	if s.dur > 0 {
		select {
		case <-time.After(s.dur):
		case <-ctx.Done():
			return 0, nil, fmt.Errorf("fake exec: %w", ctx.Err())
		}
	}
	if s.err != nil {
		return 0, nil, s.err
	}
	out := fmt.Sprintf("probe %d", n)
	return s.code, []byte(out[:min(len(out), maxOutput)]), nil
}

func (f *fakeExec) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.starts)
}

func (f *fakeExec) startTimes() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.starts)
}

// report is one Result with the bubble time it arrived at.
type report struct {
	at time.Duration
	Result
}

func (r report) String() string {
	return fmt.Sprintf("%v healthy=%v kill=%v failures=%d %q", r.at, r.Healthy, r.Kill, r.ConsecutiveFailures, r.Message)
}

type recorder struct {
	t0      time.Time
	mu      sync.Mutex
	reports []report
}

func newRecorder() *recorder { return &recorder{t0: time.Now()} }

func (r *recorder) report(res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports = append(r.reports, report{time.Since(r.t0), res})
}

func (r *recorder) all() []report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reports)
}

// testLog sends the supervisor's logs to t.Log.
func testLog(t *testing.T) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(tWriter{t})
	l.SetLevel(logrus.DebugLevel)
	return logrus.NewEntry(l)
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startSupervisor runs a Supervisor until the test ends.
func startSupervisor(t *testing.T, opts Options, ex Execer) *Supervisor {
	if opts.MaxJitter == 0 {
		opts.MaxJitter = -1 // exact times unless a test asks for jitter
	}
	s := NewSupervisor(opts, ex, testLog(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	})
	return s
}

func cmdSpec(delay, interval, timeout, grace time.Duration, failures uint32) *Spec {
	return &Spec{Type: Command, Cmd: []string{"check"}, Delay: delay, Interval: interval,
		Timeout: timeout, Grace: grace, Failures: failures}
}

var target = Target{TaskID: "web.1", ContainerID: "c1"}

func TestDelayAndIntervalFromEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Each probe takes 3s: with interval 10s measured from the end of a
		// probe, starts are 13s apart after the 15s delay.
		ex := newFakeExec(step{code: 0, dur: 3 * time.Second})
		s := startSupervisor(t, Options{}, ex)
		rec := newRecorder()
		s.Start(target, cmdSpec(15*time.Second, 10*time.Second, 20*time.Second, 10*time.Second, 3), rec.report)

		time.Sleep(50 * time.Second)
		s.Stop(target.TaskID)
		want := []time.Duration{15 * time.Second, 28 * time.Second, 41 * time.Second}
		if got := ex.startTimes(); !slices.Equal(got, want) {
			t.Errorf("probe starts = %v, want %v", got, want)
		}
		// Only the first pass is reported: health did not change.
		if got := rec.all(); len(got) != 1 || !got[0].Healthy || got[0].at != 18*time.Second {
			t.Errorf("reports = %v, want one healthy report at 18s", got)
		}
	})
}

func TestJitterSpreadsFirstProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := newFakeExec(pass)
		s := startSupervisor(t, Options{MaxJitter: DefaultMaxJitter}, ex)
		const n = 50
		for i := range n {
			tg := Target{TaskID: fmt.Sprintf("t%d", i), ContainerID: "c"}
			s.Start(tg, cmdSpec(5*time.Second, 10*time.Second, 0, 0, 3), nil)
		}
		time.Sleep(7 * time.Second)
		starts := ex.startTimes()
		if len(starts) != n {
			t.Fatalf("%d probes in the first 7s, want %d (one per task)", len(starts), n)
		}
		for _, at := range starts {
			if at < 5*time.Second || at >= 6*time.Second {
				t.Errorf("first probe at %v, want in [5s, 6s): delay + jitter below min(interval, 1s)", at)
			}
		}
		if slices.Min(starts) == slices.Max(starts) {
			t.Errorf("all %d first probes at %v: no jitter", n, starts[0])
		}
		for i := range n {
			s.Stop(fmt.Sprintf("t%d", i))
		}
	})
}

func TestJitterBelowShortInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := newFakeExec(pass)
		s := startSupervisor(t, Options{MaxJitter: DefaultMaxJitter}, ex)
		for i := range 20 {
			s.Start(Target{TaskID: fmt.Sprint(i)}, cmdSpec(0, 100*time.Millisecond, 0, 0, 3), nil)
		}
		time.Sleep(150 * time.Millisecond)
		// Second probes start an interval after the first, so at 100ms or
		// later: every probe before 100ms is a first one.
		early := 0
		for _, at := range ex.startTimes() {
			if at < 100*time.Millisecond {
				early++
			}
		}
		if early != 20 {
			t.Errorf("%d first probes before 100ms, want 20: jitter must stay below the 100ms interval", early)
		}
		for i := range 20 {
			s.Stop(fmt.Sprint(i))
		}
	})
}

func TestGraceHidesEarlyFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := newFakeExec(fail)
		s := startSupervisor(t, Options{}, ex)
		rec := newRecorder()
		// Probes at 0, 10, 20, 30s are in the 30s grace (Mesos ignores a
		// failure at exactly the end of grace too); 40s is the first counted.
		s.Start(target, cmdSpec(0, 10*time.Second, 0, 30*time.Second, 3), rec.report)

		time.Sleep(35 * time.Second)
		if got := rec.all(); len(got) != 0 {
			t.Errorf("reports during grace = %v, want none", got)
		}
		if last, ok := s.Last(target.TaskID); !ok || !last.InGrace || last.Healthy || last.ConsecutiveFailures != 0 {
			t.Errorf("Last() during grace = %+v, %v; want an ignored failure", last, ok)
		}
		time.Sleep(time.Minute)
		got := rec.all()
		want := []report{
			{40 * time.Second, Result{TaskID: "web.1", Healthy: false, ConsecutiveFailures: 1}},
			{60 * time.Second, Result{TaskID: "web.1", Healthy: false, Kill: true, ConsecutiveFailures: 3}},
		}
		if !sameReports(got, want) {
			t.Errorf("reports = %v, want %v", got, want)
		}
		if n := ex.calls(); n != 7 {
			t.Errorf("%d probes, want 7 (4 in grace, 3 counted, then none after the kill)", n)
		}
	})
}

func TestGraceEndsAtFirstPass(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := newFakeExec(pass, fail)
		s := startSupervisor(t, Options{}, ex)
		rec := newRecorder()
		s.Start(target, cmdSpec(0, 10*time.Second, 0, time.Hour, 2), rec.report)

		time.Sleep(25 * time.Second)
		s.Stop(target.TaskID)
		want := []report{
			{0, Result{TaskID: "web.1", Healthy: true}},
			{10 * time.Second, Result{TaskID: "web.1", Healthy: false, ConsecutiveFailures: 1}},
			{20 * time.Second, Result{TaskID: "web.1", Kill: true, ConsecutiveFailures: 2}},
		}
		if got := rec.all(); !sameReports(got, want) {
			t.Errorf("reports = %v, want %v: a task that passed once has no more grace", got, want)
		}
	})
}

func TestGraceIncludesDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := newFakeExec(fail)
		s := startSupervisor(t, Options{}, ex)
		rec := newRecorder()
		// The grace (10s) is over before the first probe (delay 15s).
		s.Start(target, cmdSpec(15*time.Second, 10*time.Second, 0, 10*time.Second, 3), rec.report)
		time.Sleep(16 * time.Second)
		s.Stop(target.TaskID)
		if got := rec.all(); len(got) != 1 || got[0].Healthy || got[0].at != 15*time.Second {
			t.Errorf("reports = %v, want the first probe's failure reported at 15s", got)
		}
	})
}

func TestTimeoutIsFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := newFakeExec(step{dur: time.Minute})
		s := startSupervisor(t, Options{}, ex)
		rec := newRecorder()
		s.Start(target, cmdSpec(0, 10*time.Second, 2*time.Second, 0, 2), rec.report)

		time.Sleep(time.Minute)
		got := rec.all()
		want := []report{
			{2 * time.Second, Result{TaskID: "web.1", ConsecutiveFailures: 1}},
			{14 * time.Second, Result{TaskID: "web.1", Kill: true, ConsecutiveFailures: 2}},
		}
		if !sameReports(got, want) {
			t.Fatalf("reports = %v, want %v", got, want)
		}
		if !strings.Contains(got[0].Message, "timed out after 2s") {
			t.Errorf("message %q does not say the probe timed out", got[0].Message)
		}
		// The next probe starts an interval after the timeout, not after the
		// start of the timed-out one.
		if starts := ex.startTimes(); !slices.Equal(starts, []time.Duration{0, 12 * time.Second}) {
			t.Errorf("probe starts = %v, want [0s 12s]", starts)
		}
	})
}

func TestNoTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := newFakeExec(step{code: 0, dur: time.Hour})
		s := startSupervisor(t, Options{}, ex)
		rec := newRecorder()
		s.Start(target, cmdSpec(0, 10*time.Second, 0, 0, 1), rec.report)
		time.Sleep(2 * time.Hour)
		s.Stop(target.TaskID)
		if got := rec.all(); len(got) != 1 || !got[0].Healthy || got[0].at != time.Hour {
			t.Errorf("reports = %v, want one pass after the 1h command: timeout 0 means none", got)
		}
	})
}

func TestReportChangesOnly(t *testing.T) {
	script := []step{pass, fail, fail, pass, pass, fail, pass}
	tests := []struct {
		name string
		opts Options
		want []bool // Healthy of each report
	}{
		{"changes", Options{}, []bool{true, false, true, false, true}},
		{"every failure", Options{EveryFailure: true}, []bool{true, false, false, true, false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ex := newFakeExec(script...)
				s := startSupervisor(t, tt.opts, ex)
				rec := newRecorder()
				s.Start(target, cmdSpec(0, time.Second, 0, 0, 10), rec.report)
				time.Sleep(time.Duration(len(script)-1)*time.Second + time.Millisecond)
				s.Stop(target.TaskID)
				var got []bool
				for _, r := range rec.all() {
					got = append(got, r.Healthy)
					if r.Kill {
						t.Errorf("kill reported below the threshold: %v", r)
					}
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("reported health = %v, want %v (all: %v)", got, tt.want, rec.all())
				}
			})
		})
	}
}

func TestKillOnceAfterConsecutiveFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A pass in the middle resets the count: fail, fail, pass, then 3.
		ex := newFakeExec(fail, fail, pass, fail)
		s := startSupervisor(t, Options{EveryFailure: true}, ex)
		rec := newRecorder()
		s.Start(target, cmdSpec(0, time.Second, 0, 0, 3), rec.report)

		time.Sleep(time.Hour)
		var kills []report
		for _, r := range rec.all() {
			if r.Kill {
				kills = append(kills, r)
			}
		}
		if len(kills) != 1 || kills[0].at != 5*time.Second || kills[0].ConsecutiveFailures != 3 || kills[0].Healthy {
			t.Fatalf("kill reports = %v, want exactly one at 5s after 3 consecutive failures (all: %v)", kills, rec.all())
		}
		if !strings.Contains(kills[0].Message, "command exited with 1") || !strings.Contains(kills[0].Message, "3 consecutive failures") {
			t.Errorf("kill message %q, want the failure and the count", kills[0].Message)
		}
		if n := ex.calls(); n != 6 {
			t.Errorf("%d probes, want 6: probing stops at the kill", n)
		}
		last, ok := s.Last(target.TaskID)
		if !ok || !last.Killed || last.ConsecutiveFailures != 3 {
			t.Errorf("Last() = %+v, %v; want Killed with 3 failures", last, ok)
		}
	})
}

func TestStopEndsTheCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := newFakeExec(pass)
		s := startSupervisor(t, Options{}, ex)
		rec := newRecorder()
		spec := cmdSpec(0, time.Second, 0, 0, 3)
		s.Start(target, spec, rec.report)
		s.StartCheck(target, &CheckSpec{Type: Command, Cmd: []string{"c"}, Interval: time.Second}, nil)
		time.Sleep(2500 * time.Millisecond)

		s.mu.Lock()
		tc := s.tasks[target.TaskID]
		s.mu.Unlock()
		s.Stop(target.TaskID)
		s.Stop(target.TaskID) // idempotent
		s.Stop("unknown")
		synctest.Wait()
		for name, done := range map[string]chan struct{}{"health": tc.health.done, "check": tc.check.done} {
			select {
			case <-done:
			default:
				t.Errorf("%s check goroutine still running after Stop", name)
			}
		}
		n := ex.calls()
		time.Sleep(time.Minute)
		if ex.calls() != n {
			t.Errorf("%d probes after Stop", ex.calls()-n)
		}
		if _, ok := s.Last(target.TaskID); ok {
			t.Error("Last() ok after Stop")
		}
	})
}

func TestStopDuringProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := newFakeExec(step{code: 1, dur: 10 * time.Second})
		s := startSupervisor(t, Options{}, ex)
		rec := newRecorder()
		s.Start(target, cmdSpec(0, time.Second, 0, 0, 1), rec.report)
		time.Sleep(5 * time.Second)
		s.Stop(target.TaskID)
		time.Sleep(time.Minute)
		if got := rec.all(); len(got) != 0 {
			t.Errorf("reports after Stop cancelled the probe in flight: %v", got)
		}
	})
}

func TestRunEndsEveryCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := newFakeExec(step{dur: time.Hour})
		s := NewSupervisor(Options{MaxJitter: -1}, ex, testLog(t))
		for i := range 10 {
			s.Start(Target{TaskID: fmt.Sprint(i)}, cmdSpec(0, time.Second, 0, 0, 3), nil)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
		// Run has waited for every check goroutine; a check started now
		// does nothing.
		s.Start(target, cmdSpec(0, time.Second, 0, 0, 3), nil)
		synctest.Wait()
		if _, ok := s.Last(target.TaskID); ok {
			t.Error("Start after Run ended registered a check")
		}
	})
}

func TestRestartReplacesCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := newFakeExec(pass)
		s := startSupervisor(t, Options{}, ex)
		first, second := newRecorder(), newRecorder()
		s.Start(target, cmdSpec(0, time.Second, 0, 0, 3), first.report)
		time.Sleep(500 * time.Millisecond)
		s.Start(target, cmdSpec(0, time.Second, 0, 0, 3), second.report)
		time.Sleep(9900 * time.Millisecond)
		s.Stop(target.TaskID)
		if len(first.all()) != 1 || len(second.all()) != 1 {
			t.Errorf("reports: first check %v, second %v; want one each", first.all(), second.all())
		}
		if n := ex.calls(); n != 11 {
			t.Errorf("%d probes, want 11: the first check's at 0s, then the second's at 0.5s, 1.5s ... 9.5s", n)
		}
	})
}

func TestMaxConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := newFakeExec(step{code: 0, dur: time.Second})
		s := startSupervisor(t, Options{MaxConcurrent: 3}, ex)
		for i := range 10 {
			s.Start(Target{TaskID: fmt.Sprint(i)}, cmdSpec(0, time.Hour, 0, 0, 3), nil)
		}
		synctest.Wait()
		if got := testutil.ToFloat64(s.metrics.waiting); got != 7 {
			t.Errorf("probes waiting = %v, want 7", got)
		}
		if got := testutil.ToFloat64(s.metrics.inFlight); got != 3 {
			t.Errorf("probes in flight = %v, want 3", got)
		}
		time.Sleep(10 * time.Second)
		ex.mu.Lock()
		peak, ends := ex.peak, slices.Clone(ex.ends)
		ex.mu.Unlock()
		if peak != 3 {
			t.Errorf("at most %d probes ran at once, want 3", peak)
		}
		if len(ends) != 10 || slices.Max(ends) != 4*time.Second {
			t.Errorf("probes ended at %v, want 10 probes done by 4s (3 at a time)", ends)
		}
		for i := range 10 {
			s.Stop(fmt.Sprint(i))
		}
	})
}

func TestLast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := newFakeExec(pass, fail)
		s := startSupervisor(t, Options{}, ex)
		if _, ok := s.Last(target.TaskID); ok {
			t.Error("Last() ok for a task without a check")
		}
		s.Start(target, cmdSpec(time.Second, time.Second, 0, 0, 5), nil)
		if last, ok := s.Last(target.TaskID); !ok || !last.Time.IsZero() {
			t.Errorf("Last() before any probe = %+v, %v; want ok with a zero time", last, ok)
		}
		time.Sleep(1500 * time.Millisecond)
		if last, _ := s.Last(target.TaskID); !last.Healthy || last.Message != "command exited with 0: probe 0" || last.Time.IsZero() {
			t.Errorf("Last() after a pass = %+v", last)
		}
		time.Sleep(2 * time.Second)
		if last, _ := s.Last(target.TaskID); last.Healthy || last.ConsecutiveFailures != 2 || last.Message != "command exited with 1: probe 2" {
			t.Errorf("Last() after two failures = %+v", last)
		}
		s.Stop(target.TaskID)
	})
}

func TestExecErrorIsFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := newFakeExec(step{err: errors.New("container is not running")})
		s := startSupervisor(t, Options{}, ex)
		rec := newRecorder()
		s.Start(target, cmdSpec(0, time.Second, 0, 0, 3), rec.report)
		time.Sleep(500 * time.Millisecond)
		s.Stop(target.TaskID)
		got := rec.all()
		if len(got) != 1 || got[0].Healthy || !strings.Contains(got[0].Message, "container is not running") {
			t.Errorf("reports = %v, want one failure naming the exec error", got)
		}
	})
}

func TestFailureMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := newFakeExec(pass, fail)
		s := startSupervisor(t, Options{}, ex)
		s.Start(target, cmdSpec(0, time.Second, 0, 0, 10), nil)
		time.Sleep(3500 * time.Millisecond)
		s.Stop(target.TaskID)
		if got := testutil.ToFloat64(s.metrics.failures.WithLabelValues(kindHealth, "cmd")); got != 3 {
			t.Errorf("failures = %v, want 3", got)
		}
		if got := testutil.CollectAndCount(s.metrics.latency); got != 1 {
			t.Errorf("latency series = %d, want 1 (health, cmd)", got)
		}
		if got := len(s.Collectors()); got == 0 {
			t.Error("no collectors")
		}
	})
}

func TestGenericCheckReportsChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := newFakeExec(pass, pass, fail, fail, step{dur: time.Hour}, step{dur: time.Hour}, pass)
		s := startSupervisor(t, Options{}, ex)
		var mu sync.Mutex
		var got []string
		spec := &CheckSpec{Type: Command, Cmd: []string{"c"}, Interval: time.Second, Timeout: 500 * time.Millisecond}
		s.StartCheck(target, spec, func(taskID string, st mesos.CheckStatusInfo) {
			mu.Lock()
			defer mu.Unlock()
			if taskID != target.TaskID || st.GetType() != mesos.CheckInfo_COMMAND || st.Command == nil {
				t.Errorf("report(%q, %v): want the task and a COMMAND status", taskID, st)
			}
			if st.Command.ExitCode == nil {
				got = append(got, "empty")
			} else {
				got = append(got, fmt.Sprint(*st.Command.ExitCode))
			}
		})
		time.Sleep(20 * time.Second)
		s.Stop(target.TaskID)
		mu.Lock()
		defer mu.Unlock()
		// A timeout is an empty result of the right type; a generic check
		// goes on probing whatever happens.
		if want := []string{"0", "1", "empty", "0"}; !slices.Equal(got, want) {
			t.Errorf("check results = %v, want %v", got, want)
		}
		if n := ex.calls(); n < 15 {
			t.Errorf("%d probes in 20s, want the check to keep going", n)
		}
		if got := testutil.ToFloat64(s.metrics.failures.WithLabelValues(kindCheck, "cmd")); got != 2 {
			t.Errorf("check failures = %v, want 2 (the timeouts)", got)
		}
	})
}

// sameReports compares times, health, kill and counts; messages are checked
// by the tests that care.
func sameReports(got, want []report) bool {
	return slices.EqualFunc(got, want, func(g, w report) bool {
		return g.at == w.at && g.TaskID == w.TaskID && g.Healthy == w.Healthy && g.Kill == w.Kill &&
			g.ConsecutiveFailures == w.ConsecutiveFailures
	})
}
