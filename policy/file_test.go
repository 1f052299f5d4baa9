package policy

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// writePolicy writes a policy file in a fresh root-owned directory.
func writePolicy(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "executor.json")
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("policy file tests need root (file ownership), and CI runs as root")
		}
		t.Skip("policy file tests need root: file ownership decides trust")
	}
}

func TestLoadGoodFile(t *testing.T) {
	requireRoot(t)
	path := writePolicy(t, `{"allow-privileged": true, "allowed-networks": ["backend", "frontend"],
		"docker-config": "/etc/mdx/docker.json", "hooks-dir": "/etc/mdx/hooks"}`, 0o644)
	p := Load(path, nil)
	if p.FileStatus != "loaded" {
		t.Fatalf("FileStatus = %q, want loaded", p.FileStatus)
	}
	if !p.AllowPrivileged || p.AllowHostMounts || !p.NetworkAllowed("backend") || p.NetworkAllowed("other") {
		t.Errorf("policy = %+v", p)
	}
	if p.DockerConfig != "/etc/mdx/docker.json" || p.HooksDir != "/etc/mdx/hooks" || p.CNIConfDir != DefaultCNIConfDir {
		t.Errorf("paths = %q %q %q", p.DockerConfig, p.HooksDir, p.CNIConfDir)
	}
	if p.Sources[KeyAllowPrivileged] != FromFile || p.Sources[KeyAllowHostMounts] != FromDefault {
		t.Errorf("sources = %v", p.Sources)
	}
}

func TestLoadAbsentGivesDefaults(t *testing.T) {
	p := Load(filepath.Join(t.TempDir(), "nope.json"), nil)
	if p.FileStatus != "absent" || p.AllowPrivileged || p.AllowHostMounts || len(p.AllowedNetworks) != 0 {
		t.Fatalf("policy = %+v", p)
	}
}

// Every file that someone other than root could have written, or that is not
// a policy, is refused whole: the executor runs with the safe defaults.
func TestLoadRefusesUntrustedFiles(t *testing.T) {
	requireRoot(t)
	allowAll := `{"allow-privileged": true, "allow-host-mounts": true}`
	cases := []struct {
		name  string
		setup func(t *testing.T) (path string, sandboxes []string)
		want  string
	}{
		{"group-writable", func(t *testing.T) (string, []string) { return writePolicy(t, allowAll, 0o664), nil }, "writable by group or others"},
		{"world-writable", func(t *testing.T) (string, []string) { return writePolicy(t, allowAll, 0o646), nil }, "writable by group or others"},
		{"not root's", func(t *testing.T) (string, []string) {
			p := writePolicy(t, allowAll, 0o644)
			if err := os.Chown(p, 1000, 1000); err != nil {
				t.Fatal(err)
			}
			return p, nil
		}, "owned by uid 1000"},
		{"directory not root's", func(t *testing.T) (string, []string) {
			p := writePolicy(t, allowAll, 0o644)
			if err := os.Chown(filepath.Dir(p), 1000, 1000); err != nil {
				t.Fatal(err)
			}
			return p, nil
		}, "owned by uid 1000, not root"},
		{"inside a sandbox", func(t *testing.T) (string, []string) {
			p := writePolicy(t, allowAll, 0o644)
			return p, []string{filepath.Dir(p)}
		}, "inside the Mesos sandbox"},
		{"symlink into a sandbox", func(t *testing.T) (string, []string) {
			p := writePolicy(t, allowAll, 0o644)
			link := filepath.Join(t.TempDir(), "link.json")
			if err := os.Symlink(p, link); err != nil {
				t.Fatal(err)
			}
			return link, []string{filepath.Dir(p)}
		}, "inside the Mesos sandbox"},
		{"inside container storage", func(t *testing.T) (string, []string) {
			// A container's upper layer, as TestHostilePolicyFilePlantedByTask
			// plants it for real.
			p := writePolicy(t, allowAll, 0o644)
			old := ContainerStorage
			ContainerStorage = []string{filepath.Dir(filepath.Dir(p))}
			t.Cleanup(func() { ContainerStorage = old })
			return p, nil
		}, "where containers write"},
		{"fifo", func(t *testing.T) (string, []string) {
			p := filepath.Join(t.TempDir(), "fifo.json")
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
			return p, nil
		}, "not a regular file"},
		{"unknown key", func(t *testing.T) (string, []string) {
			return writePolicy(t, `{"allow-privileged": true, "allow-everything": true}`, 0o644), nil
		}, "unknown field"},
		{"not JSON", func(t *testing.T) (string, []string) { return writePolicy(t, "allow-privileged=true", 0o644), nil }, "invalid character"},
		{"two values", func(t *testing.T) (string, []string) {
			return writePolicy(t, `{} {"allow-privileged": true}`, 0o644), nil
		}, "more than one JSON value"},
		{"relative path setting", func(t *testing.T) (string, []string) {
			return writePolicy(t, `{"allow-privileged": true, "hooks-dir": "hooks"}`, 0o644), nil
		}, "not an absolute path"},
		{"container network", func(t *testing.T) (string, []string) {
			return writePolicy(t, `{"allowed-networks": ["container:abc"]}`, 0o644), nil
		}, "not a network name"},
		{"too large", func(t *testing.T) (string, []string) {
			return writePolicy(t, `{"allowed-networks": ["`+strings.Repeat("a", maxFileBytes)+`"]}`, 0o644), nil
		}, "larger than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path, sbs := c.setup(t)
			p := Load(path, sbs)
			if !strings.HasPrefix(p.FileStatus, "refused: ") || !strings.Contains(p.FileStatus, c.want) {
				t.Fatalf("FileStatus = %q, want refused with %q", p.FileStatus, c.want)
			}
			if p.AllowPrivileged || p.AllowHostMounts || p.HooksDir != "" {
				t.Fatalf("a refused file still set the policy: %+v", p)
			}
		})
	}
}

func TestNarrowNeverWidens(t *testing.T) {
	yes, no := true, false
	p := Default()
	p.AllowHostMounts = true
	p.AllowedNetworks = []string{"a", "b"}
	ignored := p.Narrow(Narrowing{AllowPrivileged: &yes, AllowHostMounts: &no, AllowedNetworks: []string{"b", "c"}})
	if p.AllowPrivileged {
		t.Error("a flag turned on privileged mode that the file does not allow")
	}
	if p.AllowHostMounts || p.Sources[KeyAllowHostMounts] != FromFlag {
		t.Error("a flag could not turn host mounts off")
	}
	if p.NetworkAllowed("c") || !p.NetworkAllowed("b") || p.NetworkAllowed("a") {
		t.Errorf("networks = %v, want [b]", p.AllowedNetworks)
	}
	if len(ignored) != 2 {
		t.Errorf("ignored = %v, want the privileged flag and network c", ignored)
	}
	any := Default()
	any.AllowedNetworks = []string{AnyNetwork}
	any.Narrow(Narrowing{AllowedNetworks: []string{"x"}})
	if !any.NetworkAllowed("x") || any.NetworkAllowed("y") {
		t.Errorf("a flag list under * = %v, want [x]", any.AllowedNetworks)
	}
}
