package health

import (
	"context"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxConcurrent = 32
	DefaultMaxOutput     = 1024
	DefaultMaxJitter     = time.Second
)

// Options configures a Supervisor. Zero values mean the documented defaults.
type Options struct {
	// MaxConcurrent caps the probes running at once over all tasks; a probe
	// that is due waits for a slot, and its timeout starts only once it has
	// one. Default DefaultMaxConcurrent.
	MaxConcurrent int
	// EveryFailure reports every failed probe, as the Mesos built-in
	// executors do, instead of only changes of health.
	EveryFailure bool
	// MaxOutput bounds the output of a command probe kept for the message.
	// Default DefaultMaxOutput.
	MaxOutput int
	// MaxJitter bounds the random time added to each check's first delay,
	// so that tasks launched together do not probe in step. The jitter is
	// below min(interval, MaxJitter). Default DefaultMaxJitter; negative
	// disables it.
	MaxJitter time.Duration
}

// Execer runs a command inside a running container and returns its exit code
// and at most maxOutput bytes of its output. *containerd.Client implements it.
// An error means the command could not be run to its end (including ctx's
// deadline passing); a non-zero exit code is not an error.
type Execer interface {
	Exec(ctx context.Context, containerID string, cmd []string, maxOutput int) (exitCode int, output []byte, err error)
}

// Target is the container a task's checks probe.
type Target struct {
	TaskID      string
	ContainerID string // the full id: command probes, and the pid's cgroup check
	// IP is the container's own address, for information only: probes
	// never use it, since after the container's end it may belong to
	// another container.
	IP string
	// Pid is the container's init process as inspected after start. HTTP
	// and TCP probes go to 127.0.0.1 in its network namespace, opened when
	// the check starts once /proc/<pid>/cgroup shows ContainerID, and held
	// until the task's checks stop. Required for HTTP and TCP probes, except
	// on the host network.
	Pid int
	// HostNetwork says the container shares the host's network namespace.
	// Without a Pid, probes then go to 127.0.0.1 in the executor's own
	// namespace.
	HostNetwork bool
}

// Result is a health report for one task.
type Result struct {
	TaskID  string
	Healthy bool
	// Kill says the task reached its consecutive-failures threshold and must
	// be killed. It is reported once, after which the check has stopped.
	Kill bool
	// Message says what the last probe did, e.g. "HTTP GET
	// http://172.17.0.3:8080/ returned 503".
	Message             string
	ConsecutiveFailures int
}

// LastResult is the latest probe of a task's health check, for /state.
type LastResult struct {
	Time                time.Time // when the probe ended; zero before the first
	Healthy             bool
	Message             string
	ConsecutiveFailures int
	// InGrace says the last probe failed while the task had never passed
	// one and the grace period was still running, so it was ignored.
	InGrace bool
	// Killed says the check reached its threshold and asked for a kill.
	Killed bool
}

// Supervisor runs the health checks and generic checks of every task of the
// executor: one goroutine per check, with a timer between probes, and a cap on
// the probes running at once. Start and Stop may be called from any
// goroutine; Run must be running (or about to run) for the checks' lifetime.
type Supervisor struct {
	opts    Options
	execer  Execer
	log     *logrus.Entry
	sem     chan struct{} // one token per running probe
	metrics *metrics

	// base is the parent context of every check. It is a field, not a
	// parameter of Start, because Start is called from the task manager's
	// event loop, whose calls carry no context that outlives the check; Run
	// cancels it when its own ctx ends.
	base       context.Context
	cancelBase context.CancelFunc
	wg         sync.WaitGroup // one count per check goroutine

	mu sync.Mutex // guards everything that follows
	// closed is set when Run has ended: Start then starts nothing.
	closed bool
	tasks  map[string]*taskChecks
}

// taskChecks are the checks of one task; either may be nil.
type taskChecks struct {
	health *healthChecker
	check  *genericChecker
	// ns is the network namespace both checks probe from; nil until a
	// check that needs it starts. Each check goroutine holds it.
	ns *nsHandle
}

// NewSupervisor returns a Supervisor that runs command probes through execer
// (which may be nil if no task has a command check). A nil log discards.
func NewSupervisor(opts Options, execer Execer, log *logrus.Entry) *Supervisor {
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent
	}
	if opts.MaxOutput <= 0 {
		opts.MaxOutput = DefaultMaxOutput
	}
	if opts.MaxJitter == 0 {
		opts.MaxJitter = DefaultMaxJitter
	}
	if log == nil {
		discard := logrus.New()
		discard.SetOutput(io.Discard)
		log = logrus.NewEntry(discard)
	}
	base, cancel := context.WithCancel(context.Background())
	return &Supervisor{
		opts:       opts,
		execer:     execer,
		log:        log,
		sem:        make(chan struct{}, opts.MaxConcurrent),
		metrics:    newMetrics(),
		base:       base,
		cancelBase: cancel,
		tasks:      make(map[string]*taskChecks),
	}
}

// Run keeps the checks running until ctx ends, then stops every check, waits
// for their goroutines to finish, and returns nil. Checks started before Run
// begins run from the moment they are started. Start does nothing once Run
// has returned. Call Run once.
func (s *Supervisor) Run(ctx context.Context) error {
	<-ctx.Done()
	s.mu.Lock()
	s.closed = true
	s.tasks = make(map[string]*taskChecks)
	s.mu.Unlock()
	s.cancelBase()
	// A check inside its report callback holds this up until the callback
	// returns: callbacks must not wait for anything Run's caller does after
	// Run returns.
	s.wg.Wait()
	return nil
}

// Collectors returns the Prometheus collectors of the supervisor's probes:
// latency by kind and type, failures by kind and type, probes in flight and
// probes waiting for a slot.
func (s *Supervisor) Collectors() []prometheus.Collector { return s.metrics.collectors() }

// Start begins t's health check, with spec as returned by Parse; a nil spec
// does nothing. Call it when TASK_RUNNING is sent: the delay and the grace
// period count from this call. report is called from the check's goroutine
// for the first result, for every change of health (every failure too with
// Options.EveryFailure) and once with Kill set, after which the check ends.
// report may call Stop; it should return quickly, since the check's next
// probe and Run's return wait for it. A second Start for the same task
// replaces its health check.
func (s *Supervisor) Start(t Target, spec *Spec, report func(Result)) {
	if spec == nil {
		return
	}
	sp := *spec
	if sp.Interval <= 0 {
		sp.Interval = DefaultInterval
	}
	if sp.Failures == 0 {
		sp.Failures = DefaultFailures
	}
	p := probe{typ: sp.Type, port: sp.Port, path: sp.Path, scheme: sp.Scheme, statuses: sp.Statuses, cmd: sp.Cmd}
	c := &healthChecker{
		spec:   sp,
		target: t,
		prober: newProber(p, t, nil, s.execer, s.opts.MaxOutput),
		report: report,
		log:    s.checkLog(t, kindHealth, sp.Type),
		start:  time.Now(),
	}
	s.launch(t.TaskID, c, c.start, sp.Delay, sp.Interval)
}

// checkLog is the logger of one check of t.
func (s *Supervisor) checkLog(t Target, kind string, typ Type) *logrus.Entry {
	return s.log.WithFields(logrus.Fields{
		"task_id": t.TaskID, "container_id": t.ContainerID, "check": kind, "check_type": string(typ),
	})
}

// StartCheck begins t's generic check, with spec as returned by ParseCheck; a
// nil spec does nothing. report is called from the check's goroutine with the
// first result and then whenever the result differs from the previous one. A
// generic check never asks for a kill. A second StartCheck for the same task
// replaces its generic check.
func (s *Supervisor) StartCheck(t Target, spec *CheckSpec, report func(taskID string, status mesos.CheckStatusInfo)) {
	if spec == nil {
		return
	}
	sp := *spec
	if sp.Interval <= 0 {
		sp.Interval = DefaultInterval
	}
	p := probe{typ: sp.Type, port: sp.Port, path: sp.Path, scheme: "http", cmd: sp.Cmd}
	c := &genericChecker{
		spec:   sp,
		target: t,
		prober: newProber(p, t, nil, s.execer, s.opts.MaxOutput),
		report: report,
		log:    s.checkLog(t, kindCheck, sp.Type),
	}
	s.launch(t.TaskID, c, time.Now(), sp.Delay, sp.Interval)
}

// checker is one check's loop: a *healthChecker or a *genericChecker.
type checker interface {
	// step runs one probe and handles its result; false ends the check.
	step(ctx context.Context, s *Supervisor) bool
	life() *lifecycle
	probes() *prober
}

// lifecycle is what the Supervisor keeps to end a check.
type lifecycle struct {
	cancel context.CancelFunc // set by launch before the goroutine starts
	done   chan struct{}      // closed when the goroutine has ended
}

func (l *lifecycle) life() *lifecycle { return l }

// launch registers c as the task's check of its kind, stopping the one it
// replaces, and starts its goroutine: the first probe at start + delay +
// jitter, then interval after the end of each probe.
func (s *Supervisor) launch(taskID string, c checker, start time.Time, delay, interval time.Duration) {
	ctx, cancel := context.WithCancel(s.base)
	h := c.life()
	h.cancel, h.done = cancel, make(chan struct{})

	var old checker
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		s.log.WithField("task_id", taskID).Warn("check not started: the health supervisor has stopped")
		return
	}
	tc := s.tasks[taskID]
	if tc == nil {
		tc = &taskChecks{}
		s.tasks[taskID] = tc
	}
	switch c := c.(type) {
	case *healthChecker:
		if tc.health != nil {
			old = tc.health
		}
		tc.health = c
	case *genericChecker:
		if tc.check != nil {
			old = tc.check
		}
		tc.check = c
	}
	ns := s.netnsLocked(tc, c.probes())
	s.wg.Add(1)
	s.mu.Unlock()
	if old != nil {
		old.life().cancel()
	}

	first := time.Until(start.Add(delay + s.jitter(interval)))
	go func() {
		defer s.wg.Done()
		defer close(h.done)
		defer cancel()
		if ns != nil {
			defer ns.release()
			// Pin the namespace now, not at the first probe after
			// the delay; a failure shows in every probe's result.
			if err := ns.open(); err != nil {
				s.log.WithFields(logrus.Fields{"task_id": taskID, "container_id": ns.target.ContainerID}).
					WithError(err).Warn("cannot open the container's network namespace: its probes will fail")
			}
		}
		timer := time.NewTimer(max(first, 0))
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			if !c.step(ctx, s) {
				return
			}
			// Mesos measures the interval from the end of one probe to
			// the start of the next, so a slow probe never overlaps the
			// next one.
			timer.Reset(interval)
		}
	}()
}

// netnsLocked gives p the task's network namespace handle, held once more
// for p's check, if p's probes dial: the handle of the task's other check
// when it is for the same container, a new one otherwise. s.mu must be held.
func (s *Supervisor) netnsLocked(tc *taskChecks, p *prober) *nsHandle {
	if p.probe.typ != HTTP && p.probe.typ != TCP {
		return nil
	}
	if tc.ns != nil && sameContainer(tc.ns.target, p.target) && tc.ns.hold() {
		p.ns = tc.ns
		return tc.ns
	}
	tc.ns = newNSHandle(p.target)
	p.ns = tc.ns
	return tc.ns
}

// sameContainer says whether a and b name the same container process.
func sameContainer(a, b Target) bool {
	return a.ContainerID == b.ContainerID && a.Pid == b.Pid && a.HostNetwork == b.HostNetwork
}

// jitter is the random extra first delay of a check.
func (s *Supervisor) jitter(interval time.Duration) time.Duration {
	limit := min(interval, s.opts.MaxJitter)
	if limit <= 0 {
		return 0
	}
	return rand.N(limit)
}

// Stop ends the task's health check and generic check, if any. It does not
// wait for a probe in flight, which is cancelled; a report that was already
// being delivered may still arrive after Stop returns, so the consumer must
// ignore reports for tasks it no longer runs. Stop is idempotent.
func (s *Supervisor) Stop(taskID string) {
	s.mu.Lock()
	tc := s.tasks[taskID]
	delete(s.tasks, taskID)
	s.mu.Unlock()
	if tc == nil {
		return
	}
	if tc.health != nil {
		tc.health.cancel()
	}
	if tc.check != nil {
		tc.check.cancel()
	}
}

// Last returns the latest result of the task's health check. ok is false when
// the task has no health check (none given, or stopped). A zero Time means
// no probe has finished yet.
func (s *Supervisor) Last(taskID string) (LastResult, bool) {
	s.mu.Lock()
	tc := s.tasks[taskID]
	s.mu.Unlock()
	if tc == nil || tc.health == nil {
		return LastResult{}, false
	}
	return tc.health.lastResult(), true
}

// probe runs one probe when a slot is free. ok is false when ctx ended first,
// or during the probe, whose result is then meaningless.
func (s *Supervisor) probe(ctx context.Context, p *prober, timeout time.Duration, kind string) (obs observation, ok bool) {
	select {
	case s.sem <- struct{}{}:
	default:
		s.metrics.waiting.Inc()
		select {
		case s.sem <- struct{}{}:
			s.metrics.waiting.Dec()
		case <-ctx.Done():
			s.metrics.waiting.Dec()
			return observation{}, false
		}
	}
	s.metrics.inFlight.Inc()
	start := time.Now()
	obs = p.run(ctx, timeout)
	s.metrics.latency.WithLabelValues(kind, string(p.probe.typ)).Observe(time.Since(start).Seconds())
	s.metrics.inFlight.Dec()
	<-s.sem
	return obs, ctx.Err() == nil
}
