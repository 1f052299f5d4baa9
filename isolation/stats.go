package isolation

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Stats is one sample of a task container's cgroup counters. Zero means
// "not available" for the limits; counters missing on a kernel stay zero.
type Stats struct {
	CPUUserSeconds      float64   `json:"cpu_user_seconds"`
	CPUSystemSeconds    float64   `json:"cpu_system_seconds"`
	CPUPeriods          uint64    `json:"cpu_periods,omitempty"`
	CPUThrottledPeriods uint64    `json:"cpu_throttled_periods,omitempty"`
	CPUThrottledSeconds float64   `json:"cpu_throttled_seconds,omitempty"`
	MemoryBytes         uint64    `json:"memory_bytes"`         // usage now (v1 usage_in_bytes, v2 memory.current)
	MemoryPeakBytes     uint64    `json:"memory_peak_bytes"`    // max_usage_in_bytes / memory.peak
	MemoryCacheBytes    uint64    `json:"memory_cache_bytes"`   // page cache (v1 cache, v2 file)
	MemoryRSSBytes      uint64    `json:"memory_rss_bytes"`     // anonymous memory (v1 rss, v2 anon)
	MemoryLimitBytes    uint64    `json:"memory_limit_bytes"`   // 0 = unlimited
	Pids                uint64    `json:"pids"`                 // processes and threads
	PidsLimit           uint64    `json:"pids_limit,omitempty"` // 0 = unlimited
	OOMKills            uint64    `json:"oom_kills"`            // processes the OOM killer killed in the cgroup
	OOMEvents           uint64    `json:"oom_events,omitempty"` // v2: times the limit was hit and reclaim failed
	ReadAt              time.Time `json:"read_at"`
}

// userHZ is the unit of cpuacct.stat: USER_HZ, 100 on every Linux ABI.
const userHZ = 100

// Layout says where a container's cgroup lives: cgroup version, Docker's
// cgroup driver and the parent the containers were created with.
type Layout struct {
	Root   string // cgroupfs mount
	V2     bool
	Driver string // "cgroupfs" or "systemd"
	Parent string // "" = Docker's default
}

// LayoutOf is the layout of a Decision's containers.
func LayoutOf(d Decision) Layout {
	return Layout{Root: d.Host.Root, V2: d.Host.Mode == "v2", Driver: d.Driver, Parent: d.Parent}
}

// validContainerID: Docker's ids are 64 lowercase hex digits; nothing else
// is ever put into a path.
func validContainerID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Dir is the container's cgroup directory relative to the cgroupfs root, for
// controller ("" on v2). With the cgroupfs driver it is <parent>/<id>
// (default parent /docker); with systemd <slice path>/docker-<id>.scope
// (default slice system.slice), where a dash in a slice name is a level.
func (l Layout) Dir(controller, containerID string) string {
	var p string
	if l.Driver == "systemd" {
		slice := l.Parent
		if slice == "" {
			slice = "system.slice"
		}
		p = path.Join(slicePath(slice), "docker-"+containerID+".scope")
	} else {
		parent := l.Parent
		if parent == "" {
			parent = "/docker"
		}
		p = path.Join(parent, containerID)
	}
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if l.V2 {
		return p
	}
	return path.Join(controller, p)
}

// slicePath expands a systemd slice name: "a-b-c.slice" lives at
// a.slice/a-b.slice/a-b-c.slice.
func slicePath(slice string) string {
	name := strings.TrimSuffix(slice, ".slice")
	if name == "" || name == "-" {
		return ""
	}
	parts := strings.Split(name, "-")
	var out []string
	for i := range parts {
		out = append(out, strings.Join(parts[:i+1], "-")+".slice")
	}
	return strings.Join(out, "/")
}

// Reader reads task containers' cgroup stats on demand and keeps each sample
// for TTL, so that /metrics and /state of 1,000 tasks, scraped together, read
// the files once. The cache holds only the containers of the last ReadMany
// plus single reads, and Forget ends an entry; it is bounded by maxCached.
type Reader struct {
	fs     *cgroupFS
	layout Layout
	ttl    time.Duration
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]Stats // by container id
}

// maxCached bounds the cache whatever the callers do.
const maxCached = 8192

// keepExited is how long the sample of a container no longer listed (it
// exited) is kept: long enough for the task manager's exit decision to find
// its last OOM counters with Last.
const keepExited = time.Minute

// DefaultTTL is how long one sample is served: scrapes closer than this
// share one read.
const DefaultTTL = 2 * time.Second

// NewReader opens the cgroupfs root of layout once.
func NewReader(layout Layout, ttl time.Duration) (*Reader, error) {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if layout.Root == "" {
		layout.Root = "/sys/fs/cgroup"
	}
	fs, err := openCgroupFS(layout.Root)
	if err != nil {
		return nil, err
	}
	return &Reader{fs: fs, layout: layout, ttl: ttl, now: time.Now, cache: map[string]Stats{}}, nil
}

// Close releases the root descriptor.
func (r *Reader) Close() error { return r.fs.Close() }

// Layout returns where the reader looks.
func (r *Reader) Layout() Layout { return r.layout }

// Get returns the container's stats, from the cache when fresh. A container
// whose cgroup is gone (it exited) gives an error; Last still has its final
// sample.
func (r *Reader) Get(containerID string) (Stats, error) {
	now := r.now()
	r.mu.Lock()
	s, ok := r.cache[containerID]
	r.mu.Unlock()
	if ok && now.Sub(s.ReadAt) < r.ttl {
		return s, nil
	}
	s, err := r.read(containerID, now)
	if err != nil {
		return Stats{}, err
	}
	r.mu.Lock()
	if len(r.cache) >= maxCached {
		r.pruneLocked(now)
	}
	r.cache[containerID] = s
	r.mu.Unlock()
	return s, nil
}

// ReadMany returns the stats of every container in ids that has a cgroup,
// reading only those whose sample is older than the TTL, and drops cached
// samples of containers not in ids that are older than keepExited.
func (r *Reader) ReadMany(ids []string) map[string]Stats {
	now := r.now()
	out := make(map[string]Stats, len(ids))
	var stale []string
	r.mu.Lock()
	for _, id := range ids {
		if s, ok := r.cache[id]; ok && now.Sub(s.ReadAt) < r.ttl {
			out[id] = s
		} else {
			stale = append(stale, id)
		}
	}
	r.mu.Unlock()
	fresh := make(map[string]Stats, len(stale))
	for _, id := range stale {
		if s, err := r.read(id, now); err == nil {
			fresh[id] = s
		}
	}
	r.mu.Lock()
	for id, s := range fresh {
		r.cache[id] = s
		out[id] = s
	}
	want := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		want[id] = struct{}{}
	}
	for id, s := range r.cache {
		if _, ok := want[id]; !ok && now.Sub(s.ReadAt) >= max(r.ttl, keepExited) {
			delete(r.cache, id)
		}
	}
	r.mu.Unlock()
	return out
}

// Last returns the latest sample taken of the container, however old: the
// only record of its OOM counters once its cgroup is gone at exit.
func (r *Reader) Last(containerID string) (Stats, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.cache[containerID]
	return s, ok
}

// Forget drops the container's sample (call it when the task ends for good).
func (r *Reader) Forget(containerID string) {
	r.mu.Lock()
	delete(r.cache, containerID)
	r.mu.Unlock()
}

func (r *Reader) pruneLocked(now time.Time) {
	for id, s := range r.cache {
		if now.Sub(s.ReadAt) >= r.ttl {
			delete(r.cache, id)
		}
	}
	for id := range r.cache { // all fresh: drop arbitrary ones
		if len(r.cache) < maxCached {
			break
		}
		delete(r.cache, id)
	}
}

// ErrNoCgroup means the container has no cgroup (not started, or exited).
var ErrNoCgroup = errors.New("container has no cgroup")

func (r *Reader) read(containerID string, now time.Time) (Stats, error) {
	if !validContainerID(containerID) {
		return Stats{}, fmt.Errorf("container id %q: not a Docker container id", containerID)
	}
	var s Stats
	var err error
	if r.layout.V2 {
		err = r.readV2(containerID, &s)
	} else {
		err = r.readV1(containerID, &s)
	}
	if err != nil {
		return Stats{}, fmt.Errorf("%w: %s: %w", ErrNoCgroup, containerID, err)
	}
	s.ReadAt = now
	return s, nil
}

// readV1 reads the memory controller first: its absence means no cgroup.
// The other controllers are optional (a kernel may lack pids).
func (r *Reader) readV1(id string, s *Stats) error {
	mem := r.layout.Dir("memory", id)
	v, _, err := r.fs.readUint(filepath.Join(mem, "memory.usage_in_bytes"))
	if err != nil {
		return err
	}
	s.MemoryBytes = v
	s.MemoryPeakBytes, _, _ = r.fs.readUint(filepath.Join(mem, "memory.max_usage_in_bytes"))
	if lim, _, err := r.fs.readUint(filepath.Join(mem, "memory.limit_in_bytes")); err == nil && lim < 1<<62 {
		s.MemoryLimitBytes = lim // v1 "unlimited" is PAGE_COUNTER_MAX pages, near 2^63
	}
	_ = r.fs.readKV(filepath.Join(mem, "memory.stat"), func(k string, v uint64) {
		switch k {
		case "cache":
			s.MemoryCacheBytes = v
		case "rss":
			s.MemoryRSSBytes = v
		}
	})
	_ = r.fs.readKV(filepath.Join(mem, "memory.oom_control"), func(k string, v uint64) {
		if k == "oom_kill" { // kernel 4.13+
			s.OOMKills = v
		}
	})
	_ = r.fs.readKV(filepath.Join(r.layout.Dir("cpuacct", id), "cpuacct.stat"), func(k string, v uint64) {
		switch k {
		case "user":
			s.CPUUserSeconds = float64(v) / userHZ
		case "system":
			s.CPUSystemSeconds = float64(v) / userHZ
		}
	})
	_ = r.fs.readKV(filepath.Join(r.layout.Dir("cpu", id), "cpu.stat"), func(k string, v uint64) {
		switch k {
		case "nr_periods":
			s.CPUPeriods = v
		case "nr_throttled":
			s.CPUThrottledPeriods = v
		case "throttled_time":
			s.CPUThrottledSeconds = float64(v) / 1e9
		}
	})
	pids := r.layout.Dir("pids", id)
	s.Pids, _, _ = r.fs.readUint(filepath.Join(pids, "pids.current"))
	s.PidsLimit, _, _ = r.fs.readUint(filepath.Join(pids, "pids.max"))
	return nil
}

func (r *Reader) readV2(id string, s *Stats) error {
	dir := r.layout.Dir("", id)
	v, _, err := r.fs.readUint(filepath.Join(dir, "memory.current"))
	if err != nil {
		return err
	}
	s.MemoryBytes = v
	s.MemoryPeakBytes, _, _ = r.fs.readUint(filepath.Join(dir, "memory.peak")) // kernel 5.19+
	s.MemoryLimitBytes, _, _ = r.fs.readUint(filepath.Join(dir, "memory.max"))
	_ = r.fs.readKV(filepath.Join(dir, "memory.stat"), func(k string, v uint64) {
		switch k {
		case "file":
			s.MemoryCacheBytes = v
		case "anon":
			s.MemoryRSSBytes = v
		}
	})
	_ = r.fs.readKV(filepath.Join(dir, "memory.events"), func(k string, v uint64) {
		switch k {
		case "oom_kill":
			s.OOMKills = v
		case "oom":
			s.OOMEvents = v
		}
	})
	_ = r.fs.readKV(filepath.Join(dir, "cpu.stat"), func(k string, v uint64) {
		switch k {
		case "user_usec":
			s.CPUUserSeconds = float64(v) / 1e6
		case "system_usec":
			s.CPUSystemSeconds = float64(v) / 1e6
		case "nr_periods":
			s.CPUPeriods = v
		case "nr_throttled":
			s.CPUThrottledPeriods = v
		case "throttled_usec":
			s.CPUThrottledSeconds = float64(v) / 1e6
		}
	})
	s.Pids, _, _ = r.fs.readUint(filepath.Join(dir, "pids.current"))
	s.PidsLimit, _, _ = r.fs.readUint(filepath.Join(dir, "pids.max"))
	return nil
}
