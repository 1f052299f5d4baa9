package main

import (
	"strings"
	"testing"
)

func TestIsolationFlags(t *testing.T) {
	base := map[string]string{
		"MESOS_FRAMEWORK_ID": "fw", "MESOS_EXECUTOR_ID": "ex", "MESOS_AGENT_ENDPOINT": "127.0.0.1:5051",
		"MESOS_SANDBOX": t.TempDir(), "MESOS_DIRECTORY": t.TempDir(),
	}
	env := func(extra map[string]string) func(string) string {
		return func(k string) string {
			if v, ok := extra[k]; ok {
				return v
			}
			return base[k]
		}
	}
	c, err := parseConfig(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.CPUQuota || c.PidsLimit != 4096 || c.CgroupParent != "" {
		t.Errorf("defaults: cpu-quota %v pids-limit %d cgroup-parent %q; want false, 4096, none", c.CPUQuota, c.PidsLimit, c.CgroupParent)
	}
	c, err = parseConfig([]string{"--cpu-quota", "--pids-limit", "0", "--cgroup-parent", "/x"}, env(nil))
	if err != nil || !c.CPUQuota || c.PidsLimit != 0 || c.CgroupParent != "/x" {
		t.Errorf("flags: %+v, %v", c, err)
	}
	c, err = parseConfig(nil, env(map[string]string{"EXECUTOR_CPU_QUOTA": "true", "EXECUTOR_PIDS_LIMIT": "100"}))
	if err != nil || !c.CPUQuota || c.PidsLimit != 100 {
		t.Errorf("environment: cpu-quota %v pids-limit %d, %v", c.CPUQuota, c.PidsLimit, err)
	}
	if _, err := parseConfig([]string{"--pids-limit", "-5"}, env(nil)); err == nil || !strings.Contains(err.Error(), "--pids-limit") {
		t.Errorf("--pids-limit -5: err = %v; want refused", err)
	}
}
