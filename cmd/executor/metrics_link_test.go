package main

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/agent"
	"github.com/mdx-executor/mdx/agent/localagent"
)

// TestUpdatesRejectedMetric: an update the local agent refuses with 400
// shows in /metrics as mesos_executor_updates_rejected_total.
func TestUpdatesRejectedMetric(t *testing.T) {
	la := localagent.New(localagent.Options{Checkpoint: true})
	if err := la.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = la.Close() })
	l := logrus.New()
	l.SetOutput(io.Discard)
	link := agent.New(agent.Config{
		FrameworkID:       localagent.DefaultFrameworkID,
		ExecutorID:        localagent.DefaultExecutorID,
		URL:               "http://" + la.Endpoint() + localagent.APIPath,
		Checkpoint:        true,
		HeartbeatInterval: -1,
	}, logrus.NewEntry(l))
	rejected := make(chan struct{}, 1)
	link.OnReject = func(string, mesos.TaskState, []byte, error) { rejected <- struct{}{} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- link.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	reg := prometheus.NewRegistry()
	reg.MustRegister(linkCollectors(link)...)
	const name = "mesos_executor_updates_rejected_total"
	if got := testutil.ToFloat64(linkCollectors(link)[0]); got != 0 {
		t.Fatalf("%s = %v before any update, want 0", name, got)
	}

	var launched bool
	la.Launch(localagent.Task("t1", nil, 0.1, 32))
	for !launched {
		select {
		case ev := <-link.Events():
			launched = ev.GetType() == executor.Event_LAUNCH
		case <-time.After(5 * time.Second):
			t.Fatal("no LAUNCH")
		}
	}
	la.FailNextUpdates(http.StatusBadRequest, 1)
	link.Update(mesos.TaskStatus{TaskID: mesos.TaskID{Value: "t1"}, State: mesos.TASK_RUNNING.Enum()})
	select {
	case <-rejected:
	case <-time.After(5 * time.Second):
		t.Fatal("the update was not rejected")
	}
	n, err := testutil.GatherAndCount(reg, name)
	if err != nil || n != 1 {
		t.Fatalf("GatherAndCount(%s) = %d, %v", name, n, err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			if got := mf.GetMetric()[0].GetCounter().GetValue(); got != 1 {
				t.Errorf("%s = %v, want 1", name, got)
			}
			return
		}
	}
	t.Errorf("%s not exported", name)
}
