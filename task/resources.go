package task

import (
	"math"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/containerd"
)

const (
	minMemoryBytes = 32 << 20 // the Mesos containerizers' floor (MIN_MEMORY)
	cfsPeriod      = 100000   // microseconds, as Mesos's CPU_CFS_PERIOD
	minCFSQuota    = 1000     // microseconds: the kernel refuses less
	minShares      = 2        // the kernel's MIN_SHARES
	maxShares      = 262144   // the kernel's MAX_SHARES
	// maxCPUs and maxMemMiB refuse absurd requests before they overflow
	// the quota (cpus × 100,000 µs) or the byte count: no host has a
	// million cores or an exbibyte of memory.
	maxCPUs   = 1 << 20
	maxMemMiB = 1 << 40
)

// resources is a task's cpus and mem: the request (TaskInfo.resources) and
// the limit (TaskInfo.limits, +Inf = unlimited; 0 = not given).
type resources struct {
	cpus, mem            float64
	cpuLimit, memLimit   float64
	hasCPULim, hasMemLim bool
}

// applyResources turns the task's cpus and mem into the container's limits,
// with the Mesos semantics: cpus -> CPU shares (a soft, relative weight) and a
// CFS quota only when p.CPUQuota (like the agent's --cgroups_enable_cfs) or
// TaskInfo.limits.cpus asks for one; mem -> a soft reservation, and
// TaskInfo.limits.mem (or mem) -> the hard limit; p.PidsLimit -> the pids
// limit. It returns the port ranges, against which port mappings are checked.
func applyResources(lc *launchConfig, info *mesos.TaskInfo, p Policy) ([]mesos.Value_Range, error) {
	s := &lc.spec
	var r resources
	var portRanges []mesos.Value_Range
	for _, res := range info.Resources {
		switch res.Name {
		case "cpus":
			v := res.GetScalar().GetValue()
			if err := checkScalar("resources.cpus", v, maxCPUs); err != nil {
				return nil, err
			}
			r.cpus += v
		case "mem":
			v := res.GetScalar().GetValue()
			if err := checkScalar("resources.mem", v, maxMemMiB); err != nil {
				return nil, err
			}
			r.mem += v
		case "ports":
			portRanges = append(portRanges, res.GetRanges().GetRange()...)
		}
	}
	if err := checkScalar("resources.cpus", r.cpus, maxCPUs); err != nil {
		return nil, err // a sum of many valid entries
	}
	if err := checkScalar("resources.mem", r.mem, maxMemMiB); err != nil {
		return nil, err
	}
	for name, v := range info.GetLimits() {
		switch name {
		case "cpus":
			r.cpuLimit, r.hasCPULim = v.GetValue(), true
		case "mem":
			r.memLimit, r.hasMemLim = v.GetValue(), true
		default:
			continue
		}
		if err := checkLimit("limits."+name, v.GetValue()); err != nil {
			return nil, err
		}
	}
	if r.hasCPULim && r.cpuLimit < r.cpus {
		return nil, invalid("limits.cpus %g is below resources.cpus %g", r.cpuLimit, r.cpus)
	}
	if r.hasMemLim && r.memLimit < r.mem {
		return nil, invalid("limits.mem %g is below resources.mem %g", r.memLimit, r.mem)
	}

	if r.cpus > 0 {
		s.CPUShares = min(maxShares, max(minShares, int64(r.cpus*1024)))
	}
	switch {
	case r.hasCPULim && math.IsInf(r.cpuLimit, 1):
		// Unlimited: no quota, even with --cpu-quota.
	case r.hasCPULim && r.cpuLimit > 0:
		s.CPUPeriod, s.CPUQuota = cfsPeriod, max(minCFSQuota, int64(r.cpuLimit*cfsPeriod))
	case p.CPUQuota && r.cpus > 0:
		s.CPUPeriod, s.CPUQuota = cfsPeriod, max(minCFSQuota, int64(r.cpus*cfsPeriod))
	}

	if r.mem > 0 {
		s.MemoryReservation = max(minMemoryBytes, int64(r.mem*(1<<20)))
	}
	switch {
	case r.hasMemLim && math.IsInf(r.memLimit, 1):
		s.MemoryBytes = 0 // unlimited: only the reservation
	case r.hasMemLim && r.memLimit > 0:
		s.MemoryBytes = max(minMemoryBytes, int64(r.memLimit*(1<<20)))
	case r.mem > 0:
		s.MemoryBytes = max(minMemoryBytes, int64(r.mem*(1<<20)))
	}
	lc.memLimit = s.MemoryBytes
	s.PidsLimit = p.PidsLimit
	return portRanges, nil
}

// checkScalar refuses a request that is not a finite number in [0, limit].
func checkScalar(field string, v, limit float64) error {
	switch {
	case math.IsNaN(v):
		return invalid("%s is NaN", field)
	case math.IsInf(v, 0):
		return invalid("%s is infinite", field)
	case v < 0:
		return invalid("%s %g is negative", field, v)
	case v > limit:
		return invalid("%s %g is absurdly large (at most %g)", field, v, limit)
	}
	return nil
}

// checkLimit accepts +Inf (unlimited) and what checkScalar accepts.
func checkLimit(field string, v float64) error {
	if math.IsInf(v, 1) {
		return nil
	}
	limit := float64(maxCPUs)
	if field == "limits.mem" {
		limit = maxMemMiB
	}
	return checkScalar(field, v, limit)
}

// ResourceSpec returns a container spec holding only the resource fields
// (CPU shares and quota, memory limit and reservation, pids limit) that a
// LAUNCH of info would get under p, or the ErrInvalidTask error it would fail
// with. Tests and tools use it to create containers with exactly the limits
// the executor sets.
func ResourceSpec(info *mesos.TaskInfo, p Policy) (containerd.Spec, error) {
	var lc launchConfig
	if _, err := applyResources(&lc, info, p); err != nil {
		return containerd.Spec{}, err
	}
	return lc.spec, nil
}
