package containerd

import "testing"

func TestCallName(t *testing.T) {
	tests := []struct{ method, path, want string }{
		{"GET", "/_ping", "ping"},
		{"GET", "/v1.41/info", "info"},
		{"GET", "/v1.41/events", "events"},
		{"POST", "/v1.41/containers/create", "container_create"},
		{"POST", "/v1.41/containers/abc123/start", "container_start"},
		{"POST", "/v1.41/containers/abc123/kill", "container_kill"},
		{"GET", "/v1.41/containers/abc123/json", "container_inspect"},
		{"GET", "/v1.41/containers/json", "container_list"},
		{"DELETE", "/v1.41/containers/abc123", "container_remove"},
		{"GET", "/v1.41/containers/abc123/logs", "container_logs"},
		{"POST", "/v1.41/images/create", "image_pull"},
		{"GET", "/v1.41/images/busybox:1/json", "image_inspect"},
		{"GET", "/v1.41/images/registry.example.com/team/app:1/json", "image_inspect"},
		{"POST", "/v1.41/exec/e1/start", "exec_start"},
		{"POST", "/v1.41/containers/abc/exec", "container_exec"},
		{"GET", "/v1.41/swarm", "other"},
	}
	for _, tt := range tests {
		if got := callName(tt.method, tt.path); got != tt.want {
			t.Errorf("callName(%s, %q) = %q; want %q", tt.method, tt.path, got, tt.want)
		}
	}
}
