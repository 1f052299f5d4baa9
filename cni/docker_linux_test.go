package cni

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
)

// requireCNI skips (or fails with CI=true) a test that needs Docker, root
// and the reference plugins.
func requireCNI(t *testing.T) *containerd.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping a test with real CNI plugins and Docker")
	}
	var missing string
	switch {
	case os.Geteuid() != 0:
		missing = "root (network namespaces, links)"
	default:
		for _, p := range []string{"bridge", "host-local", "vlan", "firewall"} {
			if _, err := os.Stat(filepath.Join(DefaultBinDir, p)); err != nil {
				missing = "CNI plugin " + p + " in " + DefaultBinDir + " (Debian containernetworking-plugins; make test installs it)"
				break
			}
		}
	}
	if missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("missing %s (CI=true, so this is a failure)", missing)
		}
		t.Skipf("missing %s", missing)
	}
	return containerdtest.Docker(t)
}

// subnet returns a random 10.99.N.0/24 prefix ("10.99.N") for one test, so
// that parallel runs on one host do not collide.
func subnet(t *testing.T) string {
	n, err := rand.Int(rand.Reader, big.NewInt(250))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("10.99.%d", n.Int64()+2)
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// testEnv is a conf dir, a cache dir and a host-local data dir of one test.
type testEnv struct {
	client  *Client
	confDir string
	cache   string
	ipam    string // host-local dataDir
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	dir := t.TempDir()
	e := &testEnv{confDir: filepath.Join(dir, "net.d"), cache: filepath.Join(dir, "cache"), ipam: filepath.Join(dir, "ipam")}
	if err := os.Mkdir(e.confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	e.client = e.newClient(t)
	return e
}

func (e *testEnv) newClient(t *testing.T) *Client {
	t.Helper()
	c, err := New(Config{ConfDir: e.confDir, CacheDir: e.cache, Timeout: 30 * time.Second}, testReaper, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// bridgeNet installs a bridge + host-local (+ firewall, since Docker's
// FORWARD policy is DROP) network called name on bridge br, and removes the
// bridge after the test.
func (e *testEnv) bridgeNet(t *testing.T, name, br, prefix string) {
	t.Helper()
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": "%s.0/24"}]]}},
    {"type": "firewall", "backend": "iptables"}
  ]
}`, name, br, e.ipam, prefix)
	if err := os.WriteFile(filepath.Join(e.confDir, name+".conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", br).Run() })
}

// reserved returns the addresses host-local holds for network name.
func (e *testEnv) reserved(t *testing.T, name string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.ipam, name))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var ips []string
	for _, en := range entries {
		if strings.Count(en.Name(), ".") == 3 {
			ips = append(ips, en.Name())
		}
	}
	return ips
}

// startContainer starts the test image with Docker network none running
// argv, and returns its id and pid. The container is removed after the test.
func startContainer(t *testing.T, dc *containerd.Client, argv ...string) (string, int) {
	t.Helper()
	ctx := context.Background()
	img := containerdtest.TaskImage(t, dc)
	id, err := dc.Create(ctx, containerd.Spec{
		Name: "mdx-cnitest-" + containerdtest.RandHex(6), Image: img, Cmd: argv, Network: "none",
		Labels: map[string]string{"io.mdx.test": "cni"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dc.RemoveContainer(context.Background(), id, true) })
	if err := dc.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	info, err := dc.Inspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return id, info.Pid
}

func execIn(t *testing.T, dc *containerd.Client, id string, argv ...string) (int, string) {
	t.Helper()
	code, out, err := dc.Exec(context.Background(), id, argv, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

func bridgePorts(t *testing.T, br string) []string {
	t.Helper()
	entries, err := os.ReadDir("/sys/class/net/" + br + "/brif")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// waitNoPorts waits up to 30s for bridge br to have no ports, and returns
// those left.
func waitNoPorts(t *testing.T, br string) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ports := bridgePorts(t, br)
		if len(ports) == 0 || time.Now().After(deadline) {
			return ports
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Two containers on one CNI bridge get addresses seen from inside, reach
// each other over HTTP, and DEL leaves no veth, address or cache entry.
func TestBridgeAttachReachDetach(t *testing.T) {
	dc := requireCNI(t)
	e := newEnv(t)
	ctx := context.Background()
	prefix, br, name := subnet(t), "mdxbr"+containerdtest.RandHex(4), "mdxtest-"+containerdtest.RandHex(4)
	e.bridgeNet(t, name, br, prefix)

	srv, srvPid := startContainer(t, dc, "serve", "8080")
	cli, cliPid := startContainer(t, dc, "sleep", "1h")
	var results []Result
	for _, c := range []struct {
		id  string
		pid int
	}{{srv, srvPid}, {cli, cliPid}} {
		res, err := e.client.AttachAll(ctx, Attachment{ContainerID: c.id, NetNS: fmt.Sprintf("/proc/%d/ns/net", c.pid)}, "none", []string{name})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 || len(res[0].IPs) != 1 || !strings.HasPrefix(res[0].IPs[0].String(), prefix+".") || res[0].IfName != "eth0" {
			t.Fatalf("result %+v, want one %s.x address on eth0", res, prefix)
		}
		results = append(results, res[0])
	}
	srvIP := results[0].IPs[0]
	if _, out := execIn(t, dc, srv, "/task", "addrs"); !strings.Contains(out, "eth0 "+srvIP.String()) {
		t.Errorf("inside the container: %q, want eth0 %s", out, srvIP)
	}
	if code, out := execIn(t, dc, cli, "/task", "get", fmt.Sprintf("http://%s:8080/", srvIP.Addr())); code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("client -> server over the CNI bridge: exit %d, %q", code, out)
	}
	if got := len(bridgePorts(t, br)); got != 2 {
		t.Errorf("bridge %s has %d ports, want 2", br, got)
	}
	if got := e.reserved(t, name); len(got) != 2 {
		t.Errorf("host-local holds %v, want 2 addresses", got)
	}

	for i, c := range []struct {
		id  string
		pid int
	}{{srv, srvPid}, {cli, cliPid}} {
		a := Attachment{Network: name, ContainerID: c.id, NetNS: fmt.Sprintf("/proc/%d/ns/net", c.pid), IfName: results[i].IfName}
		if err := e.client.Del(ctx, a); err != nil {
			t.Fatal(err)
		}
		// DEL twice is fine (the spec says so, and cleanup retries).
		if err := e.client.Del(ctx, a); err != nil {
			t.Errorf("second DEL: %v", err)
		}
	}
	if ports := bridgePorts(t, br); len(ports) != 0 {
		t.Errorf("veths left on %s after DEL: %v", br, ports)
	}
	if got := e.reserved(t, name); len(got) != 0 {
		t.Errorf("addresses left reserved after DEL: %v", got)
	}
	if _, out := execIn(t, dc, srv, "/task", "addrs"); strings.Contains(out, prefix+".") || strings.Contains(out, "eth0") {
		t.Errorf("container still has the CNI interface after DEL: %q", out)
	}
	if cached, err := e.client.Cached(""); err != nil || len(cached) != 0 {
		t.Errorf("cache after DEL: %v, %v", cached, err)
	}
}

// The executor was SIGKILLed and relaunched, the container is gone: a new
// Client on the same cache dir, knowing only the container id, releases the
// address (the veth went with the namespace).
func TestDelFromCacheAfterContainerGone(t *testing.T) {
	dc := requireCNI(t)
	e := newEnv(t)
	ctx := context.Background()
	prefix, br, name := subnet(t), "mdxbr"+containerdtest.RandHex(4), "mdxtest-"+containerdtest.RandHex(4)
	e.bridgeNet(t, name, br, prefix)
	id, pid := startContainer(t, dc, "sleep", "1h")
	if _, err := e.client.AttachAll(ctx, Attachment{ContainerID: id, NetNS: fmt.Sprintf("/proc/%d/ns/net", pid),
		Args: map[string]string{"MDX_TEST": "1"}}, "none", []string{name}); err != nil {
		t.Fatal(err)
	}
	if err := dc.RemoveContainer(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	// The operator even removed the configuration since.
	if err := os.Remove(filepath.Join(e.confDir, name+".conflist")); err != nil {
		t.Fatal(err)
	}
	relaunched := e.newClient(t)
	cached, err := relaunched.Cached(id)
	if err != nil || len(cached) != 1 || cached[0].Network != name {
		t.Fatalf("Cached(%s) = %+v, %v", id, cached, err)
	}
	if err := relaunched.DelAll(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	if got := e.reserved(t, name); len(got) != 0 {
		t.Errorf("addresses left reserved: %v", got)
	}
	// The veth goes with the namespace, which the kernel tears down
	// asynchronously after the last process left: wait for it.
	if ports := waitNoPorts(t, br); len(ports) != 0 {
		t.Errorf("veths left on %s: %v", br, ports)
	}
	if cached, _ := relaunched.Cached(id); len(cached) != 0 {
		t.Errorf("cache still holds %+v", cached)
	}
}

// The sweep DELs the attachments of containers that are gone and leaves
// the live ones alone.
func TestSweep(t *testing.T) {
	dc := requireCNI(t)
	e := newEnv(t)
	ctx := context.Background()
	prefix, br, name := subnet(t), "mdxbr"+containerdtest.RandHex(4), "mdxtest-"+containerdtest.RandHex(4)
	e.bridgeNet(t, name, br, prefix)
	gone, gonePid := startContainer(t, dc, "sleep", "1h")
	live, livePid := startContainer(t, dc, "sleep", "1h")
	for _, c := range []struct {
		id  string
		pid int
	}{{gone, gonePid}, {live, livePid}} {
		if _, err := e.client.AttachAll(ctx, Attachment{ContainerID: c.id, NetNS: fmt.Sprintf("/proc/%d/ns/net", c.pid)}, "none", []string{name}); err != nil {
			t.Fatal(err)
		}
	}
	if err := dc.RemoveContainer(ctx, gone, true); err != nil {
		t.Fatal(err)
	}
	if err := e.newClient(t).Sweep(ctx, func(id string) bool { return id == live }); err != nil {
		t.Fatal(err)
	}
	if got := e.reserved(t, name); len(got) != 1 {
		t.Errorf("reserved after the sweep: %v, want the live container's one", got)
	}
	if c, _ := e.client.Cached(gone); len(c) != 0 {
		t.Errorf("gone container still cached: %+v", c)
	}
	if c, _ := e.client.Cached(live); len(c) != 1 {
		t.Errorf("live container's attachment: %+v", c)
	}
	if err := e.client.DelAll(ctx, live, fmt.Sprintf("/proc/%d/ns/net", livePid)); err != nil {
		t.Fatal(err)
	}
}

// parentLink creates a host interface for vlan/macvlan networks to sit on:
// a dummy, or one end of a veth pair where the kernel has no dummy driver.
// Nothing is sent through it: no address is on it and nothing routes to it.
func parentLink(t *testing.T) string {
	t.Helper()
	parent := "mdxpa" + containerdtest.RandHex(4)
	if err := exec.Command("ip", "link", "add", parent, "type", "dummy").Run(); err != nil {
		run(t, "ip", "link", "add", parent, "type", "veth", "peer", "name", "mdxpb"+parent[5:])
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", parent).Run() })
	run(t, "ip", "link", "set", parent, "up")
	return parent
}

// requireLinkType skips t when the kernel cannot make links of kind over
// parent (a module missing and not loadable, as on some VM kernels). This is
// a property of the host's kernel, not something the project can install,
// so it skips with the reason even under CI=true.
func requireLinkType(t *testing.T, parent, kind string, extra ...string) {
	t.Helper()
	probe := "mdxpr" + containerdtest.RandHex(4)
	args := append([]string{"link", "add", "link", parent, "name", probe, "type", kind}, extra...)
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Skipf("this kernel cannot create %s links (%v: %s); the %s test needs it", kind, err, strings.TrimSpace(string(out)), kind)
	}
	_ = exec.Command("ip", "link", "del", probe).Run()
}

// A vlan network over a parent interface the test creates: the container
// gets a VLAN sub-interface with its address, and DEL removes it.
func TestVLAN(t *testing.T) {
	dc := requireCNI(t)
	parent := parentLink(t)
	requireLinkType(t, parent, "vlan", "id", "4000")
	e := newEnv(t)
	prefix, name, vid := subnet(t), "mdxvlan-"+containerdtest.RandHex(4), 3000+time.Now().Nanosecond()%900
	conf := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": %q, "type": "vlan", "master": %q, "vlanId": %d,
  "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": "%s.0/24"}]]}}`, name, parent, vid, e.ipam, prefix)
	// A single .conf, the older format, on purpose.
	if err := os.WriteFile(filepath.Join(e.confDir, name+".conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	checkParentAttachment(t, dc, e, name, prefix, fmt.Sprintf("vlan protocol 802.1Q id %d", vid))
}

// The same over macvlan, which every kernel this runs on has: a
// sub-interface of a host parent moved into the container.
func TestMacvlan(t *testing.T) {
	dc := requireCNI(t)
	parent := parentLink(t)
	requireLinkType(t, parent, "macvlan", "mode", "bridge")
	e := newEnv(t)
	prefix, name := subnet(t), "mdxmacv-"+containerdtest.RandHex(4)
	conf := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": %q, "plugins": [{"type": "macvlan", "master": %q, "mode": "bridge",
  "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": "%s.0/24"}]]}}]}`, name, parent, e.ipam, prefix)
	if err := os.WriteFile(filepath.Join(e.confDir, name+".conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	checkParentAttachment(t, dc, e, name, prefix, "macvlan mode bridge")
}

func checkParentAttachment(t *testing.T, dc *containerd.Client, e *testEnv, name, prefix, linkDetail string) {
	t.Helper()
	ctx := context.Background()
	id, pid := startContainer(t, dc, "sleep", "1h")
	a := Attachment{Network: name, ContainerID: id, NetNS: fmt.Sprintf("/proc/%d/ns/net", pid), IfName: "eth0"}
	res, err := e.client.Add(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPs) != 1 || !strings.HasPrefix(res.IPs[0].String(), prefix+".") {
		t.Fatalf("result %+v", res)
	}
	if _, out := execIn(t, dc, id, "/task", "addrs"); !strings.Contains(out, "eth0 "+res.IPs[0].String()) {
		t.Errorf("inside: %q, want eth0 %s", out, res.IPs[0])
	}
	link := run(t, "nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", pid), "ip", "-d", "link", "show", "eth0")
	if !strings.Contains(link, linkDetail) {
		t.Errorf("eth0 is not %q: %s", linkDetail, link)
	}
	if err := e.client.Del(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, out := execIn(t, dc, id, "/task", "addrs"); strings.Contains(out, "eth0") {
		t.Errorf("eth0 left after DEL: %q", out)
	}
	if got := e.reserved(t, name); len(got) != 0 {
		t.Errorf("addresses left reserved: %v", got)
	}
}

func TestUnknownNetwork(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for the cache dir layout only")
	}
	e := newEnv(t)
	_, err := e.client.Add(context.Background(), Attachment{Network: "nope", ContainerID: "x", NetNS: "/proc/1/ns/net", IfName: "eth0"})
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Add on an unknown network = %v", err)
	}
}
