package cleanup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/containerd"
)

// Docker is the part of the Docker adapter the sweeps use.
type Docker interface {
	List(ctx context.Context, labels map[string]string, all bool) ([]containerd.Summary, error)
	Remove(ctx context.Context, id string) error
}

// PreviousReport is what RemovePreviousInstances did.
type PreviousReport struct {
	// Removed counts the containers of dead earlier instances removed.
	Removed int
	// Live lists the other instances found alive, whose containers were
	// left alone.
	Live []LiveInstance
}

// RemovePreviousInstances kills and removes every container labelled with
// this framework and executor id that another executor instance created,
// once live proves that instance dead (see instanceVerdict). live.Instance
// must be this executor's instance id: its own containers are never
// touched.
//
// When an executor dies (SIGKILL, OOM) the agent reports its tasks
// TASK_FAILED "executor terminated", but their Docker containers are not in
// the executor's cgroup and keep running. A relaunched executor with the same
// ids is the first to know they are orphans. But the same ids on one daemon
// can also belong to a live executor (two agents sharing a Docker daemon, an
// instance started by hand): its containers are running tasks, so they are
// only reported, in the log and in the returned report.
func RemovePreviousInstances(ctx context.Context, d Docker, live Liveness, frameworkID, executorID string, log *logrus.Entry) (PreviousReport, error) {
	var rep PreviousReport
	if live.Instance == "" {
		return rep, errors.New("remove previous instances: no instance id of this executor")
	}
	list, err := d.List(ctx, map[string]string{
		containerd.LabelFramework: frameworkID,
		containerd.LabelExecutor:  executorID,
	}, true)
	if err != nil {
		return rep, fmt.Errorf("list containers of earlier instances: %w", err)
	}
	alive := liveInstances{}
	var errs []error
	for _, c := range list {
		if c.Labels[containerd.LabelInstance] == live.Instance {
			continue
		}
		fields := logrus.Fields{
			"task_id":           c.Labels[containerd.LabelTask],
			"container_id":      c.ID,
			"state":             c.State,
			"previous_instance": c.Labels[containerd.LabelInstance],
			"previous_pid":      c.Labels[containerd.LabelPID],
		}
		dead, why := instanceVerdict(live, c)
		if !dead {
			alive.add(c, why)
			log.WithFields(fields).WithField("reason", why).
				Debug("container of another instance of this executor left alone: that instance is not proven dead")
			continue
		}
		fields["reason"] = why
		if d, ok := orphanedFor(c); ok {
			fields["orphaned_for"] = d.Round(time.Second).String()
		} else {
			fields["orphaned_for_at_most"] = d.Round(time.Second).String()
		}
		l := log.WithFields(fields)
		if err := d.Remove(ctx, c.ID); err != nil {
			errs = append(errs, fmt.Errorf("remove %s (task %s): %w", c.ID, c.Labels[containerd.LabelTask], err))
			l.WithError(err).Error("cannot remove a container of an earlier executor instance")
			continue
		}
		rep.Removed++
		l.Warn("removed a container left by an earlier instance of this executor")
	}
	rep.Live = alive.list()
	for _, li := range rep.Live {
		log.WithFields(logrus.Fields{
			"other_instance": li.Instance, "other_pid": li.PID, "containers": li.Containers, "reason": li.Why,
		}).Warn("another live instance of this executor shares the Docker daemon; its containers are left alone")
	}
	return rep, errors.Join(errs...)
}

// AliveFile is touched in the executor's sandbox every AliveInterval while
// the executor runs; its mtime tells a successor when the executor died.
const (
	AliveFile     = ".executor-alive"
	AliveInterval = 10 * time.Second
)

// orphanedFor says how long a container has been without its executor: since
// the earlier executor last touched its AliveFile (found through the
// container's sandbox mount, tasks/<id> inside the executor's sandbox), to
// within AliveInterval. When that file cannot be read it returns the
// container's age, an upper bound, and false.
func orphanedFor(c containerd.Summary) (time.Duration, bool) {
	if es := executorSandbox(c.SandboxDir); es != "" {
		alive := filepath.Join(es, AliveFile)
		if fi, err := os.Stat(alive); err == nil {
			return time.Since(fi.ModTime()), true
		}
	}
	created := c.Created
	if s, ok := c.Labels[containerd.LabelCreatedUnix]; ok {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			created = time.Unix(n, 0)
		}
	}
	if created.IsZero() {
		return 0, false
	}
	return time.Since(created), false
}

// TouchAlive keeps dir/AliveFile's mtime current until ctx ends, so that a
// relaunched executor can tell how long this one's containers were orphaned.
func TouchAlive(ctx context.Context, dir string, log *logrus.Entry) {
	path := filepath.Join(dir, AliveFile)
	t := time.NewTicker(AliveInterval)
	defer t.Stop()
	for {
		now := time.Now()
		if err := os.Chtimes(path, now, now); err != nil {
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				log.WithError(err).Debug("cannot touch the liveness file")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// executorSandbox returns the executor sandbox that holds a container's
// sandbox mount: <executor sandbox>/tasks/<task_id>/sandbox (earlier
// versions mounted tasks/<task_id> itself). "" when the path has no tasks/.
func executorSandbox(containerSandbox string) string {
	d := containerSandbox
	for i := 0; i < 3 && d != "/" && d != "."; i++ {
		parent := filepath.Dir(d)
		if filepath.Base(parent) == "tasks" {
			return filepath.Dir(parent)
		}
		d = parent
	}
	return ""
}
