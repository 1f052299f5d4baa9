package main

import (
	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/isolation"
	"github.com/mdx-executor/mdx/status"
	"github.com/mdx-executor/mdx/task"
)

// startIsolation decides the isolation mode once, logs it, and opens the
// cgroup stats reader (nil, with a warning, when the cgroupfs cannot be
// opened: stats are missing, tasks still run).
func startIsolation(cfg Config, dinfo containerd.DaemonInfo, log *logrus.Entry) (isolation.Decision, *isolation.Reader) {
	d := isolation.Decide(isolation.Options{
		DockerDriver:        dinfo.CgroupDriver,
		DockerCgroupVersion: dinfo.CgroupVersion,
		ExecutorID:          cfg.Agent.ExecutorID,
		Override:            cfg.CgroupParent,
	})
	fields := logrus.Fields{"isolation": d.Mode, "cgroup_parent": d.Parent, "reason": d.Reason, "cgroups": d.Host.String(),
		"cpu_quota": cfg.CPUQuota, "pids_limit": cfg.PidsLimit}
	if d.Mode == isolation.ModeDegraded {
		log.WithFields(fields).Warn("isolation degraded: task containers get their own limits only")
	} else {
		log.WithFields(fields).Info("isolation decided")
	}
	for _, w := range d.Warnings {
		log.Warn(w)
	}
	r, err := isolation.NewReader(isolation.LayoutOf(d), isolation.DefaultTTL)
	if err != nil {
		log.WithError(err).Warn("task cgroup stats unavailable")
		return d, nil
	}
	return d, r
}

// running lists the tasks whose container runs, for the stats reader.
func running(views []task.View) []isolation.TaskRef {
	var refs []isolation.TaskRef
	for _, v := range views {
		if v.Pid > 0 && v.ContainerID != "" {
			refs = append(refs, isolation.TaskRef{TaskID: v.TaskID, ContainerID: v.ContainerID})
		}
	}
	return refs
}

func runningTasks(mgr *task.Manager) []isolation.TaskRef { return running(mgr.Snapshot()) }

func statsView(s isolation.Stats) *status.TaskStats {
	return &status.TaskStats{
		CPUUserSeconds: s.CPUUserSeconds, CPUSystemSeconds: s.CPUSystemSeconds,
		CPUThrottledPeriods: s.CPUThrottledPeriods, CPUThrottledSeconds: s.CPUThrottledSeconds,
		MemoryBytes: s.MemoryBytes, MemoryPeakBytes: s.MemoryPeakBytes, MemoryCacheBytes: s.MemoryCacheBytes,
		MemoryRSSBytes: s.MemoryRSSBytes, MemoryLimitBytes: s.MemoryLimitBytes,
		Pids: s.Pids, PidsLimit: s.PidsLimit, OOMKills: s.OOMKills, ReadAt: s.ReadAt,
	}
}
