package e2e

// The hostile-tenant suite (issue 10): tasks that attack the executor's files,
// its event loop and their neighbours, each launched many at once so that the
// executor is busy when they act. See test/taskbin/hostile.go for what each
// hostile-* command does inside its container.

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/agent/localagent"
	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/sandbox"
	"github.com/mdx-executor/mdx/status"
)

const (
	// hostileCount is how many copies of a hostile task are launched at
	// once.
	hostileCount = 12
	// hostProbe is a host path the hostile tasks point symlinks at; the
	// executor runs as root, so following one would create it.
	hostProbe = "/etc/mdx-hostile-probe"
	// smallLog makes a few rounds of a hostile task's output rotate its
	// log files.
	smallLog = "4096"
)

// victim is a host file (and a host directory) that hostile tasks point their
// symlinks at. check fails the test if anything wrote to either.
type victim struct {
	dir, file, absent string
	content           []byte
	mtime             time.Time
}

func newVictim(t *testing.T) *victim {
	t.Helper()
	if _, err := os.Lstat(hostProbe); !os.IsNotExist(err) {
		t.Fatalf("%s exists before the test (%v): an earlier run or another test left it; remove it by hand", hostProbe, err)
	}
	v := &victim{dir: t.TempDir(), content: []byte("the victim's own content\n")}
	v.file = filepath.Join(v.dir, "victim")
	v.absent = filepath.Join(v.dir, "created-by-a-task")
	if err := os.WriteFile(v.file, v.content, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(v.file)
	if err != nil {
		t.Fatal(err)
	}
	v.mtime = st.ModTime()
	return v
}

// targets are the symlink targets for the hostile-* commands.
func (v *victim) targets() []string { return []string{v.file, v.absent, hostProbe} }

func (v *victim) check(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(v.file)
	if err != nil {
		t.Fatalf("read the victim: %v", err)
	}
	if string(b) != string(v.content) {
		t.Errorf("the host victim file was written through a task's symlink: %d bytes, starting %q", len(b), headBytes(b, 120))
	}
	if st, err := os.Stat(v.file); err == nil && !st.ModTime().Equal(v.mtime) {
		t.Errorf("the host victim file's mtime changed from %v to %v", v.mtime, st.ModTime())
	}
	entries, err := os.ReadDir(v.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the victim's host directory holds %v, want only the victim: the executor created files through a task's symlink", names)
	}
	if _, err := os.Lstat(hostProbe); !os.IsNotExist(err) {
		t.Errorf("%s exists (%v): the executor created a host file through a task's symlink", hostProbe, err)
		_ = os.Remove(hostProbe)
	}
}

// planted matches a hostile task's report of a round that replaced names.
var planted = regexp.MustCompile(`hostile round \d+: [1-9]\d* (symlinks|fifos)`)

func headBytes(b []byte, n int) []byte { return b[:min(n, len(b))] }

// hostileIDs returns prefix-0 ... prefix-(n-1).
func hostileIDs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// launchAll launches one task per id with the same labels, all at once.
func (h *harness) launchAll(taskIDs []string, labels map[string]string) {
	for _, id := range taskIDs {
		h.launch(id, labels)
	}
}

// waitAll waits for every task to reach state.
func (h *harness) waitAll(taskIDs []string, state mesos.TaskState) {
	h.t.Helper()
	for _, id := range taskIDs {
		h.waitState(id, state)
	}
}

// killAll kills every task and wants each to end TASK_KILLED with exactly one
// terminal update from the executor.
func (h *harness) killAll(taskIDs []string) {
	h.t.Helper()
	for _, id := range taskIDs {
		h.la.Kill(id, nil)
	}
	for _, id := range taskIDs {
		h.waitState(id, mesos.TASK_KILLED)
	}
	for _, id := range taskIDs {
		h.wantOneTerminal(id)
	}
}

// wantOneTerminal fails the test unless the executor sent exactly one
// terminal update for the task.
func (h *harness) wantOneTerminal(id string) {
	h.t.Helper()
	n := 0
	for _, s := range h.states(id) {
		if isTerminal(s) {
			n++
		}
	}
	if n != 1 {
		h.t.Errorf("task %s: %d terminal updates, want exactly 1: %s", id, n, h.history(id))
	}
}

// wantRunning fails the test unless every task is still TASK_RUNNING at the
// agent and has one running container.
func (h *harness) wantRunning(taskIDs []string) {
	h.t.Helper()
	for _, id := range taskIDs {
		if s, _ := h.la.TaskState(id); s != mesos.TASK_RUNNING {
			h.t.Errorf("task %s is %s, want it still TASK_RUNNING: %s", id, s, h.history(id))
		}
		cs := settled(func() []containerd.Summary { return h.taskContainers(id) }, 1)
		if len(cs) != 1 || cs[0].State != "running" {
			h.t.Errorf("task %s: containers %+v, want one running", id, cs)
		}
	}
}

// wantTaskDirSafe walks the test's whole sandbox outside the containers' own
// directories and fails the test for anything that is not a directory or a
// regular file (a symlink or FIFO there would mean a task reached the
// executor's files), and for a task directory without regular stdout and
// stderr files.
func (h *harness) wantTaskDirSafe(taskIDs []string) {
	h.t.Helper()
	tasks := filepath.Join(h.sandbox, "tasks")
	err := filepath.WalkDir(tasks, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == sandbox.ContainerDirName && filepath.Dir(filepath.Dir(path)) == tasks {
			return filepath.SkipDir // the container's own: anything goes
		}
		if t := d.Type(); t != 0 && !d.IsDir() {
			h.t.Errorf("%s is a %v, not a regular file, outside every container's directory", path, t)
		}
		return nil
	})
	if err != nil {
		h.t.Errorf("walk %s: %v", tasks, err)
	}
	for _, id := range taskIDs {
		for _, name := range []string{"stdout", "stderr"} {
			p := filepath.Join(tasks, id, name)
			st, err := os.Lstat(p)
			if err != nil || !st.Mode().IsRegular() {
				h.t.Errorf("task %s: %s is %v (%v), want a regular file", id, name, st.Mode(), err)
			}
		}
	}
}

// waitRotated waits until each task's stdout has been rotated at least once
// (tasks/<id>/stdout.1 exists), which proves that the executor kept writing
// and rotating while the task attacked its names.
func (h *harness) waitRotated(taskIDs []string) {
	h.t.Helper()
	for _, id := range taskIDs {
		p := filepath.Join(h.sandbox, "tasks", id, "stdout.1")
		waitFor(h.t, outputTimeout, "a rotation of task "+id+"'s stdout", func() bool {
			_, err := os.Lstat(p)
			return err == nil
		})
	}
}

// TestHostileSymlinks: tasks replace every name they can reach in their
// sandbox, and ../stdout, ../stderr and the rotated names, with symlinks to
// host paths, while printing enough to force rotations. Nothing outside the
// sandbox is written or created, and the tasks run on and can be killed.
func TestHostileSymlinks(t *testing.T) {
	t.Parallel()
	v := newVictim(t)
	h := start(t, config{env: map[string]string{"EXECUTOR_TASK_LOG_MAX_SIZE": smallLog, "EXECUTOR_TASK_LOG_MAX_FILES": "3"}})
	hostile := hostileIDs("symlink", hostileCount)
	labels := args(append([]string{"hostile-symlink"}, v.targets()...)...)
	labels["kill.grace"] = "1s"
	h.launchAll(hostile, labels)
	h.waitAll(hostile, mesos.TASK_RUNNING)
	h.waitRotated(hostile)
	// The attacks and rotations go on while other tasks launch.
	others := hostileIDs("beside-symlinks", 4)
	h.launchAll(others, args("sleep", "1h"))
	h.waitAll(others, mesos.TASK_RUNNING)
	h.waitRotated(hostile)

	// The attack must have happened for the checks below to mean anything.
	for _, id := range hostile {
		if !planted.MatchString(h.allOutput(id)) {
			t.Errorf("task %s never reports a round with symlinks planted: %q", id, headBytes([]byte(h.taskFile(id, "stdout")), 200))
		}
	}
	all := append(hostile, others...)
	h.wantRunning(all)
	h.wantTaskDirSafe(all)
	v.check(t)
	h.killAll(all)
	v.check(t)
	h.wantTaskDirSafe(all)
}

// TestHostileFIFOs: tasks replace every name they can reach with named pipes
// (some held open for reading). Tasks launched afterwards still reach
// TASK_RUNNING and every KILL still works, each task ending with exactly one
// terminal update.
func TestHostileFIFOs(t *testing.T) {
	t.Parallel()
	h := start(t, config{})
	fifo := hostileIDs("fifo", hostileCount)
	labels := args("hostile-fifo")
	labels["kill.grace"] = "1s"
	h.launchAll(fifo, labels)
	h.waitAll(fifo, mesos.TASK_RUNNING)
	for _, id := range fifo {
		h.waitOutput(id, "hostile round 3:")
	}
	for _, id := range fifo {
		if !planted.MatchString(h.taskFile(id, "stdout")) {
			t.Errorf("task %s never reports a round with FIFOs planted: %q", id, headBytes([]byte(h.taskFile(id, "stdout")), 200))
		}
	}
	after := hostileIDs("after-fifo", 6)
	h.launchAll(after, args("sleep", "1h"))
	h.waitAll(after, mesos.TASK_RUNNING)
	h.wantRunning(fifo)
	h.wantTaskDirSafe(append(fifo, after...))
	h.killAll(append(fifo, after...))
}

// TestHostileFlood: tasks flood their output while replacing their files with
// symlinks and FIFOs. The executor stays responsive: GET /state answers and
// other tasks launch while the flood goes on, and the task logs stay bounded.
func TestHostileFlood(t *testing.T) {
	t.Parallel()
	v := newVictim(t)
	const maxLog, keep = 64 << 10, 2
	h := start(t, config{env: map[string]string{
		"EXECUTOR_TASK_LOG_MAX_SIZE":  fmt.Sprint(maxLog),
		"EXECUTOR_TASK_LOG_MAX_FILES": fmt.Sprint(keep),
	}})
	flood := hostileIDs("flood", hostileCount)
	// 4 MiB each in 16 KiB lines: the executor copies and rotates all of
	// it, while the shared Docker daemon's json-file driver, which every
	// byte passes first, handles only 256 messages per task.
	labels := args(append([]string{"hostile-flood", fmt.Sprint(4 << 20)}, v.targets()...)...)
	labels["kill.grace"] = "1s"
	h.launchAll(flood, labels)

	// /state must answer quickly throughout, and other tasks launch
	// while the flood tasks start and flood.
	stop := make(chan struct{})
	stateErr := make(chan error, 1)
	go func() {
		defer close(stateErr)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			begin := time.Now()
			if _, err := getStatusErr(filepath.Join(h.sandbox, status.SocketName), "/state"); err != nil {
				stateErr <- fmt.Errorf("GET /state during the flood: %w", err)
				return
			}
			if d := time.Since(begin); d > 5*time.Second {
				stateErr <- fmt.Errorf("GET /state during the flood took %v", d)
				return
			}
		}
	}()
	others := hostileIDs("beside-flood", 4)
	h.launchAll(others, args("sleep", "1h"))
	h.waitAll(flood, mesos.TASK_RUNNING)
	h.waitAll(others, mesos.TASK_RUNNING)
	close(stop)
	if err := <-stateErr; err != nil {
		t.Error(err)
	}
	h.waitRotated(flood)
	stillFlooding := 0
	for _, id := range flood {
		if !strings.Contains(h.allOutput(id), "hostile flood done") {
			stillFlooding++
		}
	}
	t.Logf("%d of %d tasks were still flooding when the other tasks ran", stillFlooding, len(flood))

	all := append(flood, others...)
	h.wantRunning(all)
	h.wantTaskDirSafe(all)
	for _, id := range flood {
		if n := h.logBytes(id, "stdout"); n > (keep+1)*(maxLog+64<<10) {
			t.Errorf("task %s: its stdout files hold %d bytes, beyond %d files of %d", id, n, keep+1, maxLog)
		}
	}
	v.check(t)
	h.killAll(all)
	v.check(t)
}

// getStatusErr GETs a page from the status socket, for goroutines that
// cannot fail the test themselves.
func getStatusErr(socket, page string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://executor"+page, nil)
	if err != nil {
		return "", err
	}
	c := status.NewHTTPClient(socket)
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", page, resp.Status)
	}
	return string(b), nil
}

// allOutput returns a task's stdout and its rotated files, concatenated.
func (h *harness) allOutput(id string) string {
	var b strings.Builder
	matches, _ := filepath.Glob(filepath.Join(h.sandbox, "tasks", id, "stdout*"))
	for _, m := range matches {
		data, _ := os.ReadFile(m)
		b.Write(data)
	}
	return b.String()
}

// logBytes sums the sizes of a task's name and name.N files.
func (h *harness) logBytes(id, name string) int {
	matches, _ := filepath.Glob(filepath.Join(h.sandbox, "tasks", id, name+"*"))
	n := 0
	for _, m := range matches {
		if st, err := os.Lstat(m); err == nil {
			n += int(st.Size())
		}
	}
	return n
}

// TestHostileContainerModes: a victim runs; tasks that ask to join its
// network or pid namespace (label docker.network=container:<id>, Docker
// parameters net=, pid=, ipc=container:<id or name>) are refused with
// TASK_FAILED / REASON_TASK_INVALID naming the field, no container is created
// for them, and the victim runs on untouched.
func TestHostileContainerModes(t *testing.T) {
	t.Parallel()
	h := start(t, config{})
	h.launch("victim", args("sleep", "1h"))
	h.waitState("victim", mesos.TASK_RUNNING)
	vc := h.onlyContainer("victim")
	before := h.inspect(vc.ID)
	name := strings.TrimPrefix(vc.Names[0], "/")

	type attempt struct {
		id, field string
		ti        mesos.TaskInfo
	}
	var attempts []attempt
	for i, ref := range []string{vc.ID, vc.ID[:12], name} {
		id := fmt.Sprintf("join-label-%d", i)
		attempts = append(attempts, attempt{id, "network=container:", h.task(id, map[string]string{"docker.network": "container:" + ref})})
		for _, p := range []struct{ key, field string }{{"net", "network"}, {"pid", "pid"}, {"ipc", "ipc"}} {
			id := fmt.Sprintf("join-%s-%d", p.key, i)
			ti := h.task(id, args("sleep", "1h"))
			ti.Container = &mesos.ContainerInfo{
				Type: mesos.ContainerInfo_DOCKER.Enum(),
				Docker: &mesos.ContainerInfo_DockerInfo{
					Image:      h.image,
					Parameters: []mesos.Parameter{{Key: p.key, Value: "container:" + ref}},
				},
			}
			attempts = append(attempts, attempt{id, p.field + "=container:", ti})
		}
	}
	if len(attempts) < hostileCount {
		t.Fatalf("only %d attempts", len(attempts))
	}
	for _, a := range attempts {
		h.la.Launch(a.ti)
	}
	for _, a := range attempts {
		st := h.waitState(a.id, mesos.TASK_FAILED)
		if st.GetReason() != mesos.REASON_TASK_INVALID || !strings.Contains(st.GetMessage(), a.field) {
			t.Errorf("task %s: %s %q, want REASON_TASK_INVALID naming %q", a.id, st.GetReason(), st.GetMessage(), a.field)
		}
		h.wantOneTerminal(a.id)
		if cs := h.taskContainers(a.id); len(cs) != 0 {
			t.Errorf("task %s was refused but has containers %+v", a.id, cs)
		}
	}
	after := h.inspect(vc.ID)
	if !after.Running || after.Pid != before.Pid {
		t.Errorf("the victim's container changed: running %v pid %d, was running %v pid %d", after.Running, after.Pid, before.Running, before.Pid)
	}
	h.wantRunning([]string{"victim"})
	h.wantStates("victim", mesos.TASK_STARTING, mesos.TASK_RUNNING)
	h.killAll([]string{"victim"})
}

// frameworkWidening is what a framework writes into
// ExecutorInfo.command.environment to switch the policy off.
func frameworkWidening(policyFile string) map[string]string {
	return map[string]string{
		"EXECUTOR_ALLOW_PRIVILEGED":      "true",
		"EXECUTOR_ALLOW_HOST_NAMESPACES": "true",
		"EXECUTOR_ALLOW_HOST_MOUNTS":     "true",
		"EXECUTOR_ALLOWED_NETWORKS":      "*",
		"EXECUTOR_POLICY_FILE":           policyFile,
	}
}

// privilegedTask asks for a privileged container natively.
func (h *harness) privilegedTask(id string) mesos.TaskInfo {
	ti := h.task(id, args("sleep", "1h"))
	ti.Container = &mesos.ContainerInfo{
		Type:   mesos.ContainerInfo_DOCKER.Enum(),
		Docker: &mesos.ContainerInfo_DockerInfo{Image: h.image, Privileged: proto.Bool(true)},
	}
	return ti
}

// wantRefused launches tasks and wants each TASK_FAILED / REASON_TASK_INVALID
// with a message containing field, and no container.
func (h *harness) wantRefused(field string, tis ...mesos.TaskInfo) {
	h.t.Helper()
	for _, ti := range tis {
		h.la.Launch(ti)
	}
	for _, ti := range tis {
		id := ti.TaskID.Value
		st := h.waitState(id, mesos.TASK_FAILED)
		if st.GetReason() != mesos.REASON_TASK_INVALID || !strings.Contains(st.GetMessage(), field) {
			h.t.Errorf("task %s: %s %q, want REASON_TASK_INVALID naming %q", id, st.GetReason(), st.GetMessage(), field)
		}
		if cs := h.taskContainers(id); len(cs) != 0 {
			h.t.Errorf("task %s was refused but has containers %+v", id, cs)
		}
	}
}

// policyState returns /state's policy block, failing the test without one.
func (h *harness) policyState() (status.PolicyState, map[string]status.PolicySetting) {
	h.t.Helper()
	st := h.statusState()
	if st.Policy == nil {
		h.t.Fatal("/state has no policy block")
	}
	m := map[string]status.PolicySetting{}
	for _, s := range st.Policy.Settings {
		m[s.Name] = s
	}
	return *st.Policy, m
}

// TestHostilePolicyFromEnvironmentIgnored: the framework's environment asks
// for everything, and there is no policy file: privileged and host-network
// tasks are refused, and /state says why. A root-owned policy file that
// allows host namespaces lets a host-network task run; the same file made
// group-writable is refused.
func TestHostilePolicyFromEnvironmentIgnored(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		// The policy file must be owned by root, which only root can
		// make; an executor not running as root is not the case under test.
		if os.Getenv("CI") == "true" {
			t.Fatal("the policy file tests need root, and CI=true")
		}
		t.Skip("the policy file tests need root to make a root-owned policy file")
	}
	policyDir := t.TempDir()
	missing := filepath.Join(policyDir, "does-not-exist.json")

	t.Run("no file", func(t *testing.T) {
		t.Parallel()
		h := start(t, config{env: frameworkWidening(missing)})
		var tis []mesos.TaskInfo
		for i := range hostileCount / 2 {
			tis = append(tis, h.privilegedTask(fmt.Sprintf("priv-%d", i)))
		}
		h.wantRefused("privileged", tis...)
		tis = nil
		for i := range hostileCount / 2 {
			tis = append(tis, h.task(fmt.Sprintf("hostnet-%d", i), map[string]string{"docker.network": "host", "docker.args": `["sleep","1h"]`}))
		}
		h.wantRefused("network=host", tis...)

		pol, set := h.policyState()
		if pol.File != missing || pol.FileStatus != "absent" {
			t.Errorf("/state policy file %q status %q, want %q absent", pol.File, pol.FileStatus, missing)
		}
		for _, k := range []string{"allow-privileged", "allow-host-namespaces", "allow-host-mounts", "allow-container-namespaces"} {
			if s := set[k]; s.Value != "false" || s.Source == "" {
				t.Errorf("/state policy %s = %+v, want false with a source", k, s)
			}
		}
		if s := set["allowed-networks"]; s.Value != "" || s.Source == "" {
			t.Errorf("/state policy allowed-networks = %+v, want none with a source", s)
		}
		if s := set["allow-privileged"]; s.Source != "default" {
			t.Errorf("/state policy allow-privileged source %q, want default: the framework's variable must not count", s.Source)
		}
	})

	good := filepath.Join(policyDir, "good.json")
	writePolicy(t, good, `{"allow-host-namespaces": true}`, 0o644)
	t.Run("root-owned file allows host namespaces", func(t *testing.T) {
		t.Parallel()
		h := start(t, config{env: frameworkWidening(good)})
		var hostnet []string
		for i := range 4 {
			id := fmt.Sprintf("hostnet-%d", i)
			hostnet = append(hostnet, id)
			h.launch(id, map[string]string{"docker.network": "host", "docker.args": `["sleep","1h"]`})
		}
		var tis []mesos.TaskInfo
		for i := range hostileCount - 4 {
			tis = append(tis, h.privilegedTask(fmt.Sprintf("priv-%d", i)))
		}
		h.wantRefused("privileged", tis...)
		h.waitAll(hostnet, mesos.TASK_RUNNING)
		pol, set := h.policyState()
		if pol.FileStatus != "loaded" {
			t.Errorf("/state policy file status %q, want loaded", pol.FileStatus)
		}
		if s := set["allow-host-namespaces"]; s.Value != "true" || s.Source != "file" {
			t.Errorf("/state allow-host-namespaces = %+v, want true from the file", s)
		}
		if s := set["allow-privileged"]; s.Value != "false" {
			t.Errorf("/state allow-privileged = %+v, want false: the file does not allow it", s)
		}
		h.killAll(hostnet)
	})

	loose := filepath.Join(policyDir, "group-writable.json")
	writePolicy(t, loose, `{"allow-host-namespaces": true, "allow-privileged": true}`, 0o664)
	t.Run("group-writable file refused", func(t *testing.T) {
		t.Parallel()
		h := start(t, config{env: frameworkWidening(loose)})
		var tis []mesos.TaskInfo
		for i := range hostileCount / 2 {
			tis = append(tis, h.task(fmt.Sprintf("hostnet-%d", i), map[string]string{"docker.network": "host", "docker.args": `["sleep","1h"]`}))
			tis = append(tis, h.privilegedTask(fmt.Sprintf("priv-%d", i)))
		}
		for _, ti := range tis {
			h.la.Launch(ti)
		}
		for _, ti := range tis {
			st := h.waitState(ti.TaskID.Value, mesos.TASK_FAILED)
			if st.GetReason() != mesos.REASON_TASK_INVALID {
				t.Errorf("task %s: %s %q, want REASON_TASK_INVALID", ti.TaskID.Value, st.GetReason(), st.GetMessage())
			}
		}
		pol, _ := h.policyState()
		if !strings.HasPrefix(pol.FileStatus, "refused: ") || !strings.Contains(pol.FileStatus, "writable") {
			t.Errorf("/state policy file status %q, want refused: ... writable", pol.FileStatus)
		}
	})
}

// writePolicy writes a policy file with exactly mode perm (no umask).
func writePolicy(t *testing.T, path, body string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}

// TestHostileReusedTaskID: task ids launched, finished, acknowledged and
// launched again run and can be killed, and the earlier run's logs stay
// readable under tasks/<id>.run-*/stdout.
func TestHostileReusedTaskID(t *testing.T) {
	t.Parallel()
	h := start(t, config{})
	reused := hostileIDs("reused", hostileCount)
	h.launchAll(reused, args("echo", "first-run", "--", "exit", "0"))
	for _, id := range reused {
		h.waitState(id, mesos.TASK_FINISHED)
	}
	for _, id := range reused {
		waitFor(t, waitTimeout, "the acknowledgement of "+id+"'s TASK_FINISHED", func() bool {
			for _, u := range h.updates(id) {
				if u.Status.GetState() == mesos.TASK_FINISHED && u.Acked {
					return true
				}
			}
			return false
		})
	}
	seen := map[string]int{}
	for _, id := range reused {
		seen[id] = len(h.updates(id))
	}
	h.launchAll(reused, args("echo", "second-run", "--", "sleep", "1h"))
	for _, id := range reused {
		h.waitNewState(id, seen[id], mesos.TASK_RUNNING)
		h.waitOutput(id, "second-run\n")
	}
	h.wantRunning(reused)
	for _, id := range reused {
		h.la.Kill(id, nil)
	}
	for _, id := range reused {
		h.waitNewState(id, seen[id], mesos.TASK_KILLED)
	}
	for _, id := range reused {
		if out := h.taskFile(id, "stdout"); strings.Contains(out, "first-run") {
			t.Errorf("task %s: the second run's stdout holds the first run's output: %q", id, out)
		}
		runs, _ := filepath.Glob(filepath.Join(h.sandbox, "tasks", id+".run-*", "stdout"))
		if len(runs) != 1 {
			t.Errorf("task %s: earlier runs' stdout files %v, want one", id, runs)
			continue
		}
		if b, err := os.ReadFile(runs[0]); err != nil || string(b) != "first-run\n" {
			t.Errorf("task %s: the first run's stdout %s holds %q (%v), want %q", id, runs[0], b, err, "first-run\n")
		}
	}
}

// waitNewState waits for the task's state among its updates after the first
// skip ones (those of an earlier run), failing at another terminal state.
func (h *harness) waitNewState(id string, skip int, want mesos.TaskState) {
	h.t.Helper()
	n := 0
	u, err := h.waitUpdate(func(u localagent.Update) bool {
		if u.Status.TaskID.Value != id {
			return false
		}
		n++
		s := u.Status.GetState()
		return n > skip && (s == want || isTerminal(s))
	})
	if err != nil {
		h.t.Fatalf("task %s: no new %s: %v; its updates: %s", id, want, err, h.history(id))
	}
	if got := u.Status.GetState(); got != want {
		h.t.Fatalf("task %s: got %s (%s %q), want %s; its updates: %s", id, got, u.Status.GetReason(), u.Status.GetMessage(), want, h.history(id))
	}
}

// TestHostilePolicyFilePlantedByTask: a task writes a policy file allowing
// everything into its own root filesystem. On the host that file is owned by
// root, mode 0644, in root-owned directories of Docker's storage, and a task
// can learn its host path from its mountinfo. A framework that then starts an
// executor with EXECUTOR_POLICY_FILE (or --policy-file) pointing there must
// not get that policy: Docker's storage is written by containers.
func TestHostilePolicyFilePlantedByTask(t *testing.T) {
	t.Parallel()
	h := start(t, config{})
	h.launch("planter", args("hostile-policy", "/mdx-policy.json"))
	h.waitState("planter", mesos.TASK_RUNNING)
	h.waitOutput("planter", "wrote /mdx-policy.json\n")
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	si, err := h.docker.InspectStorage(ctx, h.onlyContainer("planter").ID)
	if err != nil {
		t.Fatal(err)
	}
	upper := si.GraphDriverData["UpperDir"]
	if upper == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("storage driver %q shows no UpperDir, and CI=true", si.GraphDriver)
		}
		t.Skipf("storage driver %q shows no UpperDir: this attack needs another path there", si.GraphDriver)
	}
	planted := filepath.Join(upper, "mdx-policy.json")
	if _, err := os.Stat(planted); err != nil {
		t.Fatalf("the planted file is not where Docker says the container's upper layer is: %v", err)
	}

	attacker := start(t, config{env: frameworkWidening(planted)})
	var tis []mesos.TaskInfo
	for i := range hostileCount {
		tis = append(tis, attacker.privilegedTask(fmt.Sprintf("priv-%d", i)))
	}
	attacker.wantRefused("privileged", tis...)
	pol, set := attacker.policyState()
	if !strings.HasPrefix(pol.FileStatus, "refused: ") {
		t.Errorf("/state policy file status %q, want refused: a task wrote that file", pol.FileStatus)
	}
	if s := set["allow-privileged"]; s.Value != "false" {
		t.Errorf("/state allow-privileged = %+v, want false", s)
	}
	h.killAll([]string{"planter"})
}
