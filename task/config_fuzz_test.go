package task

import (
	"errors"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/policy"
)

// fuzzSandbox is the task sandbox the fuzzed tasks are parsed against.
const fuzzSandbox = "/var/lib/mesos/slaves/a/frameworks/f/executors/e/runs/r/tasks/t/sandbox"

// fuzzPolicy builds the operator policy from the low bits of b, so that the
// fuzzer explores what each setting lets through.
func fuzzPolicy(b uint8) Policy {
	p := Policy{DefaultKillGrace: 3 * time.Second, Operator: policy.Default()}
	p.Operator.AllowPrivileged = b&1 != 0
	p.Operator.AllowHostMounts = b&2 != 0
	p.Operator.AllowHostNamespaces = b&4 != 0
	p.Operator.AllowContainerNamespaces = b&8 != 0
	switch {
	case b&16 != 0:
		p.Operator.AllowedNetworks = []string{policy.AnyNetwork}
	case b&32 != 0:
		p.Operator.AllowedNetworks = []string{"tenant-net"}
	}
	return p
}

// FuzzParseTask feeds parseTask a protobuf-encoded TaskInfo from a framework
// plus one extra label, under a policy chosen by the fuzzer. parseTask must
// not panic; every refusal must wrap ErrInvalidTask (the manager turns only
// those into REASON_TASK_INVALID); and an accepted task's spec must pass the
// policy's Check and keep every promise the policy makes, whatever the
// labels, parameters and native fields said. Seeds: testdata/fuzz/FuzzParseTask.
func FuzzParseTask(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, key, value string, bits uint8) {
		var info mesos.TaskInfo
		if err := info.Unmarshal(data); err != nil {
			return
		}
		if key != "" {
			if info.Labels == nil {
				info.Labels = &mesos.Labels{}
			}
			v := value
			info.Labels.Labels = append(info.Labels.Labels, mesos.Label{Key: key, Value: &v})
		}
		p := fuzzPolicy(bits)
		lc, err := parseTask(&info, p, fuzzSandbox)
		if err != nil {
			if !errors.Is(err, ErrInvalidTask) {
				t.Fatalf("parseTask error %v does not wrap ErrInvalidTask", err)
			}
			return
		}
		s := lc.spec
		if err := p.Operator.Check(s, fuzzSandbox); err != nil {
			t.Fatalf("accepted spec fails the policy it was parsed with: %v\nspec %+v", err, s)
		}
		wantWithin(t, p.Operator, s)
		if s.Image == "" {
			t.Fatalf("accepted a task without an image: %+v", s)
		}
		if lc.killGrace < 0 {
			t.Fatalf("accepted a negative kill grace %v", lc.killGrace)
		}
	})
}

// wantWithin checks the policy's promises on a spec directly, not through
// Check, so that a hole in Check is caught too.
func wantWithin(t *testing.T, p policy.Policy, s containerd.Spec) {
	t.Helper()
	if s.Privileged && !p.AllowPrivileged {
		t.Fatalf("accepted a privileged container the policy does not allow: %+v", s)
	}
	for _, m := range []string{s.PidMode, s.IpcMode, s.UTSMode, s.UsernsMode, s.CgroupnsMode, s.Network} {
		if m == "host" && !p.AllowHostNamespaces {
			t.Fatalf("accepted a host namespace the policy does not allow: %+v", s)
		}
		if strings.HasPrefix(m, "container:") && !p.AllowContainerNamespaces {
			t.Fatalf("accepted a container: mode the policy does not allow: %+v", s)
		}
	}
	switch s.Network {
	case "", "bridge", "default", "none", "host":
	default:
		if !strings.HasPrefix(s.Network, "container:") && !p.NetworkAllowed(s.Network) {
			t.Fatalf("accepted user network %q the policy does not list", s.Network)
		}
	}
	for _, m := range s.Mounts {
		if !p.AllowHostMounts && !policy.Inside(m.HostPath, fuzzSandbox) {
			t.Fatalf("accepted a host mount %q outside the sandbox the policy does not allow", m.HostPath)
		}
		if c := strings.TrimRight(m.ContainerPath, "/"); c == "" || policy.Inside(c, containerd.SandboxMountPoint) {
			t.Fatalf("accepted a mount over %q", m.ContainerPath)
		}
	}
}
