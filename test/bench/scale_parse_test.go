package bench

import (
	"strconv"
	"testing"
	"time"
)

// TestHistogramWindow checks the /metrics histogram reading the scale
// benchmark bases its loop latency on; it runs without Docker.
func TestHistogramWindow(t *testing.T) {
	page := func(c1, c2, c3, count uint64, sum string) string {
		return "# TYPE " + loopMetric + " histogram\n" +
			loopMetric + `_bucket{le="0.001"} ` + itoa(c1) + "\n" +
			loopMetric + `_bucket{le="0.002"} ` + itoa(c2) + "\n" +
			loopMetric + `_bucket{le="0.004"} ` + itoa(c3) + "\n" +
			loopMetric + `_bucket{le="+Inf"} ` + itoa(count) + "\n" +
			loopMetric + "_sum " + sum + "\n" +
			loopMetric + "_count " + itoa(count) + "\n" +
			"other_metric 7\n"
	}
	before, err := parseHistogram(page(10, 10, 10, 10, "0.005"), loopMetric)
	if err != nil {
		t.Fatal(err)
	}
	// 100 more samples: none under 1 ms, 50 in (1, 2] ms, 50 in (2, 4] ms.
	after, err := parseHistogram(page(10, 60, 110, 110, "0.305"), loopMetric)
	if err != nil {
		t.Fatal(err)
	}
	w := after.minus(before)
	if w.count != 100 || w.sum < 0.2999 || w.sum > 0.3001 {
		t.Fatalf("window count %d sum %v; want 100 and 0.3", w.count, w.sum)
	}
	if got := w.quantile(0.5); got != 2*time.Millisecond {
		t.Errorf("p50 = %v; want 2ms (the top of the second bucket)", got)
	}
	if got, want := w.quantile(0.99), 3960*time.Microsecond; got < want-time.Microsecond || got > want+time.Microsecond {
		t.Errorf("p99 = %v; want %v (interpolated in the third bucket)", got, want)
	}
	if _, err := parseHistogram("other_metric 1\n", loopMetric); err == nil {
		t.Error("a page without the histogram parsed without error")
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
