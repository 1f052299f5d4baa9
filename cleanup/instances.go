package cleanup

import (
	"sort"

	"github.com/mdx-executor/mdx/containerd"
)

// LiveInstance is another running instance of this same executor (same
// framework and executor ids, another instance label) found sharing the
// Docker daemon: two agents on one daemon, or an instance started by hand.
// Its containers are reported, never touched.
type LiveInstance struct {
	Instance   string
	PID        string // the executor pid from its containers' labels
	Containers int    // how many of its containers were seen
	// Why says what proved it alive, or why it could not be proved dead.
	Why string
}

// instanceVerdict is the one rule for removing a container of another
// executor instance, at start (RemovePreviousInstances) and in every sweep
// (Sweeper.orphans, then checkOrphan again right before the removal): the
// container may go only when l proves its executor dead from its pid and
// boot id labels. A container whose labels cannot prove that (no pid, no
// boot id, an unreadable /proc) counts as alive.
func instanceVerdict(l Liveness, c containerd.Summary) (dead bool, why string) {
	alive, why := l.ExecutorAlive(c.Labels, c.Created)
	return !alive, why
}

// liveInstances groups the containers of live other instances by instance.
type liveInstances map[string]*LiveInstance

func (m liveInstances) add(c containerd.Summary, why string) {
	inst := c.Labels[containerd.LabelInstance]
	li, ok := m[inst]
	if !ok {
		li = &LiveInstance{Instance: inst, PID: c.Labels[containerd.LabelPID], Why: why}
		m[inst] = li
	}
	li.Containers++
}

// list returns them sorted by instance id.
func (m liveInstances) list() []LiveInstance {
	out := make([]LiveInstance, 0, len(m))
	for _, li := range m {
		out = append(out, *li)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out
}
