package health

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func TestParseCheck(t *testing.T) {
	str := func(s string) *string { return &s }
	f64 := func(f float64) *float64 { return &f }
	boolp := func(b bool) *bool { return &b }

	tests := []struct {
		name    string
		in      *mesos.CheckInfo
		want    *CheckSpec
		wantErr string // part of the error; "" = no error
	}{
		{"nil", nil, nil, ""},
		{"http defaults", &mesos.CheckInfo{Type: mesos.CheckInfo_HTTP, HTTP: &mesos.CheckInfo_Http{Port: 8080}},
			&CheckSpec{Type: HTTP, Port: 8080, Path: "/", Delay: 15 * time.Second, Interval: 10 * time.Second, Timeout: 20 * time.Second}, ""},
		{"http with times", &mesos.CheckInfo{Type: mesos.CheckInfo_HTTP, HTTP: &mesos.CheckInfo_Http{Port: 80, Path: str("/ready")},
			DelaySeconds: f64(0), IntervalSeconds: f64(0.5), TimeoutSeconds: f64(0)},
			&CheckSpec{Type: HTTP, Port: 80, Path: "/ready", Interval: 500 * time.Millisecond}, ""},
		{"tcp", &mesos.CheckInfo{Type: mesos.CheckInfo_TCP, TCP: &mesos.CheckInfo_Tcp{Port: 5432}},
			&CheckSpec{Type: TCP, Port: 5432, Delay: 15 * time.Second, Interval: 10 * time.Second, Timeout: 20 * time.Second}, ""},
		{"command shell", &mesos.CheckInfo{Type: mesos.CheckInfo_COMMAND,
			Command: &mesos.CheckInfo_Command{Command: mesos.CommandInfo{Value: str("test -f /ready")}}},
			&CheckSpec{Type: Command, Cmd: []string{"/bin/sh", "-c", "test -f /ready"}, Delay: 15 * time.Second, Interval: 10 * time.Second, Timeout: 20 * time.Second}, ""},
		{"command exec", &mesos.CheckInfo{Type: mesos.CheckInfo_COMMAND,
			Command: &mesos.CheckInfo_Command{Command: mesos.CommandInfo{Value: str("/task"), Arguments: []string{"exit", "0"}, Shell: boolp(false)}}},
			&CheckSpec{Type: Command, Cmd: []string{"/task", "exit", "0"}, Delay: 15 * time.Second, Interval: 10 * time.Second, Timeout: 20 * time.Second}, ""},

		{"http without port", &mesos.CheckInfo{Type: mesos.CheckInfo_HTTP, HTTP: &mesos.CheckInfo_Http{}}, nil, "check.http.port"},
		{"http port too big", &mesos.CheckInfo{Type: mesos.CheckInfo_HTTP, HTTP: &mesos.CheckInfo_Http{Port: 70000}}, nil, "check.http.port"},
		{"http without http", &mesos.CheckInfo{Type: mesos.CheckInfo_HTTP}, nil, "check.http"},
		{"http bad path", &mesos.CheckInfo{Type: mesos.CheckInfo_HTTP, HTTP: &mesos.CheckInfo_Http{Port: 80, Path: str("ready")}}, nil, "check.http.path"},
		{"tcp without port", &mesos.CheckInfo{Type: mesos.CheckInfo_TCP, TCP: &mesos.CheckInfo_Tcp{}}, nil, "check.tcp.port"},
		{"tcp without tcp", &mesos.CheckInfo{Type: mesos.CheckInfo_TCP}, nil, "check.tcp"},
		{"command without command", &mesos.CheckInfo{Type: mesos.CheckInfo_COMMAND}, nil, "check.command"},
		{"command without value", &mesos.CheckInfo{Type: mesos.CheckInfo_COMMAND, Command: &mesos.CheckInfo_Command{}}, nil, "check.command.command.value"},
		{"unknown type", &mesos.CheckInfo{Type: mesos.CheckInfo_UNKNOWN}, nil, "check.type UNKNOWN"},
		{"unknown type number", &mesos.CheckInfo{Type: mesos.CheckInfo_Type(42)}, nil, "check.type"},
		{"negative delay", &mesos.CheckInfo{Type: mesos.CheckInfo_TCP, TCP: &mesos.CheckInfo_Tcp{Port: 1}, DelaySeconds: f64(-1)}, nil, "check.delay_seconds"},
		{"zero interval", &mesos.CheckInfo{Type: mesos.CheckInfo_TCP, TCP: &mesos.CheckInfo_Tcp{Port: 1}, IntervalSeconds: f64(0)}, nil, "check.interval_seconds"},
		{"negative timeout", &mesos.CheckInfo{Type: mesos.CheckInfo_TCP, TCP: &mesos.CheckInfo_Tcp{Port: 1}, TimeoutSeconds: f64(-2)}, nil, "check.timeout_seconds"},
		{"tcp port too big", &mesos.CheckInfo{Type: mesos.CheckInfo_TCP, TCP: &mesos.CheckInfo_Tcp{Port: 65536}}, nil, "check.tcp.port"},
		{"http path 0", &mesos.CheckInfo{Type: mesos.CheckInfo_HTTP, HTTP: &mesos.CheckInfo_Http{Port: 80, Path: str("0")}}, nil, "check.http.path"},
		{"NaN delay", &mesos.CheckInfo{Type: mesos.CheckInfo_TCP, TCP: &mesos.CheckInfo_Tcp{Port: 1}, DelaySeconds: f64(math.NaN())}, nil, "check.delay_seconds"},
		{"+Inf interval", &mesos.CheckInfo{Type: mesos.CheckInfo_TCP, TCP: &mesos.CheckInfo_Tcp{Port: 1}, IntervalSeconds: f64(math.Inf(1))}, nil, "check.interval_seconds"},
		{"NaN interval", &mesos.CheckInfo{Type: mesos.CheckInfo_TCP, TCP: &mesos.CheckInfo_Tcp{Port: 1}, IntervalSeconds: f64(math.NaN())}, nil, "check.interval_seconds"},
		{"timeout overflowing a Duration", &mesos.CheckInfo{Type: mesos.CheckInfo_TCP, TCP: &mesos.CheckInfo_Tcp{Port: 1}, TimeoutSeconds: f64(9.3e9)}, nil, "check.timeout_seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCheck(tt.in)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseCheck() error = %v, want ErrInvalid naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCheck() error = %v", err)
			}
			if !sameCheckSpec(got, tt.want) {
				t.Errorf("ParseCheck() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func sameCheckSpec(a, b *CheckSpec) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Type == b.Type && a.Port == b.Port && a.Path == b.Path && slices.Equal(a.Cmd, b.Cmd) &&
		a.Delay == b.Delay && a.Interval == b.Interval && a.Timeout == b.Timeout
}

func TestInitialStatus(t *testing.T) {
	for _, tt := range []struct {
		typ  Type
		want mesos.CheckInfo_Type
	}{{Command, mesos.CheckInfo_COMMAND}, {HTTP, mesos.CheckInfo_HTTP}, {TCP, mesos.CheckInfo_TCP}} {
		st := (&CheckSpec{Type: tt.typ}).InitialStatus()
		if st.Type == nil || *st.Type != tt.want {
			t.Errorf("%s: type = %v, want %v", tt.typ, st.Type, tt.want)
		}
		// Only the sub-message of the check's type, and with nothing in it.
		empty := (st.Command != nil && st.Command.ExitCode == nil) ||
			(st.HTTP != nil && st.HTTP.StatusCode == nil) ||
			(st.TCP != nil && st.TCP.Succeeded == nil)
		set := 0
		for _, present := range []bool{st.Command != nil, st.HTTP != nil, st.TCP != nil} {
			if present {
				set++
			}
		}
		if !empty || set != 1 {
			t.Errorf("%s: InitialStatus() = %v, want the type's empty result only", tt.typ, st.String())
		}
	}
}
