package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Setting names: the file's keys, which are also the flag names.
const (
	KeyAllowPrivileged          = "allow-privileged"
	KeyAllowHostMounts          = "allow-host-mounts"
	KeyAllowHostNamespaces      = "allow-host-namespaces"
	KeyAllowHostNetwork         = "allow-host-network"
	KeyAllowContainerNamespaces = "allow-container-namespaces"
	KeyAllowedNetworks          = "allowed-networks"
	KeyDockerConfig             = "docker-config"
	KeyCNIConfDir               = "cni-conf-dir"
	KeyCNIBinDir                = "cni-bin-dir"
	KeyHooksDir                 = "hooks-dir"
)

// DefaultFile is where the operator's policy lives unless --policy-file says
// otherwise.
const DefaultFile = "/etc/mdx/executor.json"

// Defaults of the path settings, as the CNI reference plugins and Debian's
// containernetworking-plugins package install them.
const (
	DefaultCNIConfDir = "/etc/cni/net.d"
	DefaultCNIBinDir  = "/usr/lib/cni"
)

// AnyNetwork in allowed-networks allows every user-defined network.
const AnyNetwork = "*"

// Source says where a setting's value came from.
type Source string

// Sources of a setting.
const (
	FromDefault Source = "default"
	FromFile    Source = "file"
	FromFlag    Source = "flag" // a flag or EXECUTOR_* variable narrowed it
)

// Policy is the operator's policy in force. The zero value is the safe
// default: nothing beyond the task's own container is allowed.
type Policy struct {
	AllowPrivileged     bool
	AllowHostMounts     bool
	AllowHostNamespaces bool // pid, ipc, uts, userns, cgroupns = host; network host too
	// AllowHostNetwork allows network=host alone: common on Mesos hosts,
	// but a task then shares the host's ports and (with Docker's default
	// NET_RAW) can see its traffic.
	AllowHostNetwork         bool
	AllowContainerNamespaces bool // container:<id> network, pid and ipc modes
	// AllowedNetworks lists the user-defined Docker networks a task may
	// join; AnyNetwork allows all. bridge, none are always allowed; host
	// needs AllowHostNamespaces.
	AllowedNetworks []string
	DockerConfig    string // path of a Docker config.json with registry credentials; "" none
	CNIConfDir      string
	CNIBinDir       string
	HooksDir        string // holds prestart.d/ and poststop.d/; "" runs no hooks

	// File is the policy file's path, and FileStatus what became of it:
	// "loaded", "absent" or "refused: <why>".
	File       string
	FileStatus string
	// Sources maps each setting name to where its value came from.
	Sources map[string]Source
}

// Default returns the safe defaults.
func Default() Policy {
	p := Policy{CNIConfDir: DefaultCNIConfDir, CNIBinDir: DefaultCNIBinDir, Sources: map[string]Source{}}
	for _, k := range keys {
		p.Sources[k] = FromDefault
	}
	return p
}

var keys = []string{
	KeyAllowPrivileged, KeyAllowHostMounts, KeyAllowHostNamespaces, KeyAllowHostNetwork, KeyAllowContainerNamespaces,
	KeyAllowedNetworks, KeyDockerConfig, KeyCNIConfDir, KeyCNIBinDir, KeyHooksDir,
}

// NetworkAllowed reports whether a task may join the user-defined Docker
// network name.
func (p Policy) NetworkAllowed(name string) bool {
	return slices.Contains(p.AllowedNetworks, AnyNetwork) || slices.Contains(p.AllowedNetworks, name)
}

// Narrowing is what flags and EXECUTOR_* variables said, each nil when not
// set. A flag can take away what the file allows, never add to it.
type Narrowing struct {
	AllowPrivileged          *bool
	AllowHostMounts          *bool
	AllowHostNamespaces      *bool
	AllowHostNetwork         *bool
	AllowContainerNamespaces *bool
	AllowedNetworks          []string // nil: not set
}

// Narrow applies flags to p and returns what was ignored because it would
// have widened the policy, for the log.
func (p *Policy) Narrow(n Narrowing) (ignored []string) {
	narrowBool := func(key string, have *bool, flag *bool) {
		if flag == nil {
			return
		}
		switch {
		case *flag == *have:
		case !*flag:
			*have = false
			p.Sources[key] = FromFlag
		default:
			ignored = append(ignored, key+"=true (the policy file does not allow it)")
		}
	}
	narrowBool(KeyAllowPrivileged, &p.AllowPrivileged, n.AllowPrivileged)
	narrowBool(KeyAllowHostMounts, &p.AllowHostMounts, n.AllowHostMounts)
	narrowBool(KeyAllowHostNamespaces, &p.AllowHostNamespaces, n.AllowHostNamespaces)
	narrowBool(KeyAllowHostNetwork, &p.AllowHostNetwork, n.AllowHostNetwork)
	narrowBool(KeyAllowContainerNamespaces, &p.AllowContainerNamespaces, n.AllowContainerNamespaces)
	if n.AllowedNetworks != nil {
		var kept []string
		for _, name := range n.AllowedNetworks {
			switch {
			case name == AnyNetwork && slices.Contains(p.AllowedNetworks, AnyNetwork):
				kept = append(kept, name)
			case name == AnyNetwork:
				// "*" from a flag keeps exactly what the file allows.
				kept = append(kept, p.AllowedNetworks...)
			case p.NetworkAllowed(name):
				kept = append(kept, name)
			default:
				ignored = append(ignored, KeyAllowedNetworks+" "+name+" (the policy file does not allow it)")
			}
		}
		slices.Sort(kept)
		p.AllowedNetworks = slices.Compact(kept)
		p.Sources[KeyAllowedNetworks] = FromFlag
	}
	return ignored
}

// Setting is one row of the policy for /state and `executor status`.
type Setting struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Source Source `json:"source"`
}

// Settings lists every setting with its value and source, in a stable order.
func (p Policy) Settings() []Setting {
	val := map[string]string{
		KeyAllowPrivileged:          fmt.Sprint(p.AllowPrivileged),
		KeyAllowHostMounts:          fmt.Sprint(p.AllowHostMounts),
		KeyAllowHostNamespaces:      fmt.Sprint(p.AllowHostNamespaces),
		KeyAllowHostNetwork:         fmt.Sprint(p.AllowHostNetwork),
		KeyAllowContainerNamespaces: fmt.Sprint(p.AllowContainerNamespaces),
		KeyAllowedNetworks:          strings.Join(p.AllowedNetworks, ","),
		KeyDockerConfig:             p.DockerConfig,
		KeyCNIConfDir:               p.CNIConfDir,
		KeyCNIBinDir:                p.CNIBinDir,
		KeyHooksDir:                 p.HooksDir,
	}
	out := make([]Setting, 0, len(keys))
	for _, k := range keys {
		src := p.Sources[k]
		if src == "" {
			src = FromDefault
		}
		out = append(out, Setting{Name: k, Value: val[k], Source: src})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
