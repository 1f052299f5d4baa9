package reaper

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name      string
		stat      string
		wantState byte
		wantPpid  int
		wantOK    bool
	}{
		{"plain", "42 (sleep) S 1 42 42 0 -1 4194560", 'S', 1, true},
		{"zombie", "1234 (task) Z 7 1234 7 0 -1 4227148 22 0", 'Z', 7, true},
		{"space in comm", "9 (my prog) Z 3 9 9", 'Z', 3, true},
		{"parens in comm", "9 (a) Z 5 (b)) R 6 9 9", 'R', 6, true},
		{"only a close paren", "9 ()) Z 8 9", 'Z', 8, true},
		{"comm looks like fields", "9 (x) R 1 2) Z 77 9", 'Z', 77, true},
		{"trailing newline", "9 (x) Z 3 9 9\n", 'Z', 3, true},
		{"no paren", "9 x Z 3", 0, 0, false},
		{"truncated", "9 (x) Z", 0, 0, false},
		{"bad ppid", "9 (x) Z abc", 0, 0, false},
		{"long state", "9 (x) ZZ 3", 0, 0, false},
		{"empty", "", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, ppid, ok := parseStat([]byte(tt.stat))
			if state != tt.wantState || ppid != tt.wantPpid || ok != tt.wantOK {
				t.Errorf("parseStat(%q) = %q, %d, %v; want %q, %d, %v",
					tt.stat, state, ppid, ok, tt.wantState, tt.wantPpid, tt.wantOK)
			}
		})
	}
}

// fakeProc builds a /proc under dir.
type fakeProc struct {
	t    *testing.T
	root string
}

func newFakeProc(t *testing.T) *fakeProc {
	return &fakeProc{t: t, root: t.TempDir()}
}

// proc adds process pid with the given comm, state and parent, in the PID
// namespace ns ("" leaves the ns/pid link out, as for a process whose link
// cannot be read).
func (f *fakeProc) proc(pid int, comm string, state byte, ppid int, ns string) {
	f.t.Helper()
	dir := filepath.Join(f.root, strconv.Itoa(pid))
	if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
		f.t.Fatal(err)
	}
	stat := fmt.Sprintf("%d (%s) %c %d %d %d 0 -1 4194560 0 0 0 0\n", pid, comm, state, ppid, pid, pid)
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
		f.t.Fatal(err)
	}
	if ns != "" {
		if err := os.Symlink(ns, filepath.Join(dir, "ns", "pid")); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fakeProc) remove(pid int) {
	f.t.Helper()
	if err := os.RemoveAll(filepath.Join(f.root, strconv.Itoa(pid))); err != nil {
		f.t.Fatal(err)
	}
}

const (
	hostNS = "pid:[4026531836]"
	nsA    = "pid:[4026532001]"
	nsB    = "pid:[4026532002]"
)

func TestCountZombies(t *testing.T) {
	f := newFakeProc(t)
	f.proc(1, "init", 'S', 0, hostNS)
	f.proc(50, "dockerd", 'S', 1, hostNS)
	f.proc(51, "defunct host", 'Z', 1, hostNS) // the host's, nobody's task
	// Task a: PID 1 of its container is host pid 100, it has 3 zombies,
	// one of which has no readable ns link (attributed through its
	// parent) and tricky names.
	f.proc(100, "task", 'S', 50, nsA)
	f.proc(101, "sleep) Z 1 (", 'Z', 100, nsA)
	f.proc(102, "my (weird) prog", 'Z', 100, nsA)
	f.proc(103, "no link", 'Z', 100, "")
	f.proc(104, "alive", 'R', 100, nsA)
	// Task b: no zombies.
	f.proc(200, "docker-init", 'S', 50, nsB)
	f.proc(201, "app", 'S', 200, nsB)
	// Task c shares b's namespace (PidMode container:).
	f.proc(300, "sidecar", 'S', 50, nsB)
	// A zombie whose link and parent's link are both unreadable.
	f.proc(400, "lost", 'Z', 401, "")
	// Directories that are not processes.
	if err := os.MkdirAll(filepath.Join(f.root, "sys"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.root, "uptime"), []byte("1 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A process directory without stat (vanished during the scan).
	if err := os.MkdirAll(filepath.Join(f.root, "500"), 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		init map[string]int
		want map[string]int
	}{
		{"one task", map[string]int{"a": 100}, map[string]int{"a": 3}},
		{"no zombies is 0", map[string]int{"b": 200}, map[string]int{"b": 0}},
		{"shared namespace", map[string]int{"a": 100, "b": 200, "c": 300}, map[string]int{"a": 3, "b": 0, "c": 0}},
		{"init pid is a zombie's sibling", map[string]int{"a": 104}, map[string]int{"a": 3}},
		{"gone init", map[string]int{"a": 100, "gone": 999}, map[string]int{"a": 3}},
		{"bad pid", map[string]int{"zero": 0, "neg": -1}, map[string]int{}},
		{"no tasks", nil, map[string]int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CountZombies(f.root, tt.init)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("CountZombies(%v) = %v, want %v", tt.init, got, tt.want)
			}
		})
	}
}

// A task sharing the caller's own PID namespace (PidMode host) cannot be
// told apart from the host and gets no count.
func TestCountZombiesOwnNamespace(t *testing.T) {
	f := newFakeProc(t)
	f.proc(10, "me", 'S', 1, hostNS)
	if err := os.Symlink("10", filepath.Join(f.root, "self")); err != nil {
		t.Fatal(err)
	}
	f.proc(20, "hostpid task", 'S', 1, hostNS)
	f.proc(21, "zombie", 'Z', 20, hostNS)
	f.proc(30, "task", 'S', 1, nsA)
	f.proc(31, "zombie", 'Z', 30, nsA)
	got, err := CountZombies(f.root, map[string]int{"host": 20, "own": 30})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"own": 1}; !maps.Equal(got, want) {
		t.Errorf("CountZombies = %v, want %v", got, want)
	}
}

func TestCountZombiesBadRoot(t *testing.T) {
	if _, err := CountZombies(filepath.Join(t.TempDir(), "missing"), map[string]int{"a": 1}); err == nil {
		t.Error("CountZombies of a missing procRoot succeeded")
	}
}

func TestZombieWatch(t *testing.T) {
	f := newFakeProc(t)
	f.proc(100, "task", 'S', 1, nsA)
	f.proc(200, "task", 'S', 1, nsB)
	pids := map[string]int{"a": 100, "b": 200}
	logger, hook := logtest.NewNullLogger()
	w := NewZombieWatch(WatchConfig{Threshold: 2, ProcRoot: f.root}, logrus.NewEntry(logger),
		func() map[string]int { return maps.Clone(pids) })

	warnings := func() []logrus.Fields {
		var out []logrus.Fields
		for _, e := range hook.AllEntries() {
			if e.Level == logrus.WarnLevel {
				out = append(out, e.Data)
			}
		}
		return out
	}

	w.scan()
	if got, want := w.Counts(), map[string]int{"a": 0, "b": 0}; !maps.Equal(got, want) {
		t.Fatalf("Counts() = %v, want %v", got, want)
	}
	// Three zombies in a: over the threshold of 2, one warning.
	for pid := 101; pid <= 103; pid++ {
		f.proc(pid, "z", 'Z', 100, nsA)
	}
	w.scan()
	w.scan()
	w.scan()
	if got := warnings(); len(got) != 1 || got[0]["task_id"] != "a" || got[0]["zombies"] != 3 {
		t.Fatalf("warnings after 3 scans over the threshold = %v, want one for task a with 3 zombies", got)
	}
	// More zombies: still above, no new warning.
	f.proc(104, "z", 'Z', 100, nsA)
	w.scan()
	if got := warnings(); len(got) != 1 {
		t.Errorf("warnings = %d after growing while above, want still 1", len(got))
	}
	// Back to the threshold (not over): the crossing ends; over again: a
	// second warning.
	f.remove(103)
	f.remove(104)
	w.scan()
	if got := w.Counts()["a"]; got != 2 {
		t.Fatalf("Counts()[a] = %d, want 2", got)
	}
	f.proc(103, "z", 'Z', 100, nsA)
	w.scan()
	if got := warnings(); len(got) != 2 {
		t.Errorf("warnings = %d after a second crossing, want 2", len(got))
	}
	// The task goes away: its count and crossing go too.
	delete(pids, "a")
	w.scan()
	if got, want := w.Counts(), map[string]int{"b": 0}; !maps.Equal(got, want) {
		t.Errorf("Counts() after task a ended = %v, want %v", got, want)
	}
	pids["a"] = 100
	w.scan()
	if got := warnings(); len(got) != 3 {
		t.Errorf("warnings = %d for a task that came back over the threshold, want 3", len(got))
	}

	// Metrics from the last scan.
	reg := prometheus.NewRegistry()
	reg.MustRegister(w.Collectors()...)
	got := gather(t, reg)
	want := map[string]float64{
		`mesos_executor_task_zombies{task_id="a"}`: 3,
		`mesos_executor_task_zombies{task_id="b"}`: 0,
		`mesos_executor_zombies`:                   3,
	}
	if !maps.Equal(got, want) {
		t.Errorf("metrics = %v, want %v", got, want)
	}
}

func TestZombieWatchScanError(t *testing.T) {
	logger, hook := logtest.NewNullLogger()
	w := NewZombieWatch(WatchConfig{ProcRoot: filepath.Join(t.TempDir(), "missing")}, logrus.NewEntry(logger),
		func() map[string]int { return map[string]int{"a": 1} })
	for range 3 {
		w.scan()
	}
	if n := len(hook.AllEntries()); n != 1 {
		t.Errorf("%d log entries for 3 failed scans, want 1", n)
	}
}

func TestZombieWatchRun(t *testing.T) {
	f := newFakeProc(t)
	f.proc(100, "task", 'S', 1, nsA)
	calls := make(chan struct{}, 100)
	w := NewZombieWatch(WatchConfig{Interval: 10 * time.Millisecond, ProcRoot: f.root}, nil,
		func() map[string]int {
			calls <- struct{}{}
			return map[string]int{"a": 100}
		})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	// The first scan is immediate, then one per interval.
	for range 3 {
		select {
		case <-calls:
		case <-time.After(5 * time.Second):
			t.Fatal("no scan within 5s")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if got := w.Counts(); !maps.Equal(got, map[string]int{"a": 0}) {
		t.Errorf("Counts() = %v", got)
	}
}

func TestWatchConfigDefaults(t *testing.T) {
	w := NewZombieWatch(WatchConfig{}, nil, nil)
	if w.cfg.Interval != DefaultWatchInterval || w.cfg.Threshold != DefaultZombieThreshold || w.cfg.ProcRoot != DefaultProcRoot {
		t.Errorf("defaults = %+v", w.cfg)
	}
}

// gather returns every unlabelled gauge and counter of reg by name, and
// labelled ones as name{label="value",...}.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			if len(m.GetLabel()) > 0 {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				name += "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[name] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[name] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}
