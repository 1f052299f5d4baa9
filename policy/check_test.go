package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/mdx-executor/mdx/containerd"
)

const sb = "/var/lib/mesos/slaves/a/frameworks/f/executors/e/runs/r/tasks/t1/sandbox"

func TestHostNetworkAlone(t *testing.T) {
	p := Default()
	p.AllowHostNetwork = true
	if err := p.Check(containerd.Spec{Network: "host"}, sb); err != nil {
		t.Errorf("network=host with allow-host-network: %v", err)
	}
	if err := p.Check(containerd.Spec{PidMode: "host"}, sb); err == nil {
		t.Error("allow-host-network let pid=host through")
	}
}

func TestCheck(t *testing.T) {
	open := Default()
	open.AllowPrivileged, open.AllowHostMounts, open.AllowHostNamespaces, open.AllowContainerNamespaces = true, true, true, true
	open.AllowedNetworks = []string{AnyNetwork}
	cases := []struct {
		name string
		spec containerd.Spec
		want string // "" = allowed by the default policy
	}{
		{"plain", containerd.Spec{Image: "x", Mounts: []containerd.Mount{{HostPath: sb, ContainerPath: containerd.SandboxMountPoint}}}, ""},
		{"none network", containerd.Spec{Network: "none"}, ""},
		{"privileged", containerd.Spec{Privileged: true}, "privileged"},
		{"pid host", containerd.Spec{PidMode: "host"}, "pid=host"},
		{"ipc host", containerd.Spec{IpcMode: "host"}, "ipc=host"},
		{"uts host", containerd.Spec{UTSMode: "host"}, "uts=host"},
		{"userns host", containerd.Spec{UsernsMode: "host"}, "userns=host"},
		{"cgroupns host", containerd.Spec{CgroupnsMode: "host"}, "cgroupns=host"},
		{"network host", containerd.Spec{Network: "host"}, "network=host"},
		{"network container", containerd.Spec{Network: "container:victim"}, "network=container:victim"},
		{"pid container", containerd.Spec{PidMode: "container:victim"}, "pid=container:victim"},
		{"ipc container", containerd.Spec{IpcMode: "container:victim"}, "ipc=container:victim"},
		{"user network", containerd.Spec{Network: "backend"}, "network backend"},
		{"odd pid mode", containerd.Spec{PidMode: "private"}, `pid="private"`},
		{"mount outside", containerd.Spec{Mounts: []containerd.Mount{{HostPath: "/etc", ContainerPath: "/x"}}}, "host_path /etc"},
		{"mount sibling prefix", containerd.Spec{Mounts: []containerd.Mount{{HostPath: sb + "2", ContainerPath: "/x"}}}, "outside the task sandbox"},
		{"mount dotdot", containerd.Spec{Mounts: []containerd.Mount{{HostPath: sb + "/../../t2", ContainerPath: "/x"}}}, "not a clean absolute path"},
		{"mount relative", containerd.Spec{Mounts: []containerd.Mount{{HostPath: "data", ContainerPath: "/x"}}}, "not a clean absolute path"},
		{"mount over root", containerd.Spec{Mounts: []containerd.Mount{{HostPath: sb + "/d", ContainerPath: "/"}}}, "root filesystem"},
		{"mount inside", containerd.Spec{Mounts: []containerd.Mount{{HostPath: sb + "/data", ContainerPath: "/data"}}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Default().Check(c.spec, sb)
			if c.want == "" {
				if err != nil {
					t.Fatalf("Check = %v, want allowed", err)
				}
				return
			}
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Check = %v, want refused naming %q", err, c.want)
			}
			// What the operator allows passes, except what no policy can allow.
			if err := open.Check(c.spec, sb); err != nil && !strings.Contains(c.want, "clean") && !strings.Contains(c.want, "root") && !strings.Contains(c.want, `"private"`) {
				t.Errorf("with everything allowed: %v", err)
			}
		})
	}
}

// FuzzCheck: whatever the spec, a spec the default policy lets through asks
// for nothing beyond its own container.
func FuzzCheck(f *testing.F) {
	f.Add(false, "", "", "", "bridge", sb, "/data")
	f.Add(true, "host", "container:x", "host", "host", "/etc", "/")
	f.Add(false, "container:y", "", "", "container:z", sb+"/../x", "/mnt")
	f.Fuzz(func(t *testing.T, priv bool, pid, ipc, uts, network, hostPath, containerPath string) {
		s := containerd.Spec{Privileged: priv, PidMode: pid, IpcMode: ipc, UTSMode: uts, Network: network,
			Mounts: []containerd.Mount{{HostPath: hostPath, ContainerPath: containerPath}}}
		if err := Default().Check(s, sb); err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("error %v does not wrap ErrRefused", err)
			}
			return
		}
		if priv {
			t.Fatal("privileged spec allowed")
		}
		for _, m := range []string{pid, ipc, uts, network} {
			if m == "host" || strings.HasPrefix(m, "container:") {
				t.Fatalf("namespace mode %q allowed", m)
			}
		}
		if network != "" && network != "bridge" && network != "none" && network != "default" {
			t.Fatalf("network %q allowed with no allowed-networks", network)
		}
		if !Inside(hostPath, sb) {
			t.Fatalf("host path %q outside the sandbox allowed", hostPath)
		}
	})
}
