package isolation

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

const cid = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func procCgroup(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cgroup")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func ptr[T any](v T) *T { return &v }

// fakeV1 is a writable directory that Detect takes for a cgroup v1 mount.
func fakeV1(t *testing.T) string {
	root := t.TempDir()
	for _, c := range []string{"memory", "cpu", "cpuacct", "pids"} {
		if err := os.Mkdir(filepath.Join(root, c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestDecide(t *testing.T) {
	v1self := "4:memory:/mesos/abc\n3:pids:/mesos/abc\n2:cpu,cpuacct:/\n1:name=systemd:/x\n0::/\n"
	tests := []struct {
		name       string
		o          func(o *Options)
		wantMode   Mode
		wantParent string
		wantReason string
		wantWarn   string
	}{
		{name: "not root", o: func(o *Options) { o.EUID = ptr(1000) }, wantMode: ModeDegraded, wantReason: "not root"},
		{name: "unknown driver", o: func(o *Options) { o.DockerDriver = "" }, wantMode: ModeDegraded, wantReason: "unknown Docker cgroup driver"},
		{name: "no cgroupfs", o: func(o *Options) { o.Root = t.TempDir() }, wantMode: ModeDegraded, wantReason: "no cgroup filesystem"},
		{name: "systemd driver", o: func(o *Options) { o.DockerDriver = "systemd" }, wantMode: ModeSlice, wantParent: "mdx-exec_1_x.slice"},
		{name: "override", o: func(o *Options) { o.Override = "/custom" }, wantMode: ModeNested, wantParent: "/custom", wantReason: "--cgroup-parent"},
		{name: "nested under the memory cgroup", wantMode: ModeNested, wantParent: "/mesos/abc/mdx/exec_1_x", wantWarn: ""},
		{name: "controllers differ", o: func(o *Options) {
			o.ProcSelfCgroup = procCgroup(t, "4:memory:/mesos/abc\n3:pids:/other\n")
		}, wantMode: ModeNested, wantParent: "/mesos/abc/mdx/exec_1_x", wantWarn: "pids:/other"},
		{name: "no memory line", o: func(o *Options) { o.ProcSelfCgroup = procCgroup(t, "3:pids:/\n") }, wantMode: ModeDegraded, wantReason: "memory cgroup is unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{Root: fakeV1(t), ProcSelfCgroup: procCgroup(t, v1self), DockerDriver: "cgroupfs", ExecutorID: "exec-1/x", EUID: ptr(0)}
			if tt.o != nil {
				tt.o(&o)
			}
			d := Decide(o)
			if d.Mode != tt.wantMode || d.Parent != tt.wantParent || !strings.Contains(d.Reason, tt.wantReason) {
				t.Fatalf("Decide() = %s; want mode %s parent %q reason containing %q", d, tt.wantMode, tt.wantParent, tt.wantReason)
			}
			if w := strings.Join(d.Warnings, ";"); !strings.Contains(w, tt.wantWarn) || (tt.wantWarn == "" && strings.Contains(w, "differ")) {
				t.Errorf("warnings %q; want %q", d.Warnings, tt.wantWarn)
			}
			if d.Mode == ModeNested && tt.wantParent != "/custom" {
				if _, err := os.Stat(filepath.Join(o.Root, "memory", d.Parent)); err != nil {
					t.Errorf("parent not created: %v", err)
				}
				if err := d.Cleanup(); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(filepath.Join(o.Root, "memory", "mesos")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("Cleanup left %s: %v", filepath.Join(o.Root, "memory", "mesos"), err)
				}
			}
		})
	}
}

func TestDecideV2MovesIntoLeaf(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"cgroup.controllers":               "cpu memory pids io",
		"mesos/abc/cgroup.controllers":     "cpu memory pids io hugetlb",
		"mesos/abc/cgroup.subtree_control": "",
		"mesos/abc/executor/cgroup.procs":  "",
	})
	d := Decide(Options{Root: root, ProcSelfCgroup: procCgroup(t, "0::/mesos/abc\n"), DockerDriver: "cgroupfs", ExecutorID: "e", EUID: ptr(0), MoveSelf: 4242})
	if d.Mode != ModeNested || d.Parent != "/mesos/abc/mdx/e" {
		t.Fatalf("Decide() = %s; want nested /mesos/abc/mdx/e", d)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "mesos/abc/executor/cgroup.procs")); string(b) != "4242" {
		t.Errorf("leaf cgroup.procs = %q; want the executor's pid", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "mesos/abc/cgroup.subtree_control")); string(b) != "+cpu +memory +pids +io" {
		t.Errorf("subtree_control = %q", b)
	}
}

func TestSanitizeID(t *testing.T) {
	for in, want := range map[string]string{
		"exec-1":                 "exec_1",
		"../..":                  ".._..", // one component: the slash is gone
		"..":                     "_..",
		"":                       "_",
		"a b\x00c/d":             "a_b_c_d",
		strings.Repeat("x", 300): strings.Repeat("x", maxIDLen),
	} {
		if got := SanitizeID(in); got != want {
			t.Errorf("SanitizeID(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestLayoutDir(t *testing.T) {
	tests := []struct {
		l    Layout
		ctrl string
		want string
	}{
		{Layout{Driver: "cgroupfs"}, "memory", "memory/docker/" + cid},
		{Layout{Driver: "cgroupfs", Parent: "/mesos/x/mdx/e"}, "pids", "pids/mesos/x/mdx/e/" + cid},
		{Layout{Driver: "cgroupfs", V2: true, Parent: "/a/mdx/e"}, "", "a/mdx/e/" + cid},
		{Layout{Driver: "systemd", V2: true}, "", "system.slice/docker-" + cid + ".scope"},
		{Layout{Driver: "systemd", V2: true, Parent: "mdx-e_1.slice"}, "", "mdx.slice/mdx-e_1.slice/docker-" + cid + ".scope"},
	}
	for _, tt := range tests {
		if got := tt.l.Dir(tt.ctrl, cid); got != tt.want {
			t.Errorf("%+v.Dir(%q) = %q; want %q", tt.l, tt.ctrl, got, tt.want)
		}
	}
}

func v1Files(dir string) map[string]string {
	return map[string]string{
		"memory/" + dir + "/memory.usage_in_bytes":     "104857600\n",
		"memory/" + dir + "/memory.max_usage_in_bytes": "209715200\n",
		"memory/" + dir + "/memory.limit_in_bytes":     "268435456\n",
		"memory/" + dir + "/memory.stat":               "cache 1048576\nrss 99614720\ntotal_rss 1\n",
		"memory/" + dir + "/memory.oom_control":        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
		"cpuacct/" + dir + "/cpuacct.stat":             "user 250\nsystem 50\n",
		"cpu/" + dir + "/cpu.stat":                     "nr_periods 10\nnr_throttled 3\nthrottled_time 1500000000\n",
		"pids/" + dir + "/pids.current":                "7\n",
		"pids/" + dir + "/pids.max":                    "max\n",
	}
}

func TestReaderV1(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, v1Files("p/"+cid))
	r, err := NewReader(Layout{Root: root, Driver: "cgroupfs", Parent: "/p"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s, err := r.Get(cid)
	if err != nil {
		t.Fatal(err)
	}
	s.ReadAt = time.Time{}
	want := Stats{CPUUserSeconds: 2.5, CPUSystemSeconds: 0.5, CPUPeriods: 10, CPUThrottledPeriods: 3, CPUThrottledSeconds: 1.5,
		MemoryBytes: 100 << 20, MemoryPeakBytes: 200 << 20, MemoryCacheBytes: 1 << 20, MemoryRSSBytes: 95 << 20,
		MemoryLimitBytes: 256 << 20, Pids: 7, OOMKills: 2}
	if s != want {
		t.Errorf("Get() =\n%+v\nwant\n%+v", s, want)
	}
}

func TestReaderV2(t *testing.T) {
	root := t.TempDir()
	d := "p/" + cid + "/"
	writeTree(t, root, map[string]string{
		d + "memory.current": "1000\n", d + "memory.peak": "2000\n", d + "memory.max": "max\n",
		d + "memory.stat":   "anon 600\nfile 300\n",
		d + "memory.events": "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
		d + "cpu.stat":      "usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
		d + "pids.current":  "3\n", d + "pids.max": "4096\n",
	})
	r, err := NewReader(Layout{Root: root, V2: true, Driver: "cgroupfs", Parent: "/p"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s, err := r.Get(cid)
	if err != nil {
		t.Fatal(err)
	}
	if s.MemoryBytes != 1000 || s.MemoryPeakBytes != 2000 || s.MemoryLimitBytes != 0 || s.MemoryRSSBytes != 600 ||
		s.MemoryCacheBytes != 300 || s.OOMKills != 1 || s.OOMEvents != 1 || s.CPUUserSeconds != 2 || s.CPUSystemSeconds != 1 ||
		s.Pids != 3 || s.PidsLimit != 4096 {
		t.Errorf("Get() = %+v", s)
	}
}

// TestReaderHostile: what a task can influence never leads the reader out of
// the cgroup tree: a symlink planted where a counter file should be is not
// followed, a bogus id is refused, oversized or garbage content is no crash.
func TestReaderHostile(t *testing.T) {
	root := t.TempDir()
	files := v1Files("docker/" + cid)
	files["memory/docker/"+cid+"/memory.stat"] = strings.Repeat("rss 1\n", 10000) // > the read bound
	files["cpu/docker/"+cid+"/cpu.stat"] = "nr_periods -5\n\x00\xff garbage\nnr_throttled 18446744073709551616\n"
	writeTree(t, root, files)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("oom_kill 999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	oc := filepath.Join(root, "memory/docker", cid, "memory.oom_control")
	_ = os.Remove(oc)
	if err := os.Symlink(secret, oc); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(Layout{Root: root, Driver: "cgroupfs"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s, err := r.Get(cid)
	if err != nil {
		t.Fatal(err)
	}
	if s.OOMKills != 0 || s.MemoryRSSBytes != 0 || s.CPUPeriods != 0 || s.CPUThrottledPeriods != 0 {
		t.Errorf("Get() = %+v; want the symlinked, oversized and garbage files ignored", s)
	}
	for _, bad := range []string{"../../../etc", cid[:63], strings.ToUpper(cid), cid + "/../x"} {
		if _, err := r.Get(bad); err == nil {
			t.Errorf("Get(%q) succeeded; want refused", bad)
		}
	}
	// A whole container directory replaced by a symlink is not followed.
	other := "1" + cid[1:]
	if err := os.Symlink(filepath.Join(root, "memory/docker", cid), filepath.Join(root, "memory/docker", other)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(other); !errors.Is(err, ErrNoCgroup) {
		t.Errorf("Get(symlinked dir) error = %v; want ErrNoCgroup", err)
	}
}

func TestReaderCache(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, v1Files("docker/"+cid))
	r, err := NewReader(Layout{Root: root, Driver: "cgroupfs"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	usage := filepath.Join(root, "memory/docker", cid, "memory.usage_in_bytes")
	if got := r.ReadMany([]string{cid, "gone"}); got[cid].MemoryBytes != 100<<20 || len(got) != 1 {
		t.Fatalf("ReadMany = %+v", got)
	}
	_ = os.WriteFile(usage, []byte("5\n"), 0o644)
	now = now.Add(500 * time.Millisecond)
	if got := r.ReadMany([]string{cid}); got[cid].MemoryBytes != 100<<20 {
		t.Errorf("within the TTL: %d; want the cached value", got[cid].MemoryBytes)
	}
	now = now.Add(time.Second)
	if got := r.ReadMany([]string{cid}); got[cid].MemoryBytes != 5 {
		t.Errorf("after the TTL: %d; want a fresh read", got[cid].MemoryBytes)
	}
	// The container exits: its cgroup goes, its last sample stays for
	// keepExited once ReadMany no longer lists it.
	if err := os.RemoveAll(filepath.Join(root, "memory/docker", cid)); err != nil {
		t.Fatal(err)
	}
	if s, ok := r.Last(cid); !ok || s.OOMKills != 2 {
		t.Errorf("Last() = %+v, %v; want the final sample", s, ok)
	}
	now = now.Add(2 * time.Second)
	r.ReadMany(nil)
	if _, ok := r.Last(cid); !ok {
		t.Error("the last sample of an exited container is gone before the exit could be judged")
	}
	now = now.Add(keepExited)
	r.ReadMany(nil)
	if _, ok := r.Last(cid); ok {
		t.Error("a sample of an unlisted container outlived keepExited")
	}
}

func TestDecideOOM(t *testing.T) {
	tests := []struct {
		name       string
		ev         ExitEvidence
		wantKilled bool
		wantMsg    []string
	}{
		{"docker flag and SIGKILL", ExitEvidence{ExitCode: 137, DockerOOM: true, LimitBytes: 64 << 20, Last: &Stats{MemoryPeakBytes: 64 << 20, OOMKills: 1}},
			true, []string{"64 MiB reached", "peak usage 64 MiB", "1 process"}},
		{"cgroup counter alone", ExitEvidence{ExitCode: 137, LimitBytes: 64 << 20, Last: &Stats{OOMKills: 1}}, true, []string{"OOM-killed"}},
		{"no limit of its own", ExitEvidence{ExitCode: 137, DockerOOM: true}, true, []string{"no memory limit of its own"}},
		{"137 without evidence is a kill, not OOM", ExitEvidence{ExitCode: 137}, false, nil},
		{"executor's own SIGKILL", ExitEvidence{ExitCode: 137, DockerOOM: true, KilledByExecutor: true}, false, []string{"earlier"}},
		{"child OOM-killed, main exited 0", ExitEvidence{ExitCode: 0, DockerOOM: true, Last: &Stats{OOMKills: 3}, LimitBytes: 1 << 30},
			false, []string{"3 processes", "OOM-killed earlier"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := DecideOOM(tt.ev)
			if v.Killed != tt.wantKilled {
				t.Errorf("Killed = %v; want %v (%+v)", v.Killed, tt.wantKilled, v)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(v.Message, m) {
					t.Errorf("Message %q; want %q in it", v.Message, m)
				}
			}
			if tt.wantMsg == nil && v.Message != "" {
				t.Errorf("Message %q; want none", v.Message)
			}
		})
	}
	lim := MemoryLimitation(0)
	if len(lim.Resources) != 1 || lim.Resources[0].Name != "mem" || lim.Resources[0].Scalar != nil || math.IsNaN(0) {
		t.Errorf("MemoryLimitation(0) = %+v", lim)
	}
}

func TestCollector(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, v1Files("docker/"+cid))
	r, err := NewReader(Layout{Root: root, Driver: "cgroupfs"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	logger, hook := logtest.NewNullLogger()
	c := NewCollector(r, func() []TaskRef {
		return []TaskRef{{TaskID: "web-1", ContainerID: cid}, {TaskID: "gone", ContainerID: "f" + cid[1:]}}
	}, logrus.NewEntry(logger))
	want := `
# HELP mesos_executor_task_memory_bytes Memory charged to the task's container now.
# TYPE mesos_executor_task_memory_bytes gauge
mesos_executor_task_memory_bytes{task_id="web-1"} 1.048576e+08
# HELP mesos_executor_task_oom_kills_total Processes of the task's container killed by the OOM killer.
# TYPE mesos_executor_task_oom_kills_total counter
mesos_executor_task_oom_kills_total{task_id="web-1"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "mesos_executor_task_memory_bytes", "mesos_executor_task_oom_kills_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c); n != 12 { // 13 metrics, no pids limit
		t.Errorf("%d metrics; want 12 for one task without a pids limit", n)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
	warns := 0
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel && e.Data["task_id"] == "web-1" {
			warns++
		}
	}
	if warns != 1 {
		t.Errorf("%d OOM warnings over three scrapes; want one per increase", warns)
	}
}
