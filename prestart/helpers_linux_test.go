package prestart

import (
	"bytes"
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

	"github.com/mdx-executor/mdx/cni"
	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
	"github.com/mdx-executor/mdx/gate"
	"github.com/mdx-executor/mdx/hooks"
)

func gateBinary(t testing.TB) string { return containerdtest.ExecutorBinary(t) }

// requireAll skips (fails with CI=true) without Docker, root or the CNI
// plugins.
func requireAll(t testing.TB) *containerd.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping a test with real Docker, CNI plugins and hooks")
	}
	missing := ""
	if os.Geteuid() != 0 {
		missing = "root"
	} else if _, err := os.Stat(filepath.Join(cni.DefaultBinDir, "bridge")); err != nil {
		missing = "the CNI reference plugins in " + cni.DefaultBinDir + " (make test installs containernetworking-plugins)"
	}
	if missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("missing %s (CI=true, so this is a failure)", missing)
		}
		t.Skipf("missing %s", missing)
	}
	return containerdtest.Docker(t)
}

// rig is one test's executor-side setup: gates, a CNI conf dir with one
// bridge network, a hooks dir and the launcher over them.
type rig struct {
	dc       *containerd.Client
	gates    *gate.Manager
	cni      *cni.Client
	launcher *Launcher
	hooksDir string
	network  string
	bridge   string
	prefix   string
	ipam     string
}

func newRig(t testing.TB, hookTimeout time.Duration) *rig {
	t.Helper()
	dc := requireAll(t)
	dir := t.TempDir()
	r := &rig{dc: dc, hooksDir: filepath.Join(dir, "hooks"), ipam: filepath.Join(dir, "ipam"),
		network: "mdxps-" + containerdtest.RandHex(4), bridge: "mdxbr" + containerdtest.RandHex(4)}
	n, _ := rand.Int(rand.Reader, big.NewInt(250))
	r.prefix = fmt.Sprintf("10.99.%d", n.Int64()+2)
	confDir := filepath.Join(dir, "net.d")
	for _, d := range []string{confDir, filepath.Join(r.hooksDir, string(hooks.PreStart))} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": %q, "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": "%s.0/24"}]]}},
  {"type": "firewall", "backend": "iptables"}]}`, r.network, r.bridge, r.ipam, r.prefix)
	if err := os.WriteFile(filepath.Join(confDir, "10-test.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", r.bridge).Run() })
	var err error
	if r.gates, err = gate.New(gate.Config{Dir: filepath.Join(dir, "gates"), Binary: gateBinary(t)}); err != nil {
		t.Fatal(err)
	}
	if r.cni, err = cni.New(cni.Config{ConfDir: confDir, CacheDir: filepath.Join(dir, "cnicache")}, testReaper, nil); err != nil {
		t.Fatal(err)
	}
	hr, err := hooks.New(hooks.Config{Dir: r.hooksDir, Timeout: hookTimeout}, testReaper, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.launcher = New(dc, r.cni, hr, nil)
	return r
}

func (r *rig) hook(t testing.TB, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(r.hooksDir, string(hooks.PreStart), name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// launched is a gated, started container.
type launched struct {
	id   string
	pid  int
	gate *gate.Gate
	out  bytes.Buffer
	done chan struct{}
	task Task
}

// start creates and starts a gated container running cmd on the test image
// with Docker network none, as the manager would.
func (r *rig) start(t testing.TB, taskID string, cmd ...string) *launched {
	t.Helper()
	l, err := r.startE(t, taskID, cmd...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// startE is start for any goroutine: it reports errors instead of failing t
// (only t.Cleanup, which is goroutine-safe, is used).
func (r *rig) startE(t testing.TB, taskID string, cmd ...string) (*launched, error) {
	ctx := context.Background()
	img := containerdtest.TaskImage(t, r.dc)
	name := "mdx-prestarttest-" + containerdtest.RandHex(6)
	spec := containerd.Spec{Name: name, Image: img, Cmd: cmd, Network: "none", Init: true,
		Labels: map[string]string{"io.mdx.test": "prestart"}}
	g, err := r.gates.Prepare(name)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = g.Cleanup() })
	imgCfg, err := r.dc.ImageConfig(ctx, img)
	if err != nil {
		return nil, err
	}
	if err := g.Wrap(&spec, imgCfg); err != nil {
		return nil, err
	}
	id, err := r.dc.Create(ctx, spec)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = r.dc.RemoveContainer(context.Background(), id, true) })
	if err := r.dc.Start(ctx, id); err != nil {
		return nil, err
	}
	info, err := r.dc.Inspect(ctx, id)
	if err != nil {
		return nil, err
	}
	l := &launched{id: id, pid: info.Pid, gate: g, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		_ = r.dc.Logs(context.Background(), id, time.Time{}, &l.out, &l.out)
	}()
	l.task = Task{TaskID: taskID, ContainerID: id, Pid: info.Pid, Image: img, DockerNetwork: "none",
		Networks: []string{r.network}, Labels: map[string]string{"app.name": "web-" + taskID}}
	return l, nil
}

func (l *launched) wait(t testing.TB, dc *containerd.Client) (string, int) {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("container %s still running", l.id)
	}
	for range 50 {
		info, err := dc.Inspect(context.Background(), l.id)
		if err != nil {
			t.Fatal(err)
		}
		if !info.Running {
			return l.out.String(), info.ExitCode
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("container %s: output ended but still running", l.id)
	return "", 0
}

func (r *rig) reserved(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(r.ipam, r.network))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var ips []string
	for _, e := range entries {
		if strings.Count(e.Name(), ".") == 3 {
			ips = append(ips, e.Name())
		}
	}
	return ips
}

// bridgePorts returns the number of ports left on the rig's bridge, after
// waiting up to 30s for it to drop to zero: the veth of an exited container
// goes with its namespace, which the kernel tears down asynchronously.
func (r *rig) bridgePorts(t testing.TB) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		entries, err := os.ReadDir("/sys/class/net/" + r.bridge + "/brif")
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if len(entries) == 0 || time.Now().After(deadline) {
			return len(entries)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
