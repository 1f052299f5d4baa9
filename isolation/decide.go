package isolation

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mode is how the executor groups its tasks' cgroups.
type Mode string

const (
	// ModeNested puts every task container under the executor's own cgroup
	// (cgroupfs driver), so the agent's limits and statistics for the
	// executor's Mesos container cover its tasks.
	ModeNested Mode = "nested"
	// ModeSlice puts every task container in a systemd slice named after the
	// executor (systemd driver): grouped, but outside the executor's cgroup.
	ModeSlice Mode = "slice"
	// ModeDegraded leaves containers in Docker's default cgroup parent with
	// their per-container limits only.
	ModeDegraded Mode = "degraded"
)

// Options are the inputs of Decide. Every path is injectable for tests.
type Options struct {
	Root           string // cgroupfs mount; "" = /sys/fs/cgroup
	ProcSelfCgroup string // "" = /proc/self/cgroup
	// DockerDriver and DockerCgroupVersion come from Docker's Info
	// ("cgroupfs" or "systemd"; "1" or "2"). An empty driver means Docker
	// could not be asked.
	DockerDriver        string
	DockerCgroupVersion string
	ExecutorID          string
	// Override is --cgroup-parent: used as the parent as given.
	Override string
	// EUID is the effective uid to judge by; nil = os.Geteuid().
	EUID *int
	// MoveSelf (v2 only) is the pid moved into a leaf cgroup so that the
	// executor's cgroup may enable controllers for its children; 0 =
	// os.Getpid().
	MoveSelf int
}

// Decision is the isolation in force, decided once at start.
type Decision struct {
	Mode   Mode   `json:"mode"`
	Reason string `json:"reason"`
	// Parent is HostConfig.CgroupParent for every task container; "" means
	// Docker's default (/docker, or system.slice with systemd).
	Parent   string   `json:"parent,omitempty"`
	Driver   string   `json:"driver,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	Host     Info     `json:"-"`
	// Own is the executor's own cgroup per controller ("" = the v2
	// hierarchy), from /proc/self/cgroup.
	Own map[string]string `json:"-"`

	created []string // cgroup directories (relative to Host.Root) Decide made
}

// String is the one-line summary for the log and `executor status`.
func (d Decision) String() string {
	s := string(d.Mode)
	if d.Parent != "" {
		s += " parent=" + d.Parent
	}
	if d.Reason != "" {
		s += " (" + d.Reason + ")"
	}
	return s
}

// maxIDLen bounds the executor id part of a cgroup name; the kernel's limit
// on one path component is 255 bytes.
const maxIDLen = 128

// SanitizeID turns an executor id (any string a framework chose) into one
// cgroup path component: [A-Za-z0-9_.] kept, anything else '_', never "." or
// "..", at most maxIDLen bytes. Dashes become '_' too, since systemd reads a
// dash in a slice name as nesting.
func SanitizeID(id string) string {
	var b strings.Builder
	for _, r := range id {
		if b.Len() >= maxIDLen {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if s == "" || strings.Trim(s, ".") == "" {
		s = "_" + s
	}
	return s
}

// Decide detects the host's cgroups and picks the mode. It never fails: what
// cannot be done becomes ModeDegraded with the reason. In nested mode it
// creates the parent cgroup (proving the hierarchy is writable) and, on cgroup
// v2 when the executor is not in the root cgroup, moves the executor's
// processes into a leaf first ("no internal processes" rule).
func Decide(o Options) Decision {
	if o.Root == "" {
		o.Root = "/sys/fs/cgroup"
	}
	if o.ProcSelfCgroup == "" {
		o.ProcSelfCgroup = "/proc/self/cgroup"
	}
	euid := os.Geteuid()
	if o.EUID != nil {
		euid = *o.EUID
	}
	d := Decision{Host: Detect(o.Root), Driver: o.DockerDriver}
	d.Warnings = append(d.Warnings, d.Host.Warnings...)
	if f, err := os.Open(o.ProcSelfCgroup); err == nil {
		d.Own, err = ProcCgroupPaths(f)
		_ = f.Close()
		if err != nil {
			d.Warnings = append(d.Warnings, err.Error())
		}
	}
	degrade := func(reason string) Decision {
		d.Mode, d.Reason, d.Parent = ModeDegraded, reason, o.Override
		if o.Override != "" {
			d.Reason += "; --cgroup-parent " + o.Override + " still passed to Docker"
		}
		return d
	}
	switch {
	case d.Host.Mode == "none":
		return degrade("no cgroup filesystem at " + o.Root)
	case euid != 0:
		return degrade("the executor is not root (euid " + strconv.Itoa(euid) + ")")
	case !d.Host.Writable:
		return degrade("cgroupfs at " + o.Root + " is read-only")
	case o.DockerDriver != "cgroupfs" && o.DockerDriver != "systemd":
		return degrade(fmt.Sprintf("unknown Docker cgroup driver %q", o.DockerDriver))
	}
	if o.Override != "" {
		d.Mode, d.Parent = ModeNested, o.Override
		if o.DockerDriver == "systemd" {
			d.Mode = ModeSlice
		}
		d.Reason = "parent set by --cgroup-parent"
		return d
	}
	id := SanitizeID(o.ExecutorID)
	if o.DockerDriver == "systemd" {
		// Docker accepts only a slice as parent with the systemd driver,
		// and a unit of the agent is no slice: tasks are grouped in a
		// slice of their own, outside the executor's cgroup.
		d.Mode, d.Parent = ModeSlice, "mdx-"+id+".slice"
		d.Reason = "systemd cgroup driver: tasks grouped in slice " + d.Parent + ", outside the executor's own cgroup"
		return d
	}
	var err error
	if d.Host.Mode == "v2" {
		err = d.nestV2(o, id)
	} else {
		err = d.nestV1(o, id)
	}
	if err != nil {
		return degrade(err.Error())
	}
	d.Mode = ModeNested
	return d
}

// nestV1 chooses the memory controller's path: HostConfig.CgroupParent is one
// path used for every controller, and memory is the one whose limit and
// accounting matter most to the agent. Controllers where the executor sits
// elsewhere (not an ancestor of that path) get a warning: their task cgroups
// are created at the same relative path, outside the executor's.
func (d *Decision) nestV1(o Options, id string) error {
	own, ok := d.Own["memory"]
	if !ok {
		return errors.New("the executor's memory cgroup is unknown (no memory line in " + o.ProcSelfCgroup + ")")
	}
	d.Parent = path.Join(own, "mdx", id)
	var outside []string
	for _, c := range []string{"cpu", "cpuacct", "pids", "blkio"} {
		if p, ok := d.Own[c]; ok && !under(d.Parent, p) {
			outside = append(outside, c+":"+p)
		}
	}
	if len(outside) > 0 {
		d.Warnings = append(d.Warnings, "the executor's cgroups differ by controller; task cgroups follow the memory path "+own+
			" and are not under the executor's "+strings.Join(outside, ", "))
	}
	rel := filepath.Join("memory", d.Parent)
	if err := d.mkdirs(o.Root, rel); err != nil {
		return fmt.Errorf("cannot create the parent cgroup %s: %w", rel, err)
	}
	// runc creates the parent in every other hierarchy, with any missing
	// ancestors: remember those that do not exist yet, for Cleanup.
	// That includes the name=systemd and the hybrid's unified hierarchy,
	// which are no controllers.
	ents, _ := os.ReadDir(o.Root)
	for _, e := range ents {
		if e.IsDir() && e.Name() != "memory" {
			d.created = append(d.created, missing(o.Root, filepath.Join(e.Name(), d.Parent))...)
		}
	}
	d.Reason = "tasks under the executor's memory cgroup " + own
	return nil
}

// nestV2 moves the executor into a leaf of its own cgroup (when that is not
// the root, which may hold processes), enables the controllers for children,
// and creates the parent beside the leaf.
func (d *Decision) nestV2(o Options, id string) error {
	own, ok := d.Own[""]
	if !ok {
		return errors.New("the executor's cgroup v2 path is unknown (no 0:: line in " + o.ProcSelfCgroup + ")")
	}
	if own != "/" {
		pid := o.MoveSelf
		if pid == 0 {
			pid = os.Getpid()
		}
		leaf := filepath.Join(own, "executor")
		if err := d.mkdirs(o.Root, leaf); err != nil {
			return fmt.Errorf("cannot create the executor's leaf cgroup %s: %w", leaf, err)
		}
		if err := writeFile(filepath.Join(o.Root, leaf, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("cannot move the executor into %s: %w", leaf, err)
		}
		ctrl, _ := os.ReadFile(filepath.Join(o.Root, own, "cgroup.controllers"))
		var enable []string
		for _, c := range strings.Fields(string(ctrl)) {
			if c == "cpu" || c == "memory" || c == "pids" || c == "io" {
				enable = append(enable, "+"+c)
			}
		}
		if len(enable) > 0 {
			if err := writeFile(filepath.Join(o.Root, own, "cgroup.subtree_control"), strings.Join(enable, " ")); err != nil {
				return fmt.Errorf("cannot enable %s for the executor's child cgroups (another process in %s?): %w", strings.Join(enable, " "), own, err)
			}
		}
	}
	d.Parent = path.Join(own, "mdx", id)
	if err := d.mkdirs(o.Root, d.Parent); err != nil {
		return fmt.Errorf("cannot create the parent cgroup %s: %w", d.Parent, err)
	}
	d.Reason = "tasks under the executor's cgroup " + own
	return nil
}

// mkdirs creates rel under root one component at a time, remembering what it
// created so that Cleanup removes exactly that.
func (d *Decision) mkdirs(root, rel string) error {
	cur := ""
	for _, part := range strings.Split(strings.Trim(filepath.Clean(rel), "/"), "/") {
		cur = filepath.Join(cur, part)
		err := unix.Mkdir(filepath.Join(root, cur), 0o755)
		switch {
		case err == nil:
			d.created = append(d.created, cur)
		case errors.Is(err, unix.EEXIST):
		default:
			return err
		}
	}
	return nil
}

// missing lists rel and its ancestors that do not exist under root, outermost
// first.
func missing(root, rel string) []string {
	var out []string
	for p := filepath.Clean(rel); p != "." && p != "/"; p = filepath.Dir(p) {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			break
		}
		out = append([]string{p}, out...)
	}
	return out
}

func writeFile(p, s string) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// under reports whether p is dir or below it.
func under(p, dir string) bool {
	return dir == "/" || p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// Cleanup removes the parent cgroups of nested mode once their containers are
// gone: the directories Decide made and the ones runc made for the other v1
// controllers, deepest first. A parent that still holds a container (rmdir
// fails with EBUSY) is reported; an ancestor shared with another executor is
// left quietly. Call it at exit, after the containers are removed.
func (d Decision) Cleanup() error {
	if d.Mode != ModeNested || d.Host.Root == "" {
		return nil
	}
	var errs []error
	for i := len(d.created) - 1; i >= 0; i-- {
		rel := d.created[i]
		err := unix.Rmdir(filepath.Join(d.Host.Root, rel))
		if err == nil || errors.Is(err, unix.ENOENT) {
			continue
		}
		if errors.Is(err, unix.EBUSY) && !strings.HasSuffix(rel, d.Parent) {
			continue // an ancestor another executor's parent still uses
		}
		errs = append(errs, fmt.Errorf("remove cgroup %s: %w", rel, err))
	}
	return errors.Join(errs...)
}
