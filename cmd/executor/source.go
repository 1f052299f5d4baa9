package main

import (
	"os"
	"time"

	"github.com/mdx-executor/mdx/agent"
	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/isolation"
	"github.com/mdx-executor/mdx/status"
	"github.com/mdx-executor/mdx/task"
)

// stateSource composes the status socket's view from the owners of each
// piece of state; it holds none itself.
type stateSource struct {
	cfg       Config
	instance  string
	started   time.Time
	mgr       *task.Manager
	link      *agent.Client
	docker    containerd.DaemonInfo
	dockerAPI string
	cgroups   isolation.Info
}

func (s *stateSource) State() status.State {
	ls := s.link.Stats()
	st := status.State{
		ExecutorID:            s.cfg.Agent.ExecutorID,
		FrameworkID:           s.cfg.Agent.FrameworkID,
		AgentID:               s.cfg.Agent.AgentID,
		Instance:              s.instance,
		PID:                   os.Getpid(),
		StartedAt:             s.started,
		AgentConnected:        ls.Connected,
		UnacknowledgedUpdates: len(ls.Unacked),
		Docker: status.DockerState{
			APIVersion:    s.dockerAPI,
			StorageDriver: s.docker.Driver,
			CgroupVersion: s.docker.CgroupVersion,
		},
		Cgroups: s.cgroups.String(),
	}
	for _, u := range ls.Unacked {
		st.Unacknowledged = append(st.Unacknowledged, status.PendingUpdate{
			TaskID: u.TaskID, State: u.State.String(), UUID: u.UUID, AgeSeconds: u.Age.Seconds(),
		})
	}
	views := s.mgr.Snapshot()
	st.Tasks = make([]status.Task, 0, len(views))
	for _, v := range views {
		st.Tasks = append(st.Tasks, taskView(v))
	}
	return st
}

func taskView(v task.View) status.Task {
	t := status.Task{
		TaskID: v.TaskID, State: v.State, ContainerID: v.ContainerID, Healthy: v.Healthy,
		Image: v.Image, IP: v.IP, ExitCode: v.ExitCode, Reason: v.Reason, Message: v.Message,
		StartedAt: v.StartedAt, FinishedAt: v.FinishedAt,
	}
	for _, h := range v.History {
		t.History = append(t.History, status.HistoryEntry{State: h.State, Reason: h.Reason, Message: h.Message, Time: h.Time})
	}
	return t
}
