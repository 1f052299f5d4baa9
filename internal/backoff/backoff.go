// Package backoff computes the waits between retries, one rule for every
// retry loop of the executor (the agent link's updates, the Docker events
// stream, container removals, task log streams): the wait doubles per failure
// from a base up to a cap, and is shortened by a random fraction so that many
// executors that failed together do not retry in step. The jitter only ever
// shortens a wait, so the cap is a true cap.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Delay is the wait after the n-th consecutive failure (n >= 1): base doubled
// n-1 times, capped at max, less rnd*jitter of itself (rnd in [0,1), jitter in
// [0,1]).
func Delay(n int, base, max time.Duration, jitter, rnd float64) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d - time.Duration(float64(d)*jitter*rnd)
}

// Exp is a retry loop's backoff: Next after each failure, Reset after a
// success. The zero value is not usable; set Base and Max. Jitter 0.5 spreads
// each wait over the upper half of its range.
type Exp struct {
	Base, Max time.Duration
	Jitter    float64
	// Rand returns a number in [0,1); nil uses math/rand/v2 (tests
	// inject their own).
	Rand func() float64
	n    int
}

// Next returns the wait after one more failure.
func (e *Exp) Next() time.Duration {
	e.n++
	r := rand.Float64
	if e.Rand != nil {
		r = e.Rand
	}
	return Delay(e.n, e.Base, e.Max, e.Jitter, r())
}

// Reset starts over from Base: the last attempt succeeded.
func (e *Exp) Reset() { e.n = 0 }
