package health

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func pointerTo[T any](v T) *T { return &v }

// specDefaults returns a spec of type typ with every Mesos default filled in, as
// Parse and validate leave it.
func specDefaults(typ Type) *Spec {
	return &Spec{
		Type:     typ,
		Path:     "/",
		Scheme:   "http",
		Delay:    DefaultDelay,
		Interval: DefaultInterval,
		Timeout:  DefaultTimeout,
		Grace:    DefaultGrace,
		Failures: DefaultFailures,
	}
}

func nativeHTTP(port uint32, path string) *mesos.HealthCheck {
	h := &mesos.HealthCheck{Type: mesos.HealthCheck_HTTP, HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: port}}
	if path != "" {
		h.HTTP.Path = pointerTo(path)
	}
	return h
}

func TestDefaults(t *testing.T) {
	// The values Mesos documents in include/mesos/v1/mesos.proto.
	tests := []struct {
		name string
		got  time.Duration
		want time.Duration
	}{
		{"DefaultDelay", DefaultDelay, 15 * time.Second},
		{"DefaultInterval", DefaultInterval, 10 * time.Second},
		{"DefaultTimeout", DefaultTimeout, 20 * time.Second},
		{"DefaultGrace", DefaultGrace, 10 * time.Second},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v; want %v", tt.name, tt.got, tt.want)
		}
	}
	if DefaultFailures != 3 {
		t.Errorf("DefaultFailures = %d; want 3", DefaultFailures)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name   string
		native *mesos.HealthCheck
		labels map[string]string
		want   *Spec
	}{
		{
			name: "neither native nor labels",
		},
		{
			name:   "only other labels",
			labels: map[string]string{"docker.image": "busybox", "marathon.health": "x", "healthy": "yes"},
		},
		{
			name:   "http labels take every default",
			labels: map[string]string{"health.type": "http", "health.port": "8080"},
			want:   func() *Spec { s := specDefaults(HTTP); s.Port = 8080; return s }(),
		},
		{
			name:   "type is case-insensitive",
			labels: map[string]string{"health.type": "TCP", "health.port": "6379"},
			want:   func() *Spec { s := specDefaults(TCP); s.Port = 6379; return s }(),
		},
		{
			name:   "https label type",
			labels: map[string]string{"health.type": "https", "health.port": "8443", "health.path": "/ready"},
			want: func() *Spec {
				s := specDefaults(HTTP)
				s.Port, s.Path, s.Scheme = 8443, "/ready", "https"
				return s
			}(),
		},
		{
			name: "every label",
			labels: map[string]string{
				"health.type": "http", "health.port": "80", "health.path": "/healthz",
				"health.delay": "1m", "health.interval": "2s", "health.timeout": "500ms",
				"health.grace": "0s", "health.failures": "7",
			},
			want: &Spec{
				Type: HTTP, Port: 80, Path: "/healthz", Scheme: "http",
				Delay: time.Minute, Interval: 2 * time.Second, Timeout: 500 * time.Millisecond,
				Grace: 0, Failures: 7,
			},
		},
		{
			name:   "zero timeout means none",
			labels: map[string]string{"health.type": "tcp", "health.port": "80", "health.timeout": "0s"},
			want:   func() *Spec { s := specDefaults(TCP); s.Port = 80; s.Timeout = 0; return s }(),
		},
		{
			name:   "cmd label as a JSON array",
			labels: map[string]string{"health.type": "cmd", "health.cmd": `["curl", "-fsS", "http://localhost/a b"]`},
			want: func() *Spec {
				s := specDefaults(Command)
				s.Cmd = []string{"curl", "-fsS", "http://localhost/a b"}
				return s
			}(),
		},
		{
			name:   "native HTTP with the proto defaults",
			native: nativeHTTP(8080, "/health"),
			want:   func() *Spec { s := specDefaults(HTTP); s.Port, s.Path = 8080, "/health"; return s }(),
		},
		{
			name: "native HTTP with every field",
			native: &mesos.HealthCheck{
				Type:                mesos.HealthCheck_HTTP,
				HTTP:                &mesos.HealthCheck_HTTPCheckInfo{Port: 443, Path: pointerTo("/z"), Scheme: pointerTo("https"), Statuses: []uint32{200, 204}},
				DelaySeconds:        pointerTo(1.5),
				IntervalSeconds:     pointerTo(3.0),
				TimeoutSeconds:      pointerTo(0.25),
				GracePeriodSeconds:  pointerTo(60.0),
				ConsecutiveFailures: pointerTo(uint32(1)),
			},
			want: &Spec{
				Type: HTTP, Port: 443, Path: "/z", Scheme: "https", Statuses: []uint32{200, 204},
				Delay: 1500 * time.Millisecond, Interval: 3 * time.Second, Timeout: 250 * time.Millisecond,
				Grace: time.Minute, Failures: 1,
			},
		},
		{
			name:   "native TCP",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 5432}},
			want:   func() *Spec { s := specDefaults(TCP); s.Port = 5432; return s }(),
		},
		{
			name: "native COMMAND with a shell",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: &mesos.CommandInfo{
				Value: pointerTo("pg_isready -h localhost"),
			}},
			want: func() *Spec {
				s := specDefaults(Command)
				s.Cmd = []string{"/bin/sh", "-c", "pg_isready -h localhost"}
				return s
			}(),
		},
		{
			name: "native COMMAND without a shell",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: &mesos.CommandInfo{
				Shell: pointerTo(false), Value: pointerTo("/bin/check"), Arguments: []string{"--quick"},
			}},
			want: func() *Spec {
				s := specDefaults(Command)
				s.Cmd = []string{"/bin/check", "--quick"}
				return s
			}(),
		},
		{
			name:   "labels win over native fields",
			native: nativeHTTP(80, "/native"),
			labels: map[string]string{"health.port": "81", "health.path": "/label", "health.interval": "1s", "health.failures": "9"},
			want: func() *Spec {
				s := specDefaults(HTTP)
				s.Port, s.Path, s.Interval, s.Failures = 81, "/label", time.Second, 9
				return s
			}(),
		},
		{
			name:   "label type wins over native type",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 9000}},
			labels: map[string]string{"health.type": "http"},
			want:   func() *Spec { s := specDefaults(HTTP); s.Port = 9000; return s }(),
		},
		{
			name:   "label cmd replaces a native command",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: &mesos.CommandInfo{Value: pointerTo("true")}},
			labels: map[string]string{"health.cmd": `["/bin/probe"]`},
			want:   func() *Spec { s := specDefaults(Command); s.Cmd = []string{"/bin/probe"}; return s }(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.native, tt.labels)
			if err != nil {
				t.Fatalf("Parse() error = %v; want nil", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse() = %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name   string
		native *mesos.HealthCheck
		labels map[string]string
		want   []string // substrings the error message must contain
	}{
		{
			name:   "http without a port",
			labels: map[string]string{"health.type": "http"},
			want:   []string{"port", "health.port"},
		},
		{
			name:   "tcp without a port",
			labels: map[string]string{"health.type": "tcp", "health.interval": "5s"},
			want:   []string{"port", "health.port"},
		},
		{
			name:   "native http with port 0",
			native: nativeHTTP(0, ""),
			want:   []string{"port"},
		},
		{
			name:   "no type",
			labels: map[string]string{"health.port": "80"},
			want:   []string{"health.type"},
		},
		{
			name:   "unknown type",
			labels: map[string]string{"health.type": "grpc", "health.port": "80"},
			want:   []string{"health.type", `"grpc"`},
		},
		{
			name:   "unknown key",
			labels: map[string]string{"health.type": "tcp", "health.port": "80", "health.retries": "3"},
			want:   []string{"health.retries", "unknown"},
		},
		{
			name:   "port not a number",
			labels: map[string]string{"health.type": "tcp", "health.port": "http"},
			want:   []string{"health.port", `"http"`},
		},
		{
			name:   "port zero",
			labels: map[string]string{"health.type": "tcp", "health.port": "0"},
			want:   []string{"health.port"},
		},
		{
			name:   "port too large",
			labels: map[string]string{"health.type": "tcp", "health.port": "65536"},
			want:   []string{"health.port", `"65536"`},
		},
		{
			name:   "relative path",
			labels: map[string]string{"health.type": "http", "health.port": "80", "health.path": "healthz"},
			want:   []string{"health.path", `"healthz"`},
		},
		{
			name:   "interval without a unit",
			labels: map[string]string{"health.type": "tcp", "health.port": "80", "health.interval": "10"},
			want:   []string{"health.interval", `"10"`, "duration"},
		},
		{
			name:   "negative timeout",
			labels: map[string]string{"health.type": "tcp", "health.port": "80", "health.timeout": "-1s"},
			want:   []string{"health.timeout", "negative"},
		},
		{
			name:   "bad delay",
			labels: map[string]string{"health.type": "tcp", "health.port": "80", "health.delay": "soon"},
			want:   []string{"health.delay", `"soon"`},
		},
		{
			name:   "bad grace",
			labels: map[string]string{"health.type": "tcp", "health.port": "80", "health.grace": "1 minute"},
			want:   []string{"health.grace"},
		},
		{
			name:   "zero interval",
			labels: map[string]string{"health.type": "tcp", "health.port": "80", "health.interval": "0s"},
			want:   []string{"interval"},
		},
		{
			name:   "zero failures",
			labels: map[string]string{"health.type": "tcp", "health.port": "80", "health.failures": "0"},
			want:   []string{"health.failures"},
		},
		{
			name:   "cmd not JSON",
			labels: map[string]string{"health.type": "cmd", "health.cmd": "curl -f localhost"},
			want:   []string{"health.cmd", "JSON array"},
		},
		{
			name:   "cmd not an array of strings",
			labels: map[string]string{"health.type": "cmd", "health.cmd": `{"cmd":"curl"}`},
			want:   []string{"health.cmd"},
		},
		{
			name:   "empty cmd",
			labels: map[string]string{"health.type": "cmd", "health.cmd": `[]`},
			want:   []string{"health.cmd", "empty"},
		},
		{
			name:   "cmd type without a cmd",
			labels: map[string]string{"health.type": "cmd"},
			want:   []string{"health.cmd"},
		},
		{
			name:   "native type unknown",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_UNKNOWN},
			want:   []string{"health_check.type", "UNKNOWN"},
		},
		{
			name:   "native HTTP without http",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_HTTP},
			want:   []string{"health_check.http"},
		},
		{
			name:   "native TCP without tcp",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_TCP},
			want:   []string{"health_check.tcp"},
		},
		{
			name:   "native COMMAND without command",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND},
			want:   []string{"health_check.command"},
		},
		{
			name:   "native zero interval",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 80}, IntervalSeconds: pointerTo(0.0)},
			want:   []string{"interval"},
		},
		// Found by fuzzing (issue 10, item 7): each was accepted silently.
		{
			name:   "native http port above 65535",
			native: nativeHTTP(70000, "/"),
			want:   []string{"health_check.http.port", "70000"},
		},
		{
			name:   "native tcp port above 65535",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 65536}},
			want:   []string{"health_check.tcp.port", "65536"},
		},
		{
			name:   "native tcp port 0",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{}},
			want:   []string{"health_check.tcp.port"},
		},
		{
			name:   "native path not absolute",
			native: nativeHTTP(80, "0"),
			want:   []string{"health_check.http.path", `"0"`},
		},
		{
			name:   "native path not a URL path",
			native: nativeHTTP(80, "/%zz"),
			want:   []string{"health_check.http.path"},
		},
		{
			name: "native status code below 100",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_HTTP,
				HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: 80, Statuses: []uint32{200, 99}}},
			want: []string{"health_check.http.statuses", "99"},
		},
		{
			name: "native status code above 599",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_HTTP,
				HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: 80, Statuses: []uint32{600}}},
			want: []string{"health_check.http.statuses", "600"},
		},
		{
			name: "native scheme unknown",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_HTTP,
				HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: 80, Scheme: pointerTo("file")}},
			want: []string{"health_check.http.scheme", `"file"`},
		},
		{
			name:   "native NaN interval",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 80}, IntervalSeconds: pointerTo(math.NaN())},
			want:   []string{"health_check.interval_seconds", "not a number"},
		},
		{
			name:   "native +Inf interval",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 80}, IntervalSeconds: pointerTo(math.Inf(1))},
			want:   []string{"health_check.interval_seconds", "too large"},
		},
		{
			name:   "native timeout overflowing a Duration",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 80}, TimeoutSeconds: pointerTo(1e10)},
			want:   []string{"health_check.timeout_seconds", "too large"},
		},
		{
			name:   "native grace of 1e300",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 80}, GracePeriodSeconds: pointerTo(1e300)},
			want:   []string{"health_check.grace_period_seconds", "too large"},
		},
		{
			name:   "native NaN delay",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 80}, DelaySeconds: pointerTo(math.NaN())},
			want:   []string{"health_check.delay_seconds"},
		},
		{
			name:   "native negative timeout",
			native: &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 80}, TimeoutSeconds: pointerTo(-1.0)},
			want:   []string{"health_check.timeout_seconds", "negative"},
		},
		{
			name:   "label interval overflowing a Duration",
			labels: map[string]string{"health.type": "tcp", "health.port": "80", "health.interval": "9999999999s"},
			want:   []string{"health.interval"},
		},
		{
			name:   "negative failures",
			labels: map[string]string{"health.type": "tcp", "health.port": "80", "health.failures": "-1"},
			want:   []string{"health.failures", `"-1"`},
		},
		{
			name:   "label path 0",
			labels: map[string]string{"health.type": "http", "health.port": "80", "health.path": "0"},
			want:   []string{"health.path", `"0"`},
		},
		{
			name:   "a bad label fails a good native check",
			native: nativeHTTP(80, "/"),
			labels: map[string]string{"health.timeout": "forever"},
			want:   []string{"health.timeout", `"forever"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.native, tt.labels)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse() = %+v, %v; want an error wrapping ErrInvalid", got, err)
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Parse() error = %q; want it to mention %q", err, s)
				}
			}
		})
	}
}

func TestSeconds(t *testing.T) {
	tests := []struct {
		in      float64
		want    time.Duration
		wantErr string
	}{
		{0, 0, ""},
		{0.5, 500 * time.Millisecond, ""},
		{9.2e9, time.Duration(9.2e9 * float64(time.Second)), ""},
		{9.3e9, 0, "too large"},
		{math.Inf(1), 0, "too large"},
		{math.Inf(-1), 0, "negative"},
		{-0.001, 0, "negative"},
		{math.NaN(), 0, "not a number"},
	}
	for _, tt := range tests {
		got, err := seconds("f.x_seconds", tt.in)
		if tt.wantErr == "" {
			if err != nil || got != tt.want {
				t.Errorf("seconds(%g) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "f.x_seconds") {
			t.Errorf("seconds(%g) = %v, %v; want ErrInvalid naming f.x_seconds, %q", tt.in, got, err, tt.wantErr)
		}
	}
}
