package cleanup

import (
	"strings"
	"testing"

	"github.com/mdx-executor/mdx/containerd"
)

func TestCheckStorage(t *testing.T) {
	// DriverStatus values as `docker info` printed them on the hosts in
	// question (devicemapper on RHEL 7, overlay2, fuse-overlayfs, the
	// containerd image store).
	dmGood := [][2]string{
		{"Pool Name", "docker-thinpool"}, {"Pool Blocksize", "524.3kB"}, {"Base Device Size", "10.74GB"},
		{"Backing Filesystem", "xfs"}, {"Udev Sync Supported", "true"},
		{"Deferred Removal Enabled", "true"}, {"Deferred Deletion Enabled", "true"},
		{"Deferred Deleted Device Count", "0"}, {"Library Version", "1.02.140-RHEL7 (2017-05-03)"},
	}
	dmBad := [][2]string{
		{"Pool Name", "docker-8:1-1234-pool"}, {"Backing Filesystem", "xfs"},
		{"Data file", "/dev/loop0"}, {"Metadata file", "/dev/loop1"},
		{"Data loop file", "/var/lib/docker/devicemapper/devicemapper/data"},
		{"Udev Sync Supported", "false"},
		{"Deferred Removal Enabled", "false"}, {"Deferred Deletion Enabled", "false"},
	}
	tests := []struct {
		name        string
		info        containerd.DaemonInfo
		wantWarn    []string // substrings, one warning each
		noWarn      bool
		mountRoot   string
		snapshotter bool
	}{
		{
			name:      "devicemapper with deferred removal and deletion",
			info:      containerd.DaemonInfo{Driver: "devicemapper", DriverStatus: dmGood, DockerRootDir: "/var/lib/docker"},
			wantWarn:  []string{"deprecated"},
			mountRoot: "/var/lib/docker/devicemapper/mnt/<device_hash>",
		},
		{
			name: "devicemapper without them, on loop devices",
			info: containerd.DaemonInfo{Driver: "devicemapper", DriverStatus: dmBad, DockerRootDir: "/data/docker"},
			wantWarn: []string{"deprecated", "deferred removal is NOT enabled", "deferred deletion is NOT enabled",
				"loop-lvm", "udev sync"},
			mountRoot: "/data/docker/devicemapper/mnt/<device_hash>",
		},
		{
			name:      "devicemapper reporting nothing about deferral",
			info:      containerd.DaemonInfo{Driver: "devicemapper", DriverStatus: [][2]string{{"Pool Name", "p"}}},
			wantWarn:  []string{"deprecated", "deferred removal is NOT enabled", "deferred deletion is NOT enabled"},
			mountRoot: "/var/lib/docker/devicemapper/mnt/<device_hash>",
		},
		{
			name: "overlay2",
			info: containerd.DaemonInfo{Driver: "overlay2", DockerRootDir: "/var/lib/docker", DriverStatus: [][2]string{
				{"Backing Filesystem", "extfs"}, {"Supports d_type", "true"}, {"Native Overlay Diff", "true"}, {"userxattr", "false"}}},
			noWarn:    true,
			mountRoot: "/var/lib/docker/overlay2/<layer>/merged",
		},
		{
			name:      "overlay2 on xfs without ftype",
			info:      containerd.DaemonInfo{Driver: "overlay2", DriverStatus: [][2]string{{"Backing Filesystem", "xfs"}, {"Supports d_type", "false"}}},
			wantWarn:  []string{"d_type"},
			mountRoot: "/var/lib/docker/overlay2/<layer>/merged",
		},
		{
			name:      "fuse-overlayfs",
			info:      containerd.DaemonInfo{Driver: "fuse-overlayfs", DockerRootDir: "/var/lib/docker"},
			noWarn:    true,
			mountRoot: "/var/lib/docker/fuse-overlayfs/<layer>/merged",
		},
		{
			name: "containerd snapshotter",
			info: containerd.DaemonInfo{Driver: "overlayfs", DockerRootDir: "/var/lib/docker",
				DriverStatus: [][2]string{{"driver-type", "io.containerd.snapshotter.v1"}}},
			noWarn:      true,
			snapshotter: true,
			mountRoot:   "/var/lib/docker/rootfs/overlayfs/<container_id>",
		},
		{
			name:     "unknown driver",
			info:     containerd.DaemonInfo{Driver: "quantumfs"},
			wantWarn: []string{"unknown storage driver"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CheckStorage(tt.info)
			if got.Driver != tt.info.Driver {
				t.Errorf("Driver = %q; want %q", got.Driver, tt.info.Driver)
			}
			if got.MountRoot != tt.mountRoot {
				t.Errorf("MountRoot = %q; want %q", got.MountRoot, tt.mountRoot)
			}
			if got.Snapshotter != tt.snapshotter {
				t.Errorf("Snapshotter = %v; want %v", got.Snapshotter, tt.snapshotter)
			}
			if tt.noWarn && len(got.Warnings) > 0 {
				t.Errorf("Warnings = %q; want none", got.Warnings)
			}
			if !tt.noWarn && len(got.Warnings) != len(tt.wantWarn) {
				t.Errorf("Warnings = %q; want %d containing %q", got.Warnings, len(tt.wantWarn), tt.wantWarn)
			}
			for _, w := range tt.wantWarn {
				found := false
				for _, g := range got.Warnings {
					found = found || strings.Contains(g, w)
				}
				if !found {
					t.Errorf("no warning contains %q in %q", w, got.Warnings)
				}
			}
		})
	}
}

func TestStorageNeedles(t *testing.T) {
	id := strings.Repeat("c", 64)
	layer := strings.Repeat("1", 64)
	info := containerd.StorageInfo{ID: id, GraphDriver: "overlay2", GraphDriverData: map[string]string{
		"LowerDir":  "/var/lib/docker/overlay2/" + layer + "-init/diff:/var/lib/docker/overlay2/" + strings.Repeat("9", 64) + "/diff",
		"MergedDir": "/var/lib/docker/overlay2/" + layer + "/merged",
		"UpperDir":  "/var/lib/docker/overlay2/" + layer + "/diff",
		"WorkDir":   "/var/lib/docker/overlay2/" + layer + "/work",
	}}
	got := storageNeedles(info, id, "/var/lib/docker")
	want := map[string]bool{
		id: true, layer: true,
		"/var/lib/docker/overlay2/" + layer + "/merged":    true,
		"/var/lib/docker/overlay2/" + layer + "/diff":      true,
		"/var/lib/docker/overlay2/" + layer + "/work":      true,
		"/var/lib/docker/containers/" + id + "/mounts/shm": true,
	}
	for _, n := range got {
		if !want[n] {
			t.Errorf("unexpected needle %q (an image layer would match other containers)", n)
		}
		delete(want, n)
	}
	for n := range want {
		t.Errorf("missing needle %q", n)
	}

	dm := storageNeedles(containerd.StorageInfo{ID: id, GraphDriverData: map[string]string{"DeviceName": "docker-8:1-1234-" + layer}}, id, "/var/lib/docker")
	if !containsStr(dm, "docker-8:1-1234-"+layer) {
		t.Errorf("devicemapper needles %q lack the device name", dm)
	}
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
