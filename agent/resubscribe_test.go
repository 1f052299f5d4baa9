package agent_test

import (
	"github.com/mdx-executor/mdx/internal/testenv"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/mdx-executor/mdx/agent"
	"github.com/mdx-executor/mdx/agent/localagent"
)

// TestResubscribeWithoutSubscribed: the agent answers SUBSCRIBE with 200
// but SUBSCRIBED never follows (twice). The link does not wait on that
// stream for ever: it closes it and subscribes again, as Mesos's executors
// do every second while unsubscribed, and then works normally. Counted, not
// timed: the 1 s period is the default SubscribedTimeout.
func TestResubscribeWithoutSubscribed(t *testing.T) {
	t.Parallel()
	for _, checkpoint := range []bool{true, false} {
		name := "checkpoint"
		if !checkpoint {
			name = "no checkpoint"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			la := startAgent(t, localagent.Options{Checkpoint: checkpoint})
			la.WithholdSubscribed(2)
			cfg := baseConfig(la.Endpoint())
			// Without checkpointing a lost stream is fatal; a stream that
			// never said SUBSCRIBED was no subscription, so not here.
			cfg.Checkpoint = checkpoint
			var logs testenv.SyncBuffer
			r := run(t, cfg, testLog(t, &logs))
			r.nextWithin(t, executor.Event_SUBSCRIBED, 3*waitTimeout)
			if got := la.SubscribeCalls(); got != 3 {
				t.Errorf("agent answered %d SUBSCRIBEs with a stream, want 2 silent ones and the one that worked", got)
			}
			if got := la.SubscribeCount(); got != 1 {
				t.Errorf("SubscribeCount() = %d, want 1", got)
			}
			if s := r.c.Stats(); s.Reconnects != 0 {
				t.Errorf("Stats().Reconnects = %d: a stream without SUBSCRIBED is no lost subscription", s.Reconnects)
			}
			if !strings.Contains(logs.String(), "sent no SUBSCRIBED; subscribing again") {
				t.Errorf("the missing SUBSCRIBED is not logged")
			}
			// And the link works: a launch, an update, its ACK.
			launch(t, la, r, localagent.Task("t1", nil, 0.1, 32))
			id := r.c.Update(status("t1", mesos.TASK_RUNNING))
			waitUpdate(t, la, id)
			drained(t, r.c)
		})
	}
}

// TestUpdatesNotSentBeforeSubscribed: while the stream has not said
// SUBSCRIBED, queued updates wait (the agent would answer 403 or lose the
// ACK), and they go out once it does.
func TestUpdatesNotSentBeforeSubscribed(t *testing.T) {
	t.Parallel()
	la := startAgent(t, localagent.Options{Checkpoint: true})
	f := newFront(t, "http://"+la.Endpoint(), "")
	r := run(t, baseConfig(f.addr()), nil)
	r.next(t, executor.Event_SUBSCRIBED)
	launch(t, la, r, localagent.Task("t1", nil, 0.1, 32))
	// The next SUBSCRIBE gets a silent stream.
	la.WithholdSubscribed(1)
	la.DropStream()
	eventually(t, "the link to notice the lost stream", func() bool { return !r.c.Stats().Connected })
	r.c.Update(status("t1", mesos.TASK_RUNNING))
	r.next(t, executor.Event_SUBSCRIBED)
	drained(t, r.c)
	if got := la.SubscribeCalls(); got != 3 {
		t.Fatalf("agent saw %d SUBSCRIBEs, want 3 (first, silent, working)", got)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	subs := 0
	for _, c := range f.calls {
		switch c.Type {
		case executor.Call_SUBSCRIBE:
			subs++
		case executor.Call_UPDATE:
			// The update may also have gone out inside the third
			// SUBSCRIBE; an UPDATE call is only allowed after it.
			if subs < 3 {
				t.Errorf("UPDATE sent after %d SUBSCRIBE(s), before the link was subscribed again", subs)
			}
		}
	}
}

// TestRejectedUpdate: an UPDATE the agent refuses with 400 leaves the
// outbox, as it can never be accepted, but not silently: it is logged as an
// error with task_id and state, counted in Stats (exported as
// mesos_executor_updates_rejected_total) and reported through OnReject, and
// the updates after it are delivered.
func TestRejectedUpdate(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusBadRequest, http.StatusConflict, http.StatusUnprocessableEntity} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			t.Parallel()
			la := startAgent(t, localagent.Options{Checkpoint: true})
			type rejection struct {
				taskID string
				state  mesos.TaskState
				err    error
			}
			rejected := make(chan rejection, 4)
			var logs testenv.SyncBuffer
			r := runWith(t, baseConfig(la.Endpoint()), testLog(t, &logs), func(c *agent.Client) {
				c.OnReject = func(taskID string, state mesos.TaskState, _ []byte, err error) {
					rejected <- rejection{taskID, state, err}
				}
			})
			r.next(t, executor.Event_SUBSCRIBED)
			launch(t, la, r, localagent.Task("t1", nil, 0.1, 32))
			la.FailNextUpdates(code, 1)
			r.c.Update(status("t1", mesos.TASK_RUNNING))
			var rj rejection
			select {
			case rj = <-rejected:
			case <-time.After(waitTimeout):
				t.Fatal("OnReject not called")
			}
			if rj.taskID != "t1" || rj.state != mesos.TASK_RUNNING || !strings.Contains(rj.err.Error(), strconv.Itoa(code)) {
				t.Errorf("OnReject(%q, %s, %v), want t1, TASK_RUNNING and an error naming %d", rj.taskID, rj.state, rj.err, code)
			}
			if got := r.c.Stats().RejectedUpdates; got != 1 {
				t.Errorf("Stats().RejectedUpdates = %d, want 1", got)
			}
			if n := r.c.Unacknowledged(); n != 0 {
				t.Errorf("%d updates still in the outbox after the rejection", n)
			}
			var line string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "agent refused a status update") {
					line = l
				}
			}
			for _, want := range []string{"level=error", "task_id=t1", "state=TASK_RUNNING"} {
				if !strings.Contains(line, want) {
					t.Errorf("rejection log line %q lacks %s", line, want)
				}
			}
			// The link carries on: the next update is delivered and ACKed.
			id := r.c.Update(status("t1", mesos.TASK_FINISHED))
			waitUpdate(t, la, id)
			drained(t, r.c)
			if got := r.c.Stats().RejectedUpdates; got != 1 {
				t.Errorf("Stats().RejectedUpdates = %d after a delivered update, want 1", got)
			}
		})
	}
}
