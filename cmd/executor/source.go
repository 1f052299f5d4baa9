package main

import (
	"os"
	"time"

	"github.com/mdx-executor/mdx/agent"
	"github.com/mdx-executor/mdx/cleanup"
	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/isolation"
	"github.com/mdx-executor/mdx/policy"
	"github.com/mdx-executor/mdx/reaper"
	"github.com/mdx-executor/mdx/status"
	"github.com/mdx-executor/mdx/task"
)

// stateSource composes the status socket's view from the owners of each
// piece of state; it holds none itself.
type stateSource struct {
	cfg       Config
	policy    policy.Policy
	instance  string
	started   time.Time
	mgr       *task.Manager
	link      *agent.Client
	docker    containerd.DaemonInfo
	dockerAPI string
	iso       isolation.Decision
	stats     *isolation.Collector // nil when cgroup stats cannot be read
	storage   cleanup.StorageReport
	remover   *cleanup.Remover
	sweeper   *cleanup.Sweeper
	images    *cleanup.ImageCollector
	reaper    *reaper.Reaper
	zombies   *reaper.ZombieWatch
	pulls     func() []containerd.PullInfo
	// previous is what the start-up removal of earlier instances found;
	// /state shows its live instances until the first sweep reports.
	previous cleanup.PreviousReport
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
			Warnings:      s.storage.Warnings,
		},
		Cgroups: s.iso.Host.String(),
		Isolation: &status.IsolationState{Mode: string(s.iso.Mode), Reason: s.iso.Reason,
			CgroupParent: s.iso.Parent, Warnings: s.iso.Warnings},
	}
	for _, u := range ls.Unacked {
		st.Unacknowledged = append(st.Unacknowledged, status.PendingUpdate{
			TaskID: u.TaskID, State: u.State.String(), UUID: u.UUID, AgeSeconds: u.Age.Seconds(),
		})
	}
	st.Policy = &status.PolicyState{File: s.policy.File, FileStatus: s.policy.FileStatus}
	for _, ps := range s.policy.Settings() {
		st.Policy.Settings = append(st.Policy.Settings, status.PolicySetting{Name: ps.Name, Value: ps.Value, Source: string(ps.Source)})
	}
	st.Cleanup = s.cleanupState()
	st.OrphansReaped = s.reaper.Stats().OrphansReaped
	if s.pulls != nil {
		st.Pulls = pullViews(s.pulls(), time.Now())
	}
	zombies := s.zombies.Counts()
	views := s.mgr.Snapshot()
	var stats map[string]isolation.Stats
	if s.stats != nil {
		stats = s.stats.Stats(running(views))
	}
	st.Tasks = make([]status.Task, 0, len(views))
	for _, v := range views {
		t := taskView(v)
		t.Zombies = zombies[v.TaskID]
		if x, ok := stats[v.ContainerID]; ok && v.Pid > 0 {
			t.Stats = statsView(x)
		}
		st.Tasks = append(st.Tasks, t)
	}
	return st
}

func (s *stateSource) cleanupState() *status.CleanupState {
	rs := s.remover.Stats()
	c := &status.CleanupState{
		QueueDepth: rs.Depth, Paused: rs.Paused, Retries: rs.Retries, Removed: rs.Removed,
		OldestStuckSeconds: rs.OldestStuck.Seconds(),
	}
	for _, x := range rs.Stuck {
		sr := status.StuckRemoval{ContainerID: x.ContainerID, TaskID: x.TaskID, Attempts: x.Attempts,
			FailingSeconds: x.FailingFor.Seconds(), LastError: x.LastError}
		for _, h := range x.Holders {
			sr.Holders = append(sr.Holders, status.Holder{PID: h.PID, Command: h.Command, MountNS: h.MountNS, Mountpoint: h.Mountpoint})
		}
		c.Stuck = append(c.Stuck, sr)
	}
	ss := s.sweeper.Stats()
	if !ss.LastSweep.IsZero() {
		t := ss.LastSweep
		c.LastSweep = &t
	}
	c.SandboxesRemoved = ss.SandboxesRemoved
	for _, o := range ss.Orphans {
		c.Orphans = append(c.Orphans, status.Orphan{ContainerID: o.ContainerID, TaskID: o.TaskID,
			FrameworkID: o.FrameworkID, ExecutorID: o.ExecutorID, State: o.State, Reason: o.Reason})
	}
	live := s.previous.Live
	if ss.Sweeps > 0 {
		live = ss.LiveInstances
	}
	for _, li := range live {
		c.LiveInstances = append(c.LiveInstances, status.LiveInstance{Instance: li.Instance, PID: li.PID,
			Containers: li.Containers, Reason: li.Why})
	}
	if s.images != nil {
		is := s.images.Stats()
		c.ImagesTracked, c.ImagesRemoved = is.Tracked, is.Removed
	}
	return c
}

// taskView converts a task without its history (GET /state leaves it out).
func taskView(v task.View) status.Task {
	t := status.Task{
		TaskID: v.TaskID, State: v.State, ContainerID: v.ContainerID, Healthy: v.Healthy,
		Image: v.Image, IP: v.IP, ExitCode: v.ExitCode, Reason: v.Reason, Message: v.Message,
		StartedAt: v.StartedAt, FinishedAt: v.FinishedAt, Launch: v.Launch,
	}
	for _, n := range v.Networks {
		t.Networks = append(t.Networks, status.TaskNetwork{Name: n.Name, IfName: n.IfName, IPs: n.IPs})
	}
	return t
}

// Task is one task with its status history, for GET /tasks/{id}.
func (s *stateSource) Task(id string) (status.Task, bool) {
	for _, v := range s.mgr.Snapshot() {
		if v.TaskID != id {
			continue
		}
		t := taskView(v)
		t.Zombies = s.zombies.Counts()[id]
		if s.stats != nil && v.Pid > 0 {
			if x, err := s.stats.Reader().Get(v.ContainerID); err == nil {
				t.Stats = statsView(x)
			}
		}
		for _, h := range v.History {
			t.History = append(t.History, status.HistoryEntry{State: h.State, Reason: h.Reason, Message: h.Message, Time: h.Time})
		}
		return t, true
	}
	return status.Task{}, false
}

// pullViews converts the image pulls in flight.
func pullViews(pulls []containerd.PullInfo, now time.Time) []status.Pull {
	out := make([]status.Pull, 0, len(pulls))
	for _, p := range pulls {
		out = append(out, status.Pull{Image: p.Image, TaskIDs: p.TaskIDs, BytesDone: p.BytesDone,
			BytesTotal: p.BytesTotal, StartedAt: p.StartedAt, ElapsedSeconds: now.Sub(p.StartedAt).Seconds(),
			Status: p.Status})
	}
	return out
}
