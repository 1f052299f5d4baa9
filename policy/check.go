package policy

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/mdx-executor/mdx/containerd"
)

// ErrRefused marks a container spec that asks for more than the policy
// allows; the task manager reports it as TASK_FAILED / REASON_TASK_INVALID.
var ErrRefused = errors.New("refused by the operator's policy")

func refuse(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrRefused)
}

// Check is the one gate between a task's wishes and the Docker daemon: every
// field through which a container could reach beyond its own namespaces and
// its sandbox. sandbox is the task's sandbox directory on the host; host
// mounts must stay inside it unless the operator allows them. Check does no
// I/O: path components inside the sandbox are checked for symlinks where the
// directories are created (package sandbox).
func (p Policy) Check(s containerd.Spec, sandbox string) error {
	if s.Privileged && !p.AllowPrivileged {
		return refuse("privileged: privileged containers need %s in the policy file", KeyAllowPrivileged)
	}
	modes := []struct{ field, v string }{
		{"pid", s.PidMode}, {"ipc", s.IpcMode}, {"uts", s.UTSMode},
		{"userns", s.UsernsMode}, {"cgroupns", s.CgroupnsMode}, {"network", s.Network},
	}
	for _, m := range modes {
		switch {
		case m.v == "host" && m.field == "network":
			if !p.AllowHostNamespaces && !p.AllowHostNetwork {
				return refuse("network=host: the host's network needs %s (or %s) in the policy file", KeyAllowHostNetwork, KeyAllowHostNamespaces)
			}
		case m.v == "host":
			if !p.AllowHostNamespaces {
				return refuse("%s=host: the host's namespaces need %s in the policy file", m.field, KeyAllowHostNamespaces)
			}
		case strings.HasPrefix(m.v, "container:"):
			if m.field == "uts" || m.field == "userns" || m.field == "cgroupns" {
				return refuse("%s=%s: no container: mode exists for %s", m.field, m.v, m.field)
			}
			if !p.AllowContainerNamespaces {
				return refuse("%s=%s: joining another container's namespace needs %s in the policy file", m.field, m.v, KeyAllowContainerNamespaces)
			}
		case m.field == "network":
			if err := p.checkNetwork(m.v); err != nil {
				return err
			}
		case m.v == "", m.field == "ipc" && (m.v == "private" || m.v == "shareable" || m.v == "none"),
			m.field == "cgroupns" && m.v == "private":
		default:
			return refuse("%s=%q is not a mode this executor supports", m.field, m.v)
		}
	}
	for _, mt := range s.Mounts {
		if err := p.checkMount(mt, sandbox); err != nil {
			return err
		}
	}
	return nil
}

func (p Policy) checkNetwork(n string) error {
	switch n {
	case "", "bridge", "default", "none":
		return nil
	}
	if strings.ContainsAny(n, "\x00/") {
		return refuse("network %q is not a network name", n)
	}
	if !p.NetworkAllowed(n) {
		return refuse("network %s: user-defined networks need to be listed in %s in the policy file", n, KeyAllowedNetworks)
	}
	return nil
}

func (p Policy) checkMount(m containerd.Mount, sandbox string) error {
	if !filepath.IsAbs(m.HostPath) || filepath.Clean(m.HostPath) != m.HostPath || strings.ContainsRune(m.HostPath, 0) {
		return refuse("volume host_path %q: not a clean absolute path", m.HostPath)
	}
	if !filepath.IsAbs(m.ContainerPath) || strings.ContainsRune(m.ContainerPath, 0) {
		return refuse("volume container_path %q: not an absolute path", m.ContainerPath)
	}
	cp := filepath.Clean(m.ContainerPath)
	if cp == "/" {
		return refuse("volume container_path %q would hide the container's root filesystem", m.ContainerPath)
	}
	if Inside(m.HostPath, sandbox) {
		return nil
	}
	if !p.AllowHostMounts {
		return refuse("volume host_path %s is outside the task sandbox: host mounts need %s in the policy file", m.HostPath, KeyAllowHostMounts)
	}
	return nil
}

// Inside reports whether path is dir or below it, lexically.
func Inside(path, dir string) bool {
	if dir == "" {
		return false
	}
	dir = filepath.Clean(dir)
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}
