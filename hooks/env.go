package hooks

import (
	"slices"
	"strconv"
	"strings"
)

// hookPath is the PATH hooks get: the host's standard directories, never the
// executor's own PATH (which a framework chose in ExecutorInfo).
const hookPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Env is what a hook learns about the container. See the contract's
// "Networks and pre-start hooks".
type Env struct {
	TaskID       string
	ContainerID  string
	ContainerPID int    // host pid of the container's first process
	NetNS        string // e.g. /proc/<pid>/ns/net
	RootFS       string // e.g. /proc/<pid>/root
	Image        string
	Labels       map[string]string // the task's labels
	CNIResult    []byte            // JSON of the CNI results; nil when there are none
}

// Environ returns the hook environment: MDX_TASK_ID, MDX_CONTAINER_ID,
// MDX_CONTAINER_PID, MDX_NETNS, MDX_ROOTFS, MDX_IMAGE, one MDX_LABEL_<KEY>
// per label, MDX_CNI_RESULT when set, and PATH, sorted.
//
// Label keys come from the framework: the key is upper-cased and every byte
// that is not a letter, digit or underscore becomes "_" (the contract names
// "." and "-"; the rest keeps a key from forging another variable). When two
// keys map to one name the first key in byte order wins, so the result does
// not depend on map order. A label whose value holds a NUL byte (which no
// environment can carry) is left out.
func (e Env) Environ() []string {
	env := []string{
		"MDX_TASK_ID=" + e.TaskID,
		"MDX_CONTAINER_ID=" + e.ContainerID,
		"MDX_CONTAINER_PID=" + strconv.Itoa(e.ContainerPID),
		"MDX_NETNS=" + e.NetNS,
		"MDX_ROOTFS=" + e.RootFS,
		"MDX_IMAGE=" + e.Image,
		"PATH=" + hookPath,
	}
	if e.CNIResult != nil {
		env = append(env, "MDX_CNI_RESULT="+string(e.CNIResult))
	}
	seen := map[string]bool{}
	keys := make([]string, 0, len(e.Labels))
	for k := range e.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := e.Labels[k]
		name := LabelVar(k)
		if seen[name] || strings.IndexByte(v, 0) >= 0 {
			continue
		}
		seen[name] = true
		env = append(env, name+"="+v)
	}
	slices.Sort(env)
	return env
}

// LabelVar returns the environment variable name of label key.
func LabelVar(key string) string {
	b := []byte(strings.ToUpper(key))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			b[i] = '_'
		}
	}
	return "MDX_LABEL_" + string(b)
}
