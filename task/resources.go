package task

import (
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

const (
	minMemoryBytes = 32 << 20 // the Mesos Docker containerizer's floor
	cfsPeriod      = 100000   // microseconds
)

// applyResources turns the task's cpus and mem into the container's limits
// and returns its port ranges, against which port mappings are checked.
func applyResources(lc *launchConfig, info *mesos.TaskInfo) ([]mesos.Value_Range, error) {
	s := &lc.spec
	var cpus, mem float64
	var portRanges []mesos.Value_Range
	for _, r := range info.Resources {
		switch r.Name {
		case "cpus":
			cpus += r.GetScalar().GetValue()
		case "mem":
			mem += r.GetScalar().GetValue()
		case "ports":
			portRanges = append(portRanges, r.GetRanges().GetRange()...)
		}
	}
	if cpus > 0 {
		s.CPUShares = max(2, int64(cpus*1024))
		s.CPUPeriod = cfsPeriod
		s.CPUQuota = max(1000, int64(cpus*cfsPeriod))
	}
	if mem > 0 {
		s.MemoryBytes = max(minMemoryBytes, int64(mem*(1<<20)))
		lc.memLimit = s.MemoryBytes
	}
	return portRanges, nil
}
