package cleanup

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdx-executor/mdx/containerd"
)

func TestDecideLiveness(t *testing.T) {
	const boot = "5e7c3a0e-1111-2222-3333-444455556666"
	created := time.Unix(1_800_000_000, 0)
	labels := func(pid, bootID, inst string) map[string]string {
		l := map[string]string{
			containerd.LabelFramework: "fw", containerd.LabelExecutor: "ex", containerd.LabelInstance: inst,
			containerd.LabelCreatedUnix: strconv.FormatInt(created.Unix(), 10),
		}
		if pid != "" {
			l[containerd.LabelPID] = pid
		}
		if bootID != "" {
			l[containerd.LabelBootID] = bootID
		}
		return l
	}
	running := procState{exists: true, start: created.Add(-time.Hour), comm: "executor"}
	tests := []struct {
		name      string
		labels    map[string]string
		self      string
		hostBoot  string
		proc      procState
		wantAlive bool
		wantWhy   string
	}{
		{"this executor's own instance", labels("1", "other-boot", "me"), "me", boot, procState{}, true, "this executor"},
		{"boot id differs: rebooted", labels("4242", "old-boot", "i1"), "me", boot, running, false, "rebooted"},
		{"pid gone", labels("4242", boot, "i1"), "me", boot, procState{}, false, "no longer exists"},
		{"pid a zombie", labels("4242", boot, "i1"), "me", boot, procState{exists: true, zombie: true}, false, "zombie"},
		{"pid alive but another program started later", labels("4242", boot, "i1"), "me", boot,
			procState{exists: true, start: created.Add(time.Hour), comm: "nginx"}, false, "pid reused"},
		{"pid started within the label's rounding", labels("4242", boot, "i1"), "me", boot,
			procState{exists: true, start: created.Add(time.Second), comm: "executor"}, true, "is running"},
		{"alive executor", labels("4242", boot, "i1"), "me", boot, running, true, "is running"},
		{"alive, start time unreadable", labels("4242", boot, "i1"), "me", boot, procState{exists: true}, true, "is running"},
		{"no pid label", labels("", boot, "i1"), "me", boot, procState{}, true, "cannot prove"},
		{"no boot id label", labels("4242", "", "i1"), "me", boot, procState{}, true, "cannot prove"},
		{"garbage pid label", labels("-1", boot, "i1"), "me", boot, procState{}, true, "cannot prove"},
		{"host boot id unknown", labels("4242", boot, "i1"), "me", "", procState{}, true, "cannot prove"},
		{"cleanup command has no instance", labels("4242", boot, "me"), "", boot, procState{}, false, "no longer exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alive, why := decideLiveness(tt.labels, time.Time{}, tt.self, tt.hostBoot, tt.proc)
			if alive != tt.wantAlive || !strings.Contains(why, tt.wantWhy) {
				t.Errorf("decideLiveness() = %v, %q; want %v, containing %q", alive, why, tt.wantAlive, tt.wantWhy)
			}
		})
	}
}

// ExecutorAlive against a fake /proc: boot id, btime and a process's stat.
func TestExecutorAliveFakeProc(t *testing.T) {
	const boot = "5e7c3a0e-1111-2222-3333-444455556666"
	btime := int64(1_800_000_000)
	// Started 100 s after boot (10000 ticks), with a comm holding ") (".
	stat := func(state string, ticks int) string {
		return "4242 (weird ) (name) " + state + " 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 " + strconv.Itoa(ticks) + " 1000 10\n"
	}
	proc := fakeProc(t, map[int]fakeProcess{
		4242: {ns: "mnt:[1]", stat: stat("S", 10000)},
		4243: {ns: "mnt:[1]", stat: stat("Z", 10000)},
	}, 0)
	must(t, os.MkdirAll(filepath.Join(proc, "sys", "kernel", "random"), 0o755))
	must(t, os.WriteFile(filepath.Join(proc, "sys", "kernel", "random", "boot_id"), []byte(boot+"\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(proc, "stat"), []byte("cpu  1 2 3\nbtime "+strconv.FormatInt(btime, 10)+"\nprocesses 5\n"), 0o644))

	l := Liveness{ProcRoot: proc}
	lab := func(pid string, created int64) map[string]string {
		return map[string]string{containerd.LabelPID: pid, containerd.LabelBootID: boot,
			containerd.LabelCreatedUnix: strconv.FormatInt(created, 10)}
	}
	if alive, why := l.ExecutorAlive(lab("4242", btime+200), time.Time{}); !alive {
		t.Errorf("executor started at boot+100s, container created at boot+200s: dead (%s); want alive", why)
	}
	if alive, why := l.ExecutorAlive(lab("4242", btime+50), time.Time{}); alive || !strings.Contains(why, "weird ) (name") {
		t.Errorf("process started after the container was created: alive=%v (%s); want dead, naming the process", alive, why)
	}
	if alive, _ := l.ExecutorAlive(lab("4243", btime+200), time.Time{}); alive {
		t.Error("zombie executor: alive; want dead")
	}
	if alive, _ := l.ExecutorAlive(lab("4244", btime+200), time.Time{}); alive {
		t.Error("missing pid: alive; want dead")
	}
}
