package agent_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mdx-executor/mdx/agent"
)

// baseEnv is what a checkpointing agent at 10.0.0.1:5051 sets (S:11410-11530).
func baseEnv() map[string]string {
	return map[string]string{
		"MESOS_FRAMEWORK_ID":                   "fw-1",
		"MESOS_EXECUTOR_ID":                    "exec-1",
		"MESOS_SLAVE_ID":                       "agent-1",
		"MESOS_AGENT_ENDPOINT":                 "10.0.0.1:5051",
		"MESOS_SLAVE_PID":                      "slave(1)@10.0.0.1:5051",
		"MESOS_DIRECTORY":                      "/var/lib/mesos/slaves/a/frameworks/f/executors/e/runs/r",
		"MESOS_SANDBOX":                        "/mnt/mesos/sandbox",
		"MESOS_CHECKPOINT":                     "1",
		"MESOS_RECOVERY_TIMEOUT":               "15mins",
		"MESOS_SUBSCRIPTION_BACKOFF_MAX":       "2secs",
		"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "5secs",
	}
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name string
		// set overrides baseEnv; "" removes the variable.
		set map[string]string
		// check runs on success; wantErr lists substrings of the error,
		// which must then also match ErrBadEnvironment.
		check   func(t *testing.T, c agent.Config)
		wantErr []string
	}{
		{
			name: "real agent environment",
			check: func(t *testing.T, c agent.Config) {
				want := agent.Config{
					FrameworkID:            "fw-1",
					ExecutorID:             "exec-1",
					AgentID:                "agent-1",
					URL:                    "http://10.0.0.1:5051/api/v1/executor",
					Directory:              "/var/lib/mesos/slaves/a/frameworks/f/executors/e/runs/r",
					Sandbox:                "/mnt/mesos/sandbox",
					Checkpoint:             true,
					RecoveryTimeout:        15 * time.Minute,
					SubscriptionBackoffMax: 2 * time.Second,
					ShutdownGracePeriod:    5 * time.Second,
				}
				if c != want {
					t.Errorf("got  %+v\nwant %+v", c, want)
				}
			},
		},
		{
			name: "fractional stout durations",
			set: map[string]string{
				"MESOS_SUBSCRIPTION_BACKOFF_MAX":       "1.5secs",
				"MESOS_RECOVERY_TIMEOUT":               "2.5mins",
				"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "500ms",
			},
			check: func(t *testing.T, c agent.Config) {
				if c.SubscriptionBackoffMax != 1500*time.Millisecond || c.RecoveryTimeout != 150*time.Second ||
					c.ShutdownGracePeriod != 500*time.Millisecond {
					t.Errorf("got backoff %v, recovery %v, grace %v; want 1.5s, 2m30s, 500ms",
						c.SubscriptionBackoffMax, c.RecoveryTimeout, c.ShutdownGracePeriod)
				}
			},
		},
		{
			name: "Go durations",
			set: map[string]string{
				"MESOS_SUBSCRIPTION_BACKOFF_MAX":       "2s",
				"MESOS_RECOVERY_TIMEOUT":               "1m30s",
				"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "1h",
			},
			check: func(t *testing.T, c agent.Config) {
				if c.SubscriptionBackoffMax != 2*time.Second || c.RecoveryTimeout != 90*time.Second ||
					c.ShutdownGracePeriod != time.Hour {
					t.Errorf("got backoff %v, recovery %v, grace %v; want 2s, 1m30s, 1h",
						c.SubscriptionBackoffMax, c.RecoveryTimeout, c.ShutdownGracePeriod)
				}
			},
		},
		{
			name:    "bad duration",
			set:     map[string]string{"MESOS_RECOVERY_TIMEOUT": "15 minutes"},
			wantErr: []string{`MESOS_RECOVERY_TIMEOUT="15 minutes"`, "invalid duration"},
		},
		{
			name:    "negative duration",
			set:     map[string]string{"MESOS_SUBSCRIPTION_BACKOFF_MAX": "-2s"},
			wantErr: []string{`MESOS_SUBSCRIPTION_BACKOFF_MAX="-2s"`, "negative"},
		},
		{
			name: "checkpoint off, recovery variables absent",
			set: map[string]string{
				"MESOS_CHECKPOINT":               "0",
				"MESOS_RECOVERY_TIMEOUT":         "",
				"MESOS_SUBSCRIPTION_BACKOFF_MAX": "",
			},
			check: func(t *testing.T, c agent.Config) {
				if c.Checkpoint || c.RecoveryTimeout != 0 || c.SubscriptionBackoffMax != 0 {
					t.Errorf("got checkpoint %v, recovery %v, backoff %v; want false, 0 (default), 0 (default)",
						c.Checkpoint, c.RecoveryTimeout, c.SubscriptionBackoffMax)
				}
			},
		},
		{
			name:    "checkpoint true is not the agent's format",
			set:     map[string]string{"MESOS_CHECKPOINT": "true"},
			wantErr: []string{`MESOS_CHECKPOINT="true"`},
		},
		{
			name:    "checkpoint garbage",
			set:     map[string]string{"MESOS_CHECKPOINT": "yes please"},
			wantErr: []string{`MESOS_CHECKPOINT="yes please"`},
		},
		{
			name:    "both ids missing, both named",
			set:     map[string]string{"MESOS_FRAMEWORK_ID": "", "MESOS_EXECUTOR_ID": ""},
			wantErr: []string{"MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID"},
		},
		{
			name:    "executor id missing",
			set:     map[string]string{"MESOS_EXECUTOR_ID": ""},
			wantErr: []string{"MESOS_EXECUTOR_ID is not set"},
		},
		{
			name: "URL from MESOS_SLAVE_PID alone",
			set:  map[string]string{"MESOS_AGENT_ENDPOINT": "", "MESOS_SLAVE_PID": "slave(1)@1.2.3.4:5051"},
			check: func(t *testing.T, c agent.Config) {
				if want := "http://1.2.3.4:5051/api/v1/executor"; c.URL != want {
					t.Errorf("URL = %q, want %q", c.URL, want)
				}
			},
		},
		{
			name: "MESOS_AGENT_ENDPOINT wins over the pid",
			set:  map[string]string{"MESOS_AGENT_ENDPOINT": "1.2.3.4:5051", "MESOS_SLAVE_PID": "slave(1)@5.6.7.8:5051"},
			check: func(t *testing.T, c agent.Config) {
				if want := "http://1.2.3.4:5051/api/v1/executor"; c.URL != want {
					t.Errorf("URL = %q, want %q", c.URL, want)
				}
			},
		},
		{
			name: "IPv6 endpoint",
			set:  map[string]string{"MESOS_AGENT_ENDPOINT": "[2001:db8::1]:5051", "MESOS_SLAVE_PID": ""},
			check: func(t *testing.T, c agent.Config) {
				if want := "http://[2001:db8::1]:5051/api/v1/executor"; c.URL != want {
					t.Errorf("URL = %q, want %q", c.URL, want)
				}
			},
		},
		{
			name: "domain socket uses the libprocess path from the pid",
			set: map[string]string{
				"MESOS_DOMAIN_SOCKET": "/var/run/mesos/agent.sock",
				"MESOS_SLAVE_PID":     "slave(2)@1.2.3.4:5051",
			},
			check: func(t *testing.T, c agent.Config) {
				if c.DomainSocket != "/var/run/mesos/agent.sock" {
					t.Errorf("DomainSocket = %q", c.DomainSocket)
				}
				if want := "http://localhost/slave(2)/api/v1/executor"; c.URL != want {
					t.Errorf("URL = %q, want %q", c.URL, want)
				}
			},
		},
		{
			name: "domain socket without a pid defaults to slave(1)",
			set: map[string]string{
				"MESOS_DOMAIN_SOCKET":  "/var/run/mesos/agent.sock",
				"MESOS_SLAVE_PID":      "",
				"MESOS_AGENT_ENDPOINT": "",
			},
			check: func(t *testing.T, c agent.Config) {
				if want := "http://localhost/slave(1)/api/v1/executor"; c.URL != want {
					t.Errorf("URL = %q, want %q", c.URL, want)
				}
			},
		},
		{
			name:    "no endpoint at all",
			set:     map[string]string{"MESOS_AGENT_ENDPOINT": "", "MESOS_SLAVE_PID": ""},
			wantErr: []string{"MESOS_AGENT_ENDPOINT", "MESOS_SLAVE_PID"},
		},
		{
			name:    "malformed pid",
			set:     map[string]string{"MESOS_AGENT_ENDPOINT": "", "MESOS_SLAVE_PID": "1.2.3.4:5051"},
			wantErr: []string{`MESOS_SLAVE_PID="1.2.3.4:5051"`},
		},
		{
			name:    "endpoint without a port",
			set:     map[string]string{"MESOS_AGENT_ENDPOINT": "10.0.0.1", "MESOS_SLAVE_PID": ""},
			wantErr: []string{`"10.0.0.1"`},
		},
		// Found by fuzzing: these used to pass and fail only at the first
		// connect.
		{
			name:    "endpoint host is not a host",
			set:     map[string]string{"MESOS_AGENT_ENDPOINT": "#:", "MESOS_SLAVE_PID": ""},
			wantErr: []string{`MESOS_AGENT_ENDPOINT="#:"`},
		},
		{
			name:    "endpoint host with a space",
			set:     map[string]string{"MESOS_AGENT_ENDPOINT": "a b:1", "MESOS_SLAVE_PID": ""},
			wantErr: []string{`MESOS_AGENT_ENDPOINT="a b:1"`, "neither an IP address nor a host name"},
		},
		{
			name:    "endpoint port out of range",
			set:     map[string]string{"MESOS_AGENT_ENDPOINT": "10.0.0.1:65536"},
			wantErr: []string{`MESOS_AGENT_ENDPOINT="10.0.0.1:65536"`, "port"},
		},
		{
			name:    "endpoint port zero",
			set:     map[string]string{"MESOS_AGENT_ENDPOINT": "10.0.0.1:0"},
			wantErr: []string{`MESOS_AGENT_ENDPOINT="10.0.0.1:0"`},
		},
		{
			name:    "endpoint port not a number",
			set:     map[string]string{"MESOS_AGENT_ENDPOINT": "10.0.0.1:http"},
			wantErr: []string{`MESOS_AGENT_ENDPOINT="10.0.0.1:http"`},
		},
		{
			name:    "endpoint with a path",
			set:     map[string]string{"MESOS_AGENT_ENDPOINT": "evil/x?y#:1"},
			wantErr: []string{`MESOS_AGENT_ENDPOINT=`},
		},
		{
			name:    "endpoint with an IPv6 zone",
			set:     map[string]string{"MESOS_AGENT_ENDPOINT": "[fe80::1%eth0]:5051"},
			wantErr: []string{`MESOS_AGENT_ENDPOINT=`, "zone"},
		},
		{
			name:    "endpoint from a bad pid names the pid",
			set:     map[string]string{"MESOS_AGENT_ENDPOINT": "", "MESOS_SLAVE_PID": "slave(1)@#:"},
			wantErr: []string{`MESOS_SLAVE_PID="slave(1)@#:"`},
		},
		{
			name: "pid id that is not a path segment",
			set: map[string]string{"MESOS_DOMAIN_SOCKET": "/var/run/mesos/agent.sock",
				"MESOS_SLAVE_PID": "../x?@1.2.3.4:5051"},
			wantErr: []string{`MESOS_SLAVE_PID="../x?@1.2.3.4:5051"`},
		},
		{
			name: "host name endpoint",
			set:  map[string]string{"MESOS_AGENT_ENDPOINT": "agent-7.example.com:5051"},
			check: func(t *testing.T, c agent.Config) {
				if want := "http://agent-7.example.com:5051/api/v1/executor"; c.URL != want {
					t.Errorf("URL = %q, want %q", c.URL, want)
				}
			},
		},
		{
			name: "sandbox falls back to directory",
			set:  map[string]string{"MESOS_SANDBOX": "", "MESOS_DIRECTORY": "/host/sandbox"},
			check: func(t *testing.T, c agent.Config) {
				if c.Sandbox != "/host/sandbox" || c.Directory != "/host/sandbox" {
					t.Errorf("Sandbox %q, Directory %q; want both /host/sandbox", c.Sandbox, c.Directory)
				}
			},
		},
		{
			name: "directory falls back to sandbox",
			set:  map[string]string{"MESOS_SANDBOX": "/mnt/mesos/sandbox", "MESOS_DIRECTORY": ""},
			check: func(t *testing.T, c agent.Config) {
				if c.Sandbox != "/mnt/mesos/sandbox" || c.Directory != "/mnt/mesos/sandbox" {
					t.Errorf("Sandbox %q, Directory %q; want both /mnt/mesos/sandbox", c.Sandbox, c.Directory)
				}
			},
		},
		{
			name:    "no sandbox at all",
			set:     map[string]string{"MESOS_SANDBOX": "", "MESOS_DIRECTORY": ""},
			wantErr: []string{"MESOS_SANDBOX", "MESOS_DIRECTORY"},
		},
		{
			name: "token is read",
			set:  map[string]string{agent.TokenEnv: "eyJhbGciOi.token.sig"},
			check: func(t *testing.T, c agent.Config) {
				if string(c.AuthToken) != "eyJhbGciOi.token.sig" {
					t.Errorf("AuthToken not read from %s", agent.TokenEnv)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := baseEnv()
			for k, v := range tt.set {
				if v == "" {
					delete(env, k)
				} else {
					env[k] = v
				}
			}
			c, err := agent.ConfigFromEnv(func(k string) string { return env[k] })
			if len(tt.wantErr) > 0 {
				if !errors.Is(err, agent.ErrBadEnvironment) {
					t.Fatalf("err = %v, want ErrBadEnvironment", err)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ConfigFromEnv: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "2secs", want: 2 * time.Second},
		{in: "1.5secs", want: 1500 * time.Millisecond},
		{in: "15mins", want: 15 * time.Minute},
		{in: "1hrs", want: time.Hour},
		{in: "1days", want: 24 * time.Hour},
		{in: "100ms", want: 100 * time.Millisecond},
		{in: "10us", want: 10 * time.Microsecond},
		{in: "2s", want: 2 * time.Second},
		{in: "1m30s", want: 90 * time.Second},
		{in: "", wantErr: true},
		{in: "secs", wantErr: true},
		{in: "2 secs", wantErr: true},
		{in: "2fortnights", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := agent.ParseDuration(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseDuration(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestConfigNeverPrintsToken covers the ways a Config ends up in a log line:
// fmt verbs (including the bad-verb path, which bypasses String), a struct
// embedding it, and JSON.
func TestConfigNeverPrintsToken(t *testing.T) {
	const token = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.sig"
	env := baseEnv()
	env[agent.TokenEnv] = token
	c, err := agent.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	outer := struct{ Agent agent.Config }{c}
	// Through an interface so that vet does not object to the verbs that
	// are deliberately wrong for some fields.
	var v any = c
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"Sprint":        fmt.Sprint(v),
		"%v":            fmt.Sprintf("%v", v),
		"%+v":           fmt.Sprintf("%+v", v),
		"%#v":           fmt.Sprintf("%#v", v),
		"%s":            fmt.Sprintf("%s", v),
		"%q":            fmt.Sprintf("%q", v),
		"%x":            fmt.Sprintf("%x", v),
		"%d (bad verb)": fmt.Sprintf("%d", v),
		"pointer %+v":   fmt.Sprintf("%+v", &c),
		"embedded %+v":  fmt.Sprintf("%+v", outer),
		"field %v":      fmt.Sprintf("%v", c.AuthToken),
		"json":          string(js),
	}
	for name, out := range outputs {
		if strings.Contains(out, token) || strings.Contains(out, fmt.Sprintf("%x", token)) {
			t.Errorf("%s shows the token: %s", name, out)
		}
	}
	if !strings.Contains(outputs["%+v"], "AuthToken:[redacted]") {
		t.Errorf("%%+v should show that a token is set: %s", outputs["%+v"])
	}
	if got := fmt.Sprint(agent.Secret("")); got != "" {
		t.Errorf("empty Secret prints %q, want empty", got)
	}
}
