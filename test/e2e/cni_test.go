package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/agent/localagent"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
	"github.com/mdx-executor/mdx/internal/testenv"
)

// cniPolicy writes a root-owned policy file that points the executor at a CNI
// configuration directory holding one bridge + host-local network, and
// allows it. It returns the policy file's path and the network's name.
func cniPolicy(t *testing.T, prefix string) (policyFile, network string) {
	t.Helper()
	for _, p := range []string{"bridge", "host-local", "firewall"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", p)); err != nil {
			testenv.SkipOrFail(t, "the CNI reference plugins are not installed (make cni-plugins): %v", err)
		}
	}
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.SkipOrFail(t, "iproute2's ip is not installed: %v", err)
	}
	dir := t.TempDir()
	confDir := filepath.Join(dir, "net.d")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	suffix := containerdtest.RandHex(3)
	network, br := "e2e-"+suffix, "mdxe2e"+suffix
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": "%s.0/24"}]]}},
    {"type": "firewall", "backend": "iptables"}
  ]
}`, network, br, filepath.Join(dir, "ipam"), prefix)
	if err := os.WriteFile(filepath.Join(confDir, network+".conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", br).Run() })
	policyFile = filepath.Join(dir, "executor.json")
	body := fmt.Sprintf(`{"cni-conf-dir": %q, "cni-bin-dir": "/usr/lib/cni", "allowed-networks": [%q]}`, confDir, network)
	if err := os.WriteFile(policyFile, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return policyFile, network
}

// A task on a CNI bridge network gets its address from CNI before its command
// runs: the address is in TASK_RUNNING's network_infos under the network's
// name, the task sees it on its own interface, a second task reaches the
// first over it (HTTP health check through the netns), and after the end
// CNI DEL leaves no veth behind.
func TestCNITaskThroughTheExecutor(t *testing.T) {
	policyFile, network := cniPolicy(t, "10.99.201")
	h := start(t, config{env: map[string]string{"EXECUTOR_POLICY_FILE": policyFile}})

	labels := args("addrs", "--", "serve", "8080")
	labels["network.cni"] = network
	labels["health.type"] = "http"
	labels["health.port"] = "8080"
	labels["health.interval"] = "200ms"
	h.launch("cni-web", labels)
	running := h.waitState("cni-web", mesos.TASK_RUNNING)
	var ip string
	for _, ni := range running.GetContainerStatus().GetNetworkInfos() {
		if ni.GetName() == network && len(ni.IPAddresses) > 0 {
			ip = ni.IPAddresses[0].GetIPAddress()
		}
	}
	if !strings.HasPrefix(ip, "10.99.201.") {
		t.Fatalf("TASK_RUNNING network_infos = %v; want an address of network %s in 10.99.201.0/24", running.GetContainerStatus().GetNetworkInfos(), network)
	}
	h.waitOutput("cni-web", ip+"/24")

	// The health check over the CNI interface passes.
	if _, err := h.waitUpdate(func(u localagent.Update) bool {
		return u.Status.TaskID.Value == "cni-web" && u.Status.Healthy != nil && *u.Status.Healthy
	}); err != nil {
		t.Fatalf("no healthy update over the CNI interface: %v", err)
	}

	// A second task on the same network reaches the first.
	peer := args("get", "http://"+ip+":8080/")
	peer["network.cni"] = network
	h.launch("cni-peer", peer)
	if st := h.waitState("cni-peer", mesos.TASK_FINISHED); st.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("peer ended %s: %s", st.GetState(), h.taskFile("cni-peer", "stderr"))
	}
	h.waitOutput("cni-peer", "ok")

	h.la.Kill("cni-web", nil)
	h.waitState("cni-web", mesos.TASK_KILLED)
}

// A CNI network the operator did not allow is refused before any container.
func TestCNINetworkNotAllowed(t *testing.T) {
	policyFile, _ := cniPolicy(t, "10.99.202")
	h := start(t, config{env: map[string]string{"EXECUTOR_POLICY_FILE": policyFile}})
	labels := args("exit", "0")
	labels["network.cni"] = "not-allowed"
	h.launch("cni-bad", labels)
	st := h.waitState("cni-bad", mesos.TASK_FAILED)
	if st.GetReason() != mesos.REASON_TASK_INVALID || !strings.Contains(st.GetMessage(), "allowed-networks") {
		t.Errorf("update %s %q; want REASON_TASK_INVALID naming allowed-networks", st.GetReason(), st.GetMessage())
	}
	if n := len(h.taskContainers("cni-bad")); n != 0 {
		t.Errorf("%d containers were created for a refused task", n)
	}
}
