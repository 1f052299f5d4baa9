package containerd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/internal/backoff"
)

// Events stream tuning.
const (
	// reconnectBackoffMin and reconnectBackoffMax bound the wait before an
	// events stream is reopened; the wait doubles per failed attempt.
	reconnectBackoffMin = 100 * time.Millisecond
	reconnectBackoffMax = 5 * time.Second
	// streamHealthyAfter is how long a stream must have stayed open for its
	// end to count as a fresh failure rather than part of an outage, which
	// resets the backoff.
	streamHealthyAfter = 10 * time.Second
	// exitQueueSize buffers events between the reader and the inspects.
	// dockerd drops events for a subscriber that stays 1024 events behind
	// for 100 ms, silently; the reader therefore never waits on an inspect or
	// on the consumer, and when this queue overflows the stream is reopened
	// and reconciled instead.
	exitQueueSize = 4096
)

var errExitQueueFull = errors.New("exit event queue full")

// List returns the containers carrying all the given labels (a "" value
// matches any value of that key), running ones only unless all is set. An
// empty labels map is refused with ErrNoLabels.
func (c *Client) List(ctx context.Context, labels map[string]string, all bool) ([]Summary, error) {
	if len(labels) == 0 {
		return nil, fmt.Errorf("list containers: %w", ErrNoLabels)
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	list, err := c.api.ContainerList(ctx, container.ListOptions{All: all, Filters: labelFilters(labels)})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]Summary, 0, len(list))
	for _, s := range list {
		names := make([]string, len(s.Names))
		for i, n := range s.Names {
			names[i] = trimSlash(n)
		}
		sum := Summary{
			ID:      s.ID,
			Names:   names,
			State:   s.State,
			Labels:  s.Labels,
			Created: time.Unix(s.Created, 0),
		}
		for _, m := range s.Mounts {
			if m.Destination == SandboxMountPoint {
				sum.SandboxDir = m.Source
			}
		}
		out = append(out, sum)
	}
	return out, nil
}

func trimSlash(name string) string {
	if len(name) > 0 && name[0] == '/' {
		return name[1:]
	}
	return name
}

func labelFilters(labels map[string]string) filters.Args {
	f := filters.NewArgs()
	for k, v := range labels {
		if v == "" {
			f.Add("label", k)
		} else {
			f.Add("label", k+"="+v)
		}
	}
	return f
}

// WatchExits reports on out every exit of a container that carries all the
// given labels, until ctx ends; then it returns nil. An empty labels map is
// refused with ErrNoLabels.
//
// It keeps one Docker events stream open (container die and oom events,
// filtered by the labels) and confirms each die with one inspect. Docker's
// stream is lossy, so after every (re)open it also lists the labelled
// containers and reports each one that has exited; after an error it reopens
// the stream from the time of the last event seen, after a jittered backoff.
// An exit can therefore be reported more than once, and one that happened
// before the call is reported too. Sends on out block, and block the
// reporting of further exits, until the consumer receives or ctx ends.
func (c *Client) WatchExits(ctx context.Context, labels map[string]string, out chan<- Exit) error {
	if len(labels) == 0 {
		return fmt.Errorf("watch exits: %w", ErrNoLabels)
	}
	return watchExits(ctx, clientSource{c}, &c.reconnects, c.log.WithField("component", "exit_watch"), labels, out, defaultTuning())
}

// eventsSource is what exit watching needs of the daemon: the events
// stream, the labelled list that reconciles after every (re)open, and the
// inspect some dies need. *Client provides it through clientSource; unit
// tests give a scripted fake.
type eventsSource interface {
	Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error)
	List(ctx context.Context, labels map[string]string, all bool) ([]Summary, error)
	Inspect(ctx context.Context, id string) (Info, error)
}

// clientSource opens events on the Client's stream connection pool (an
// events stream holds its connection for as long as it is open).
type clientSource struct{ c *Client }

func (s clientSource) Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error) {
	return s.c.stream.Events(ctx, opts)
}

func (s clientSource) List(ctx context.Context, labels map[string]string, all bool) ([]Summary, error) {
	return s.c.List(ctx, labels, all)
}

func (s clientSource) Inspect(ctx context.Context, id string) (Info, error) {
	return s.c.Inspect(ctx, id)
}

// watchTuning holds the constants of exit watching and its clock, so that
// unit tests can shrink the queue and drive time.
type watchTuning struct {
	queueSize    int
	backoffMin   time.Duration
	backoffMax   time.Duration
	healthyAfter time.Duration
	oomMemory    time.Duration
	now          func() time.Time
	after        func(time.Duration) <-chan time.Time
}

func defaultTuning() watchTuning {
	return watchTuning{
		queueSize:    exitQueueSize,
		backoffMin:   reconnectBackoffMin,
		backoffMax:   reconnectBackoffMax,
		healthyAfter: streamHealthyAfter,
		oomMemory:    oomMemory,
		now:          time.Now,
		after:        time.After,
	}
}

// watchExits is WatchExits on any eventsSource; reconnects counts reopened
// streams.
func watchExits(ctx context.Context, src eventsSource, reconnects *atomic.Uint64, log *logrus.Entry,
	labels map[string]string, out chan<- Exit, tune watchTuning) error {
	w := &exitWatch{
		src:    src,
		tune:   tune,
		log:    log,
		out:    out,
		labels: maps.Clone(labels),
		filter: labelFilters(labels),
		cursor: tune.now(),
	}
	w.filter.Add("type", string(events.ContainerEventType))
	w.filter.Add("event", string(events.ActionDie))
	w.filter.Add("event", string(events.ActionOOM))

	// Jitter over the upper half of the backoff, so that many executors on
	// one host do not reconnect in step after a daemon restart.
	bo := backoff.Exp{Base: tune.backoffMin, Max: tune.backoffMax, Jitter: 0.5}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			reconnects.Add(1)
		}
		opened := tune.now()
		err := w.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if tune.now().Sub(opened) >= tune.healthyAfter {
			bo.Reset()
		}
		wait := bo.Next()
		w.log.WithError(err).WithField("retry_in", wait.String()).Warn("docker events stream ended, reopening")
		select {
		case <-ctx.Done():
			return nil
		case <-tune.after(wait):
		}
	}
}

// exitWatch is the state of one WatchExits call; only its goroutine uses it.
type exitWatch struct {
	src    eventsSource
	tune   watchTuning
	log    *logrus.Entry
	out    chan<- Exit
	labels map[string]string
	filter filters.Args
	// cursor is the time of the last event seen, or of the start of the
	// watch; a reopened stream replays from it.
	cursor time.Time
	// ooms remembers containers that had an "oom" event, and when. Docker
	// sets State.OOMKilled unreliably when many containers hit their limit
	// at once, and its oom event may come before or after the die.
	ooms map[string]time.Time
	// died remembers recent dies, so that a late oom event can correct the
	// exit already reported.
	died map[string]Exit
}

// oomMemory bounds how long oom and die events are remembered.
const oomMemory = 5 * time.Minute

// session opens one events stream, reconciles, and reports exits until the
// stream fails or ctx ends. It returns why the stream ended.
func (w *exitWatch) session(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	msgs, errs := w.src.Events(sctx, events.ListOptions{
		Since:   w.cursor.UTC().Format(time.RFC3339Nano),
		Filters: w.filter,
	})

	// The reader only moves events into the queue, so that inspects and a
	// slow consumer never hold up the daemon's side of the stream.
	queue := make(chan events.Message, w.tune.queueSize)
	readErr := make(chan error, 1)
	go func() {
		defer close(queue)
		for {
			select {
			case m := <-msgs:
				select {
				case queue <- m:
				default:
					readErr <- errExitQueueFull
					return
				}
			case err := <-errs:
				if err == nil {
					err = errors.New("events stream closed")
				}
				readErr <- err
				return
			}
		}
	}()
	defer func() {
		cancel()
		// Drain, so the reader (which never blocks on the queue) is gone
		// before the next session starts.
		for range queue {
		}
	}()

	// Events returns once dockerd has answered, so every exit from here on
	// is in the stream; the list catches those before it and any lost while
	// no stream was open.
	if err := w.reconcile(ctx); err != nil {
		return err
	}
	for m := range queue {
		if t := eventTime(m); t.After(w.cursor) {
			w.cursor = t
		}
		if err := w.handle(ctx, m); err != nil {
			return err
		}
	}
	return <-readErr
}

// reconcile reports every labelled container that has already exited.
func (w *exitWatch) reconcile(ctx context.Context) error {
	list, err := w.src.List(ctx, w.labels, true)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	for _, s := range list {
		if s.State != container.StateExited && s.State != container.StateDead {
			continue
		}
		info, err := w.src.Inspect(ctx, s.ID)
		if err != nil {
			if IsNotFound(err) {
				continue // removed since the list; whoever removed it knew
			}
			return fmt.Errorf("reconcile: %w", err)
		}
		if err := w.send(ctx, exitFromInfo(info)); err != nil {
			return err
		}
	}
	return nil
}

// handle turns one event into an Exit.
func (w *exitWatch) handle(ctx context.Context, m events.Message) error {
	log := w.log.WithField("container_id", m.Actor.ID)
	switch m.Action {
	case events.ActionOOM:
		// Not an exit by itself: the OOM killer may have hit a child while
		// PID 1 lives on. Remember it for the die; if the die was already
		// reported, report it again with the OOM flag (consumers are
		// idempotent and upgrade an exit they are still handling).
		log.Info("container hit its memory limit")
		w.forget()
		w.ooms[m.Actor.ID] = w.tune.now()
		if e, ok := w.died[m.Actor.ID]; ok && !e.OOMKilled {
			e.OOMKilled = true
			w.died[m.Actor.ID] = e
			return w.send(ctx, e)
		}
		return nil
	case events.ActionDie:
	default:
		return nil
	}
	// The die event carries the exit code, so report from it: an inspect
	// right after a die waits for the container lock that Docker holds
	// through the network teardown and unmount (about 50 ms here), which
	// would sit in every task's exit -> update latency.
	exit, ok := exitFromEvent(m)
	w.forget()
	if _, seen := w.ooms[exit.ContainerID]; seen {
		exit.OOMKilled = true
	}
	if !ok || (exit.ExitCode == 137 && !exit.OOMKilled) {
		// No exit code in the event, or a SIGKILL that only Docker's
		// OOMKilled flag can explain: worth the inspect.
		info, err := w.src.Inspect(ctx, m.Actor.ID)
		switch {
		case err == nil && !info.Running:
			exit = exitFromInfo(info)
			if _, seen := w.ooms[exit.ContainerID]; seen {
				exit.OOMKilled = true
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case IsNotFound(err):
			log.Debug("container removed before its die was inspected, reporting exit from the event")
		case err != nil:
			log.WithError(err).Warn("inspect after die failed, reporting exit from the event")
		}
	}
	w.died[exit.ContainerID] = exit
	return w.send(ctx, exit)
}

// forget drops oom and die records older than oomMemory.
func (w *exitWatch) forget() {
	if w.ooms == nil {
		w.ooms, w.died = map[string]time.Time{}, map[string]Exit{}
	}
	cut := w.tune.now().Add(-w.tune.oomMemory)
	for id, t := range w.ooms {
		if t.Before(cut) {
			delete(w.ooms, id)
		}
	}
	for id, e := range w.died {
		if e.FinishedAt.Before(cut) {
			delete(w.died, id)
		}
	}
}

func (w *exitWatch) send(ctx context.Context, exit Exit) error {
	exit.Sent = time.Now()
	select {
	case w.out <- exit:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func exitFromInfo(info Info) Exit {
	return Exit{
		ContainerID: info.ID,
		TaskID:      info.Labels[LabelTask],
		ExitCode:    info.ExitCode,
		OOMKilled:   info.OOMKilled,
		FinishedAt:  info.FinishedAt,
		Error:       info.Error,
	}
}

// exitFromEvent reads an exit from a die event; ok is false when the event
// has no exit code.
func exitFromEvent(m events.Message) (Exit, bool) {
	code, err := strconv.Atoi(m.Actor.Attributes["exitCode"])
	return Exit{
		ContainerID: m.Actor.ID,
		TaskID:      m.Actor.Attributes[LabelTask],
		ExitCode:    code,
		FinishedAt:  eventTime(m),
	}, err == nil
}

func eventTime(m events.Message) time.Time {
	if m.TimeNano != 0 {
		return time.Unix(0, m.TimeNano)
	}
	return time.Unix(m.Time, 0)
}
