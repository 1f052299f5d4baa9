package task

import (
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/isolation"
)

type fakeStats map[string]isolation.Stats

func (f fakeStats) Last(id string) (isolation.Stats, bool) { s, ok := f[id]; return s, ok }
func (f fakeStats) Forget(id string)                       { delete(f, id) }

func TestExitOOM(t *testing.T) {
	stats := fakeStats{"c1": {OOMKills: 1, MemoryPeakBytes: 64 << 20}}
	tests := []struct {
		name       string
		stats      CgroupStats
		e          containerd.Exit
		killing    bool
		wantKilled bool
		wantMsg    string
	}{
		{"docker says OOM", nil, containerd.Exit{ContainerID: "c0", ExitCode: 137, OOMKilled: true}, false, true, "memory limit 64 MiB reached"},
		{"only the cgroup counter says so", stats, containerd.Exit{ContainerID: "c1", ExitCode: 137}, false, true, "peak usage 64 MiB"},
		{"SIGKILL without evidence", stats, containerd.Exit{ContainerID: "c2", ExitCode: 137}, false, false, ""},
		{"the executor's kill", stats, containerd.Exit{ContainerID: "c1", ExitCode: 137, OOMKilled: true}, true, false, "OOM-killed earlier"},
		{"child killed, main exits 1", stats, containerd.Exit{ContainerID: "c1", ExitCode: 1, OOMKilled: true}, false, false, "OOM-killed earlier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := ExitOOM(tt.stats, tt.e, tt.killing, 64<<20)
			if v.Killed != tt.wantKilled || !strings.Contains(v.Message, tt.wantMsg) {
				t.Errorf("ExitOOM() = %+v; want killed %v, message with %q", v, tt.wantKilled, tt.wantMsg)
			}
		})
	}
	if l := LimitationFor(mesos.REASON_CONTAINER_LIMITATION_MEMORY, 64<<20); l == nil || l.Resources[0].Name != "mem" || l.Resources[0].GetScalar().GetValue() != 64 {
		t.Errorf("LimitationFor(memory) = %+v; want mem 64", l)
	}
	if l := LimitationFor(mesos.REASON_TASK_INVALID, 64<<20); l != nil {
		t.Errorf("LimitationFor(invalid) = %+v; want nil", l)
	}
}
