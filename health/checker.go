package health

import (
	"context"
	"fmt"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
)

// healthChecker is one task's health check. passed, failures, reported and
// healthy belong to its goroutine alone; last is shared under mu.
type healthChecker struct {
	spec   Spec
	target Target
	prober *prober
	report func(Result)
	log    *logrus.Entry
	start  time.Time // Start's call: delay and grace count from here
	lifecycle

	passed   bool // a probe has passed since start: the grace period is over
	failures int  // consecutive failures counted (not those in grace)
	reported bool // a Result has been reported
	healthy  bool // the last reported health

	mu   sync.Mutex // guards last, which Last reads from other goroutines
	last LastResult
}

func (c *healthChecker) probes() *prober { return c.prober }

func (c *healthChecker) step(ctx context.Context, s *Supervisor) bool {
	obs, ok := s.probe(ctx, c.prober, c.spec.Timeout, kindHealth)
	if !ok {
		return false
	}
	now := time.Now()
	healthy, msg := c.prober.healthy(obs, c.spec.Timeout)
	if !healthy {
		s.metrics.failures.WithLabelValues(kindHealth, string(c.spec.Type)).Inc()
	}

	if healthy {
		c.failures = 0
		c.passed = true
		c.setLast(LastResult{Time: now, Healthy: true, Message: msg})
		// As HealthChecker::success in Mesos: report the first pass and
		// the first pass after failures, never a repeated pass.
		if !c.reported || !c.healthy {
			c.log.WithField("message", msg).Info("health check passed")
			c.send(ctx, Result{Healthy: true, Message: msg})
		}
		return true
	}

	// As HealthChecker::failure in Mesos: a task that has never passed gets
	// the grace period (which includes the delay) to come up; the end of
	// the grace period itself is still in it, and a zero grace is none.
	if !c.passed && c.spec.Grace > 0 && now.Sub(c.start) <= c.spec.Grace {
		c.setLast(LastResult{Time: now, Message: msg, InGrace: true})
		c.log.WithField("message", msg).Debug("health check failure ignored: grace period")
		return true
	}
	c.failures++
	kill := c.failures >= int(c.spec.Failures)
	c.setLast(LastResult{Time: now, Message: msg, ConsecutiveFailures: c.failures, Killed: kill})
	log := c.log.WithFields(logrus.Fields{"message": msg, "consecutive_failures": c.failures})
	switch {
	case kill:
		log.Warn("health check failed too many times: the task must be killed")
		c.send(ctx, Result{Message: fmt.Sprintf("%s (%d consecutive failures)", msg, c.failures), Kill: true})
		return false
	case !c.reported || c.healthy:
		log.Info("health check failed")
		c.send(ctx, Result{Message: msg})
	case s.opts.EveryFailure:
		log.Debug("health check failed again")
		c.send(ctx, Result{Message: msg})
	default:
		log.Debug("health check failed again (not reported: no change)")
	}
	return true
}

// send reports r unless the check was stopped meanwhile.
func (c *healthChecker) send(ctx context.Context, r Result) {
	if ctx.Err() != nil {
		return
	}
	r.TaskID = c.target.TaskID
	r.ConsecutiveFailures = c.failures
	c.reported, c.healthy = true, r.Healthy
	if c.report != nil {
		c.report(r)
	}
}

func (c *healthChecker) setLast(r LastResult) {
	c.mu.Lock()
	c.last = r
	c.mu.Unlock()
}

func (c *healthChecker) lastResult() LastResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// genericChecker is one task's generic check (TaskInfo.check). prev belongs
// to its goroutine alone.
type genericChecker struct {
	spec   CheckSpec
	target Target
	prober *prober
	report func(taskID string, status mesos.CheckStatusInfo)
	log    *logrus.Entry
	lifecycle

	prev *mesos.CheckStatusInfo // the last status reported; nil before the first
}

func (c *genericChecker) probes() *prober { return c.prober }

func (c *genericChecker) step(ctx context.Context, s *Supervisor) bool {
	obs, ok := s.probe(ctx, c.prober, c.spec.Timeout, kindCheck)
	if !ok {
		return false
	}
	if obs.timedOut || (obs.err != nil && c.spec.Type != TCP) {
		s.metrics.failures.WithLabelValues(kindCheck, string(c.spec.Type)).Inc()
		c.log.WithError(obs.err).Debug("check produced no result")
	}
	st := c.prober.checkStatus(obs)
	// As Checker::processCheckResult in Mesos: only a change is reported.
	if c.prev != nil && c.prev.Equal(&st) {
		return true
	}
	c.prev = &st
	if ctx.Err() != nil || c.report == nil {
		return true
	}
	c.log.WithField("check_status", st.String()).Info("check result changed")
	// The callback gets its own copy: st is kept for the next comparison.
	c.report(c.target.TaskID, c.prober.checkStatus(obs))
	return true
}
