package isolation

import (
	"strings"
	"testing"
)

func TestProcCgroupPaths(t *testing.T) {
	tests := []struct {
		name, in string
		want     map[string]string
		wantErr  bool
	}{
		{"v2", "0::/system.slice/docker-abc.scope\n", map[string]string{"": "/system.slice/docker-abc.scope"}, false},
		{"v1", "12:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n",
			map[string]string{"memory": "/docker/abc", "cpu": "/docker/abc", "cpuacct": "/docker/abc", "name=systemd": "/docker/abc"}, false},
		{"garbage", "nonsense\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ProcCgroupPaths(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("ProcCgroupPaths(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("ProcCgroupPaths(%q)[%q] = %q; want %q", tt.in, k, got[k], v)
				}
			}
		})
	}
}

func TestDetectHost(t *testing.T) {
	info := Detect("")
	t.Logf("host: %s", info)
	if info.Mode == "" {
		t.Fatal("Detect returned no mode")
	}
	if info.Mode != "none" && len(info.Controllers) == 0 {
		t.Errorf("Detect found cgroup %s but no controllers", info.Mode)
	}
}

func TestDetectEmptyDir(t *testing.T) {
	info := Detect(t.TempDir())
	if info.Mode != "none" || len(info.Warnings) == 0 {
		t.Errorf("Detect(empty dir) = %+v; want mode none with a warning", info)
	}
}
