package cleanup

import (
	"strings"
	"testing"
)

func TestFindHoldersFakeProc(t *testing.T) {
	id := strings.Repeat("d", 64)
	layer := strings.Repeat("e", 64)
	merged := "/var/lib/docker/overlay2/" + layer + "/merged"
	shm := "/var/lib/docker/containers/" + id + "/mounts/shm"
	needles := []string{id, layer, merged, shm}
	// Kernel mountinfo lines, as a holder's namespace shows them.
	holderNS := rootMountinfo +
		"600 1 8:1 /var/lib/docker /var/lib/docker rw,relatime - ext4 /dev/sda1 rw\n" +
		"700 600 0:40 / " + merged + " rw,relatime - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/ABC,upperdir=/var/lib/docker/overlay2/" + layer + "/diff,workdir=/var/lib/docker/overlay2/" + layer + "/work\n"
	shmNS := rootMountinfo + "800 1 0:55 / " + shm + " rw,nosuid - tmpfs shm rw,size=65536k\n"
	// Overlay's options name the layer even where the mount point differs
	// (a namespace that moved it).
	optsNS := rootMountinfo + "900 1 0:41 / /mnt/elsewhere rw - overlay overlay rw,upperdir=/var/lib/docker/overlay2/" + layer + "/diff\n"
	other := rootMountinfo + "901 1 0:42 / /var/lib/docker/overlay2/" + strings.Repeat("f", 64) + "/merged rw - overlay overlay rw\n"
	proc := fakeProc(t, map[int]fakeProcess{
		1:   {ns: "mnt:[4026531840]", comm: "init", mountinfo: holderNS}, // the host's: skipped
		10:  {ns: "mnt:[4026531840]", comm: "dockerd", mountinfo: holderNS},
		20:  {ns: "mnt:[5000]", cmdline: "/usr/sbin/ntpd\x00-n\x00", mountinfo: holderNS},
		21:  {ns: "mnt:[5000]", comm: "ntpd-worker"}, // same ns: no mountinfo read, still reported
		30:  {ns: "mnt:[5001]", comm: "journald", mountinfo: shmNS},
		40:  {ns: "mnt:[5002]", cmdline: "unshare\x00--mount\x00sleep\x0030\x00", mountinfo: optsNS},
		50:  {ns: "mnt:[5003]", comm: "bystander", mountinfo: other},
		60:  {comm: "kthreadd"},                                            // no ns link
		70:  {ns: "mnt:[5004]", comm: "vanished"},                          // mountinfo gone
		999: {ns: "mnt:[6000]", comm: "the-executor", mountinfo: holderNS}, // self: skipped
	}, 999)

	got, err := FindHolders(proc, needles)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		pid        int
		cmd, ns    string
		mountpoint string
	}
	wants := []want{
		{20, "/usr/sbin/ntpd -n", "mnt:[5000]", merged},
		{21, "ntpd-worker", "mnt:[5000]", merged},
		{30, "journald", "mnt:[5001]", shm},
		{40, "unshare --mount sleep 30", "mnt:[5002]", "/mnt/elsewhere"},
	}
	if len(got) != len(wants) {
		t.Fatalf("FindHolders() = %+v; want pids 20, 21, 30, 40", got)
	}
	for i, w := range wants {
		g := got[i]
		if g.PID != w.pid || g.Command != w.cmd || g.MountNS != w.ns || g.Mountpoint != w.mountpoint {
			t.Errorf("holder %d = %+v; want %+v", i, g, w)
		}
	}
	if s := FormatHolders(got[:1]); s != "pid 20 (/usr/sbin/ntpd -n) in mnt:[5000] at "+merged {
		t.Errorf("FormatHolders = %q", s)
	}
	if hs, err := FindHolders(proc, nil); err != nil || hs != nil {
		t.Errorf("FindHolders without needles = %v, %v; want nothing", hs, err)
	}
}
