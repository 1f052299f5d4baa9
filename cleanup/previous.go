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

// RemovePreviousInstances kills and removes every container labelled with
// this framework and executor id that an earlier executor instance created.
//
// When an executor dies (SIGKILL, OOM) the agent reports its tasks
// TASK_FAILED "executor terminated", but their Docker containers are not in
// the executor's cgroup and keep running. A relaunched executor with the same
// ids is the first to know they are orphans. Containers of this instance are
// never touched. It returns how many it removed.
func RemovePreviousInstances(ctx context.Context, d Docker, frameworkID, executorID, instance string, log *logrus.Entry) (int, error) {
	list, err := d.List(ctx, map[string]string{
		containerd.LabelFramework: frameworkID,
		containerd.LabelExecutor:  executorID,
	}, true)
	if err != nil {
		return 0, fmt.Errorf("list containers of earlier instances: %w", err)
	}
	removed := 0
	var errs []error
	for _, c := range list {
		if c.Labels[containerd.LabelInstance] == instance {
			continue
		}
		fields := logrus.Fields{
			"task_id":           c.Labels[containerd.LabelTask],
			"container_id":      c.ID,
			"state":             c.State,
			"previous_instance": c.Labels[containerd.LabelInstance],
			"previous_pid":      c.Labels[containerd.LabelPID],
		}
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
		removed++
		l.Warn("removed a container left by an earlier instance of this executor")
	}
	return removed, errors.Join(errs...)
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
