package main

import (
	"strings"
	"testing"

	"github.com/mdx-executor/mdx/containerd"
)

func testEnv(extra map[string]string) func(string) string {
	env := map[string]string{
		"MESOS_FRAMEWORK_ID":   "fw",
		"MESOS_EXECUTOR_ID":    "ex",
		"MESOS_AGENT_ENDPOINT": "127.0.0.1:5051",
		"MESOS_SANDBOX":        "/tmp/sb",
		"MESOS_DIRECTORY":      "/tmp/sb",
	}
	for k, v := range extra {
		env[k] = v
	}
	return func(k string) string { return env[k] }
}

func TestDockerLogFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want containerd.LogConfig
	}{
		{name: "defaults cap every container", want: containerd.LogConfig{Driver: "json-file", MaxSize: "10m", MaxFile: 2}},
		{name: "flags", args: []string{"--docker-log-driver", "local", "--docker-log-max-size", "50m", "--docker-log-max-file", "3"},
			want: containerd.LogConfig{Driver: "local", MaxSize: "50m", MaxFile: 3}},
		{name: "environment", env: map[string]string{"EXECUTOR_DOCKER_LOG_MAX_SIZE": "1m", "EXECUTOR_DOCKER_LOG_MAX_FILE": "5"},
			want: containerd.LogConfig{Driver: "json-file", MaxSize: "1m", MaxFile: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig(tt.args, testEnv(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.DockerLog != tt.want {
				t.Errorf("DockerLog = %+v, want %+v", cfg.DockerLog, tt.want)
			}
		})
	}
}

func TestDockerLogFlagsInvalid(t *testing.T) {
	for _, args := range [][]string{
		{"--docker-log-driver", "none"},
		{"--docker-log-max-size", "huge"},
		{"--docker-log-max-file", "0"},
	} {
		_, err := parseConfig(args, testEnv(nil))
		if err == nil || !strings.Contains(err.Error(), "--docker-log") {
			t.Errorf("parseConfig(%q) error = %v, want one naming --docker-log-*", args, err)
		}
	}
}
