package cleanup

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/mdx-executor/mdx/containerd"
)

// StorageReport is what CheckStorage found out about the daemon's storage.
type StorageReport struct {
	// Driver is the storage driver (DaemonInfo.Driver).
	Driver string
	// RootDir is the daemon's data root (DaemonInfo.DockerRootDir).
	RootDir string
	// Snapshotter is set when the daemon uses the containerd image store,
	// whose container filesystems are not graph driver mounts.
	Snapshotter bool
	// MountRoot is the directory under which the daemon mounts container
	// root filesystems, as a pattern for the log and /state, e.g.
	// /var/lib/docker/overlay2/<layer>/merged. The mount scan itself works
	// from each container's inspect.
	MountRoot string
	// Warnings are configuration problems that make removals fail or hang
	// (log them at start at warning level and show them in /state).
	Warnings []string
}

// CheckStorage inspects the daemon's storage driver for what makes container
// removal fail: devicemapper without deferred removal and deletion (the
// "device is busy" hosts), loopback devicemapper, overlay without d_type.
// It needs no I/O.
func CheckStorage(info containerd.DaemonInfo) StorageReport {
	root := info.DockerRootDir
	if root == "" {
		root = DefaultDockerRootDir
	}
	rep := StorageReport{Driver: info.Driver, RootDir: root}
	status := make(map[string]string, len(info.DriverStatus))
	for _, kv := range info.DriverStatus {
		status[strings.ToLower(kv[0])] = kv[1]
	}
	warn := func(format string, a ...any) { rep.Warnings = append(rep.Warnings, fmt.Sprintf(format, a...)) }

	if strings.Contains(status["driver-type"], "snapshotter") {
		// The containerd image store reports the snapshotter as the
		// driver ("overlayfs") and mounts each container's rootfs under
		// <root>/rootfs/<snapshotter>/<container id>.
		rep.Snapshotter = true
		rep.MountRoot = filepath.Join(root, "rootfs", info.Driver, "<container_id>")
		return rep
	}
	switch info.Driver {
	case "devicemapper":
		rep.MountRoot = filepath.Join(root, "devicemapper", "mnt", "<device_hash>")
		warn("storage driver devicemapper is deprecated since Docker 18.09 and removed in Engine 25; migrate to overlay2")
		if !isTrue(status["deferred removal enabled"]) {
			warn("devicemapper deferred removal is NOT enabled: removing a container whose thin device is still open in another mount namespace fails with \"device is busy\"; set dm.use_deferred_removal=true in the daemon's storage-opts")
		}
		if !isTrue(status["deferred deletion enabled"]) {
			warn("devicemapper deferred deletion is NOT enabled: busy thin devices make container removal fail instead of being deleted later; set dm.use_deferred_deletion=true in the daemon's storage-opts")
		}
		if _, loop := status["data loop file"]; loop {
			warn("devicemapper runs on loopback files (loop-lvm), which is slow and unsupported in production; configure a thin pool (dm.thinpooldev)")
		}
		if v, ok := status["udev sync supported"]; ok && !isTrue(v) {
			warn("devicemapper without udev sync support can corrupt data and hang removals; use a dynamically linked dockerd")
		}
	case "overlay2", "overlay", "fuse-overlayfs":
		rep.MountRoot = filepath.Join(root, info.Driver, "<layer>", "merged")
		if v, ok := status["supports d_type"]; ok && !isTrue(v) {
			warn("the backing filesystem of %s does not support d_type; overlay behaves incorrectly (xfs needs ftype=1)", info.Driver)
		}
	case "aufs":
		rep.MountRoot = filepath.Join(root, "aufs", "mnt", "<layer>")
		warn("storage driver aufs is removed in Docker 24; migrate to overlay2")
	case "btrfs":
		rep.MountRoot = filepath.Join(root, "btrfs", "subvolumes", "<layer>")
	case "zfs":
		rep.MountRoot = filepath.Join(root, "zfs", "graph", "<layer>")
	case "vfs":
		// Plain copies, nothing mounted: only shm and bind mounts can
		// be held.
		rep.MountRoot = filepath.Join(root, "vfs", "dir", "<layer>")
	case "":
		warn("the daemon reported no storage driver; leaked-mount scans match container ids only")
	default:
		warn("unknown storage driver %q; leaked-mount scans match container ids only", info.Driver)
	}
	return rep
}

func isTrue(s string) bool { return strings.EqualFold(strings.TrimSpace(s), "true") }

// storageNeedles returns the strings whose presence in a mount's source,
// root, mount point or superblock options ties the mount to the container:
// its id (shm under <root>/containers/<id>/mounts/shm, the containerd
// snapshotter's <root>/rootfs/<snapshotter>/<id>, resolv.conf and friends),
// its graph driver directories and their layer id (overlay's upperdir= and
// workdir= options name it), and a devicemapper device name. Lower
// directories are left out on purpose: image layers are shared with every
// other container of the image.
func storageNeedles(info containerd.StorageInfo, id, dockerRoot string) []string {
	if info.ID != "" {
		id = info.ID
	}
	needles := []string{id}
	add := func(s string) {
		if len(s) >= 12 { // short strings would match unrelated mounts
			needles = append(needles, s)
		}
	}
	for _, k := range []string{"MergedDir", "UpperDir", "WorkDir"} {
		if p := info.GraphDriverData[k]; p != "" {
			add(p)
			add(filepath.Base(filepath.Dir(p))) // the layer id
		}
	}
	if dev := info.GraphDriverData["DeviceName"]; dev != "" {
		add(dev)
	}
	// Holds the id, so it is matched anyway; listed to say what is meant.
	needles = append(needles, filepath.Join(dockerRoot, "containers", id, "mounts", "shm"))
	return dedupe(needles)
}

func dedupe(s []string) []string {
	seen := make(map[string]bool, len(s))
	out := s[:0]
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
