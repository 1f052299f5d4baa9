package agent

import (
	"testing"
	"time"
)

// TestRetryDelayBound is the re-SUBSCRIBE cadence without a clock: every
// delay between attempts is at least 50 ms and at most min(1 s,
// SubscriptionBackoffMax), so at least one attempt lands in every
// re-registration window after an agent restart however long the outage.
// The end-to-end tests only check that the re-SUBSCRIBE happens.
func TestRetryDelayBound(t *testing.T) {
	for _, max := range []time.Duration{2 * time.Second, time.Second, 300 * time.Millisecond, 10 * time.Millisecond} {
		c := &Client{cfg: Config{SubscriptionBackoffMax: max}}
		hi := min(time.Second, max)
		lo := 50 * time.Millisecond
		if hi < lo {
			hi = lo
		}
		var seenLow, seenHigh bool
		for range 10000 {
			d := c.retryDelay()
			if d < lo || d > hi {
				t.Fatalf("SubscriptionBackoffMax %v: retryDelay() = %v, want within [%v, %v]", max, d, lo, hi)
			}
			seenLow = seenLow || d < lo+(hi-lo)/4
			seenHigh = seenHigh || d > hi-(hi-lo)/4
		}
		if hi > lo && (!seenLow || !seenHigh) {
			t.Errorf("SubscriptionBackoffMax %v: 10000 delays not spread over [%v, %v] (low quarter %v, high quarter %v)",
				max, lo, hi, seenLow, seenHigh)
		}
	}
}
