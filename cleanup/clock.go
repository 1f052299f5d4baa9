package cleanup

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"
)

// Clock is the time source of the removal queue, the sweeps and the image
// collector. Production code uses the wall clock; tests inject a fake one to
// check backoff sequences and grace periods without sleeping.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once, d from now.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer the loops use.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func (wallClock) NewTimer(d time.Duration) Timer { return wallTimer{time.NewTimer(d)} }

type wallTimer struct{ t *time.Timer }

func (w wallTimer) C() <-chan time.Time { return w.t.C }
func (w wallTimer) Stop() bool          { return w.t.Stop() }

// sleep waits for d on c, or until ctx is done; it reports whether the full
// wait elapsed.
func sleep(done <-chan struct{}, c Clock, d time.Duration) bool {
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C():
		return true
	}
}

// runEvery runs fn after initial and then every interval (counted from the
// end of the previous run) until ctx ends; then it returns nil. A failed run
// is logged and the next one runs on time.
func runEvery(ctx context.Context, clock Clock, initial, interval time.Duration, fn func(context.Context) error, log *logrus.Entry, what string) error {
	t := clock.NewTimer(initial)
	defer func() { t.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			log.WithError(err).Warn(what + " incomplete; retrying at the next interval")
		}
		t = clock.NewTimer(interval)
	}
}
