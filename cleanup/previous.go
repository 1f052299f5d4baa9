package cleanup

import (
	"context"
	"errors"
	"fmt"
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
		l := log.WithFields(logrus.Fields{
			"task_id":           c.Labels[containerd.LabelTask],
			"container_id":      c.ID,
			"state":             c.State,
			"previous_instance": c.Labels[containerd.LabelInstance],
			"previous_pid":      c.Labels[containerd.LabelPID],
			"orphaned_for":      orphanedFor(c).Round(time.Second).String(),
		})
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

// orphanedFor estimates how long a container has been without its
// executor: at most since its creation. The earlier executor's death time is
// not recorded anywhere the new instance can read, so this is an upper bound.
func orphanedFor(c containerd.Summary) time.Duration {
	created := c.Created
	if s, ok := c.Labels[containerd.LabelCreatedUnix]; ok {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			created = time.Unix(n, 0)
		}
	}
	if created.IsZero() {
		return 0
	}
	return time.Since(created)
}
