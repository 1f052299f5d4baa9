package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	cases := []struct {
		n           int
		jitter, rnd float64
		want        time.Duration
	}{
		{1, 0, 0, 100 * time.Millisecond},
		{2, 0, 0, 200 * time.Millisecond},
		{4, 0, 0, 800 * time.Millisecond},
		{5, 0, 0, time.Second}, // capped
		{50, 0, 0, time.Second},
		{1, 0.5, 0.999, 50*time.Millisecond + 50*time.Microsecond}, // the jitter shortens, never lengthens
		{5, 0.5, 0.5, 750 * time.Millisecond},
	}
	for _, c := range cases {
		got := Delay(c.n, 100*time.Millisecond, time.Second, c.jitter, c.rnd)
		if got != c.want {
			t.Errorf("Delay(%d, 100ms, 1s, %v, %v) = %v; want %v", c.n, c.jitter, c.rnd, got, c.want)
		}
	}
}

func TestExpResetAndBounds(t *testing.T) {
	e := Exp{Base: 10 * time.Millisecond, Max: 80 * time.Millisecond, Jitter: 0.5}
	for i := 0; i < 20; i++ {
		d := e.Next()
		if d < 5*time.Millisecond || d > 80*time.Millisecond {
			t.Fatalf("wait %v outside [base/2, max]", d)
		}
	}
	e.Reset()
	e.Rand = func() float64 { return 0 }
	if d := e.Next(); d != 10*time.Millisecond {
		t.Errorf("first wait after Reset = %v; want the base", d)
	}
}

func TestDelayTable(t *testing.T) {
	const base, max = time.Second, 8 * time.Second
	tests := []struct {
		name   string
		n      int
		jitter float64
		rnd    float64
		want   time.Duration
	}{
		{"first failure", 1, 0.2, 0, time.Second},
		{"doubles", 3, 0.2, 0, 4 * time.Second},
		{"capped", 4, 0.2, 0, 8 * time.Second},
		{"stays capped", 30, 0.2, 0, 8 * time.Second},
		{"jitter takes off up to its fraction", 3, 0.2, 1, 3200 * time.Millisecond},
		{"half jitter", 1, 0.2, 0.5, 900 * time.Millisecond},
		{"jitter never exceeds the cap", 100, 0.2, 0.999, 8*time.Second - time.Duration(float64(8*time.Second)*0.2*0.999)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Delay(tt.n, base, max, tt.jitter, tt.rnd); got != tt.want {
				t.Errorf("Delay(%d, jitter %v, rnd %v) = %v; want %v", tt.n, tt.jitter, tt.rnd, got, tt.want)
			}
		})
	}
}
