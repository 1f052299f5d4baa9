package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/containerd/containerdtest"
)

// TestInvalidTasks launches tasks the executor must refuse before creating a
// container: TASK_FAILED with REASON_TASK_INVALID and a message naming the
// problem, and no container.
func TestInvalidTasks(t *testing.T) {
	t.Parallel()
	// A container created by mistake would stay for the check below.
	h := start(t, config{env: map[string]string{"EXECUTOR_REMOVE_DELAY": "1h"}})

	badPort := h.task("bad-port", nil)
	badPort.Container = &mesos.ContainerInfo{
		Type: mesos.ContainerInfo_DOCKER.Enum(),
		Docker: &mesos.ContainerInfo_DockerInfo{
			Image:   h.image,
			Network: mesos.ContainerInfo_DockerInfo_BRIDGE.Enum(),
			PortMappings: []mesos.ContainerInfo_DockerInfo_PortMapping{
				{HostPort: 31000, ContainerPort: 8080, Protocol: proto.String("tcp")},
			},
		},
	}
	badPort.Resources = append(badPort.Resources, mesos.Resource{
		Name:   "ports",
		Type:   mesos.RANGES.Enum(),
		Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: 32000, End: 32010}}},
	})

	privileged := h.task("privileged", args("sleep", "1h"))
	privileged.Container = &mesos.ContainerInfo{
		Type:   mesos.ContainerInfo_DOCKER.Enum(),
		Docker: &mesos.ContainerInfo_DockerInfo{Image: h.image, Privileged: proto.Bool(true)},
	}

	cases := []struct {
		task mesos.TaskInfo
		want []string // in the message
	}{
		{h.task("unknown-label", map[string]string{"docker.nosuch": "1"}), []string{"docker.nosuch"}},
		{h.task("unknown-kill-label", map[string]string{"kill.nosuch": "1"}), []string{"kill.nosuch"}},
		{h.task("bad-args", map[string]string{"docker.args": `["echo", "unterminated`}), []string{"docker.args"}},
		{h.task("bad-grace", map[string]string{"kill.grace": "soon"}), []string{"kill.grace"}},
		{badPort, []string{"31000", "ports"}},
		{privileged, []string{"privileged"}},
	}
	for _, c := range cases {
		h.la.Launch(c.task)
	}
	// A valid task next to them runs, and proves that the container list
	// below can see this executor's containers.
	h.launch("valid", args("sleep", "1h"))

	for _, c := range cases {
		id := c.task.TaskID.Value
		st := h.waitState(id, mesos.TASK_FAILED)
		if st.GetReason() != mesos.REASON_TASK_INVALID {
			t.Errorf("task %s: reason %s, want REASON_TASK_INVALID", id, st.GetReason())
		}
		for _, w := range c.want {
			if !strings.Contains(st.GetMessage(), w) {
				t.Errorf("task %s: message %q does not name %q", id, st.GetMessage(), w)
			}
		}
		// Refused before it started: no STARTING.
		h.wantStates(id, mesos.TASK_FAILED)
	}
	h.waitState("valid", mesos.TASK_RUNNING)
	for _, c := range cases {
		if cs := h.taskContainers(c.task.TaskID.Value); len(cs) != 0 {
			t.Errorf("task %s was refused but has %d containers", c.task.TaskID.Value, len(cs))
		}
	}
	if cs := h.containers(nil); len(cs) != 1 {
		t.Errorf("%d containers, want only the valid task's", len(cs))
	}
}

// TestMissingImage launches a task whose image is neither present nor
// pullable: TASK_FAILED, REASON_CONTAINER_LAUNCH_FAILED, with Docker's error,
// and the executor's other tasks are not affected.
func TestMissingImage(t *testing.T) {
	t.Parallel()
	h := start(t, config{})

	h.launch("steady", args("sleep", "1h"))
	h.waitState("steady", mesos.TASK_RUNNING)

	const ref = "mdx-none/such:nope"
	h.launch("no-image", map[string]string{"docker.image": ref})
	st := h.waitState("no-image", mesos.TASK_FAILED)
	if st.GetReason() != mesos.REASON_CONTAINER_LAUNCH_FAILED {
		t.Errorf("reason %s, want REASON_CONTAINER_LAUNCH_FAILED", st.GetReason())
	}
	msg := st.GetMessage()
	if !strings.Contains(msg, ref) {
		t.Errorf("message %q does not name the image %s", msg, ref)
	}
	// The same pull from the test: its innermost error is Docker's, and the
	// task's message must carry it.
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	if err := h.docker.EnsureImage(ctx, ref, false); err == nil {
		t.Fatalf("image %s can be pulled here; the test needs it absent", ref)
	} else {
		parts := strings.Split(err.Error(), ": ")
		if docker := parts[len(parts)-1]; !strings.Contains(msg, docker) {
			t.Errorf("message %q lacks Docker's error %q (full pull error: %v)", msg, docker, err)
		}
	}
	h.wantStates("no-image", mesos.TASK_STARTING, mesos.TASK_FAILED)
	if cs := h.taskContainers("no-image"); len(cs) != 0 {
		t.Errorf("task no-image has %d containers, want none", len(cs))
	}

	// The failure left the rest alone, and the executor still launches.
	h.launch("after", args("sleep", "1h"))
	h.waitState("after", mesos.TASK_RUNNING)
	if s, _ := h.la.TaskState("steady"); s != mesos.TASK_RUNNING {
		t.Errorf("task steady is %s, want TASK_RUNNING; its updates: %s", s, h.history("steady"))
	}
	h.wantStates("steady", mesos.TASK_STARTING, mesos.TASK_RUNNING)
}

// TestOOM runs a task past its memory limit.
func TestOOM(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip(shortSkip)
	}
	containerdtest.RequireMemoryLimit(t, containerdtest.Docker(t))
	h := start(t, config{})

	h.launch("hog", args("oom")) // 32 MB
	st := h.waitState("hog", mesos.TASK_FAILED)
	if st.GetReason() != mesos.REASON_CONTAINER_LIMITATION_MEMORY {
		t.Errorf("reason %s (%q), want REASON_CONTAINER_LIMITATION_MEMORY", st.GetReason(), st.GetMessage())
	}
	if msg := st.GetMessage(); !strings.Contains(msg, "32 MiB") {
		t.Errorf("message %q, want the 32 MiB limit named", msg)
	}
}
