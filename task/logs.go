package task

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/internal/backoff"
)

// logDrainMax bounds how long a follower may go on copying after its task's
// exit has been reported (terminate): the rest of an exited container's
// output is already in Docker's log and its stream ends by itself, so this
// only cuts off a stream that hangs.
const logDrainMax = 10 * time.Second

// followLogs starts copying the container's output into the run's log
// files, which the launch opened before the container existed. The follower
// owns the files from here and closes them when it ends.
func (m *Manager) followLogs(t *task) {
	files := t.files
	t.files = nil
	if files == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.cancelLogs = cancel
	t.logsDone = make(chan struct{})
	t.exitSeen = make(chan struct{})
	done, exited, cid, log := t.logsDone, t.exitSeen, t.containerID, t.log
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(done)
		defer files.Close()
		m.copyLogs(ctx, cid, exited, files.Stdout, files.Stderr, log)
	}()
}

// copyLogs follows a container's output until the container has exited or
// ctx ends. A stream that breaks while the container still runs (the Docker
// daemon restarted or hiccuped) is reopened from where it broke, so the
// sandbox files keep filling. A container that no longer exists ends it.
func (m *Manager) copyLogs(ctx context.Context, cid string, exited <-chan struct{}, stdout, stderr io.Writer, log *logrus.Entry) {
	var since time.Time
	bo := backoff.Exp{Base: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.5}
	for {
		err := m.rt.Logs(ctx, cid, since, stdout, stderr)
		ended := time.Now()
		// A stream normally ends because the container exited, and the
		// loop learns that from the die event about when the stream
		// ends. Wait a little for it rather than inspect at once: an
		// inspect right after an exit waits for Docker's container lock
		// (tens of ms), which would delay the exit's report.
		select {
		case <-exited:
			return
		case <-ctx.Done():
			return
		case <-time.After(exitSeenWait):
		}
		ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
		info, ierr := m.rt.Inspect(ictx, cid)
		cancel()
		switch {
		case ierr == nil && !info.Running:
			return // the normal end: the container exited
		case ierr != nil && containerd.IsNotFound(ierr):
			// Removed behind the executor's back: the reconcile reports
			// the task; there is nothing left to follow.
			log.Warn("task container no longer exists; its log stream ends")
			return
		case ctx.Err() != nil:
			return
		}
		wait := bo.Next()
		log.WithError(errors.Join(err, ierr)).WithField("retry_in", wait).Warn("task log stream broke while the container runs; reopening")
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if since.IsZero() || ierr == nil {
			since = ended
		}
	}
}
