package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxFileBytes bounds the policy file: it is a handful of keys.
const maxFileBytes = 64 << 10

// fileDoc is the file's JSON. Unknown keys refuse the whole file, so that a
// root-owned JSON file of some other kind can never be taken for a policy.
type fileDoc struct {
	AllowPrivileged          *bool     `json:"allow-privileged"`
	AllowHostMounts          *bool     `json:"allow-host-mounts"`
	AllowHostNamespaces      *bool     `json:"allow-host-namespaces"`
	AllowHostNetwork         *bool     `json:"allow-host-network"`
	AllowContainerNamespaces *bool     `json:"allow-container-namespaces"`
	AllowedNetworks          *[]string `json:"allowed-networks"`
	DockerConfig             *string   `json:"docker-config"`
	CNIConfDir               *string   `json:"cni-conf-dir"`
	CNIBinDir                *string   `json:"cni-bin-dir"`
	HooksDir                 *string   `json:"hooks-dir"`
}

// Load reads the operator's policy file at path. sandboxes are the Mesos
// sandbox directories the file must not be inside (the executor's own, and
// the agent's work directory when known). A missing file gives the defaults
// with FileStatus "absent"; a file that is not trustworthy or not valid gives
// the defaults with FileStatus "refused: <why>". Load never fails: the
// executor always starts, with the safe defaults at worst.
func Load(path string, sandboxes []string) Policy {
	p := Default()
	p.File = path
	doc, err := readFile(path, sandboxes)
	switch {
	case errors.Is(err, os.ErrNotExist):
		p.FileStatus = "absent"
		return p
	case err != nil:
		p.FileStatus = "refused: " + err.Error()
		return p
	}
	if err := p.apply(doc); err != nil {
		p = Default()
		p.File = path
		p.FileStatus = "refused: " + err.Error()
		return p
	}
	p.FileStatus = "loaded"
	return p
}

func (p *Policy) apply(d fileDoc) error {
	setBool := func(key string, dst *bool, v *bool) {
		if v != nil {
			*dst = *v
			p.Sources[key] = FromFile
		}
	}
	setBool(KeyAllowPrivileged, &p.AllowPrivileged, d.AllowPrivileged)
	setBool(KeyAllowHostMounts, &p.AllowHostMounts, d.AllowHostMounts)
	setBool(KeyAllowHostNamespaces, &p.AllowHostNamespaces, d.AllowHostNamespaces)
	setBool(KeyAllowHostNetwork, &p.AllowHostNetwork, d.AllowHostNetwork)
	setBool(KeyAllowContainerNamespaces, &p.AllowContainerNamespaces, d.AllowContainerNamespaces)
	if d.AllowedNetworks != nil {
		for _, n := range *d.AllowedNetworks {
			if n == "" || strings.ContainsAny(n, "\x00/") || strings.HasPrefix(n, "container:") {
				return fmt.Errorf("%s: %q is not a network name", KeyAllowedNetworks, n)
			}
		}
		p.AllowedNetworks = append([]string(nil), *d.AllowedNetworks...)
		p.Sources[KeyAllowedNetworks] = FromFile
	}
	setPath := func(key string, dst *string, v *string) error {
		if v == nil {
			return nil
		}
		if *v != "" && (!filepath.IsAbs(*v) || strings.ContainsRune(*v, 0)) {
			return fmt.Errorf("%s: %q is not an absolute path", key, *v)
		}
		*dst = filepath.Clean(*v)
		if *v == "" {
			*dst = ""
		}
		p.Sources[key] = FromFile
		return nil
	}
	return errors.Join(
		setPath(KeyDockerConfig, &p.DockerConfig, d.DockerConfig),
		setPath(KeyCNIConfDir, &p.CNIConfDir, d.CNIConfDir),
		setPath(KeyCNIBinDir, &p.CNIBinDir, d.CNIBinDir),
		setPath(KeyHooksDir, &p.HooksDir, d.HooksDir),
	)
}

// ContainerStorage lists where container engines keep what containers write:
// root filesystem layers, volumes, runtime state. A container runs as root,
// so a file it writes there is owned by root, in root-owned directories, and
// passes every ownership rule; and a task can read its host path from its own
// /proc/self/mountinfo. Since a framework chooses --policy-file (it writes
// the executor's command line and environment), a policy file under any of
// these is refused. A daemon with a non-default data root is not covered.
var ContainerStorage = []string{
	"/var/lib/docker", "/var/lib/containerd", "/var/lib/containers",
	"/run/docker", "/run/containerd", "/run/containers", "/var/run/docker",
}

// readFile opens the policy file only if root alone could have written it
// and decodes it strictly.
func readFile(path string, sandboxes []string) (fileDoc, error) {
	var d fileDoc
	if !filepath.IsAbs(path) {
		return d, fmt.Errorf("policy file %q: not an absolute path", path)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return d, err
	}
	for _, sb := range sandboxes {
		if sb == "" {
			continue
		}
		if rs, err := filepath.EvalSymlinks(sb); err == nil {
			sb = rs
		}
		if real == sb || strings.HasPrefix(real, strings.TrimSuffix(sb, "/")+"/") {
			return d, fmt.Errorf("policy file %s is inside the Mesos sandbox or container storage %s, which a framework or its tasks can write", real, sb)
		}
	}
	for _, dir := range ContainerStorage {
		if rd, err := filepath.EvalSymlinks(dir); err == nil {
			dir = rd
		}
		if Inside(real, dir) {
			return d, fmt.Errorf("policy file %s is inside %s, where containers write (as root) and tasks can plant files", real, dir)
		}
	}
	if err := TrustedPath(real); err != nil {
		return d, err
	}
	f, err := OpenTrusted(real)
	if err != nil {
		return d, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return d, fmt.Errorf("read policy file: %w", err)
	}
	if len(data) > maxFileBytes {
		return d, fmt.Errorf("policy file %s is larger than %d bytes", real, maxFileBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return d, fmt.Errorf("policy file %s: %w", real, err)
	}
	if dec.More() {
		return d, fmt.Errorf("policy file %s: more than one JSON value", real)
	}
	return d, nil
}

// TrustedPath checks that every directory above path is owned by root and
// not writable by group or others (a sticky directory such as /tmp is
// accepted: others cannot replace root's entries in it), so that nobody but
// root can swap the file.
func TrustedPath(path string) error {
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		var st unix.Stat_t
		if err := unix.Lstat(dir, &st); err != nil {
			return fmt.Errorf("check %s: %w", dir, err)
		}
		if st.Uid != 0 {
			return fmt.Errorf("directory %s is owned by uid %d, not root", dir, st.Uid)
		}
		if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
			return fmt.Errorf("directory %s is writable by group or others", dir)
		}
		if dir == "/" || dir == "." {
			return nil
		}
	}
}

// OpenTrusted opens path for reading without following a final symlink and
// without blocking on a FIFO, and checks that it is a regular file owned by
// root and not writable by group or others.
func OpenTrusted(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", path)
	case st.Uid != 0:
		f.Close()
		return nil, fmt.Errorf("%s is owned by uid %d, not root", path, st.Uid)
	case st.Mode&0o022 != 0:
		f.Close()
		return nil, fmt.Errorf("%s is writable by group or others", path)
	}
	return f, nil
}
