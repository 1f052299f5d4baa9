package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdx-executor/mdx/cni"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
	"github.com/mdx-executor/mdx/gate"
	"github.com/mdx-executor/mdx/hooks"
	"github.com/mdx-executor/mdx/prestart"
	"github.com/mdx-executor/mdx/reaper"
)

// gateSamples is the number of launches of each kind, before -scale.
const gateSamples = 20

// targetGateAdded is issue 13's bound on what the start gate itself adds to
// a launch, at the median.
const targetGateAdded = 20 * time.Millisecond

// BenchmarkGate measures issue 13's launch cost, in one run and alternating
// the kinds so that all see the same daemon and load:
//
//	plain: create+start of the container the executor makes for a task;
//	gate:  the same behind a start gate (image config, FIFO, wrapped
//	       spec), create+start, inspect, release once the gate listens;
//	full:  the gate plus a CNI bridge attachment and one no-op prestart
//	       hook, i.e. prestart.Launcher.Start up to the release;
//	unlimited: gate, without the task's CPU quota.
//
// The release waits for the gate to listen, so the gate's own start-up (the
// executor binary's package init, some tens of ms of CPU) counts, and runs
// under the task's CPU quota: at the benchmark's cpus 0.01 (1 ms per 100 ms)
// it dominates. The container's CPU until release is printed per kind.
//
// It prints the medians and the differences to plain; the gate's own cost is
// gate - plain (target <= 20 ms). The task manager is not in the loop (it does
// not gate yet), so these are the building blocks' costs, to which the
// manager adds what it adds to a plain launch.
func BenchmarkGate(b *testing.B) {
	s := getSetup(b)
	if _, err := os.Stat(filepath.Join(cni.DefaultBinDir, "bridge")); err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatalf("CNI plugins missing (CI=true): %v", err)
		}
		skip(b, "CNI plugins missing in "+cni.DefaultBinDir+" (make bench installs them)")
	}
	if os.Geteuid() != 0 {
		skip(b, "needs root (network namespaces, hooks owned by root)")
	}
	// Hooks and plugins must be waited for by a reaper, the process's
	// only wait4(-1) loop; it runs only during this benchmark, since the
	// others wait for their executors with exec.Cmd.Wait.
	rp, err := reaper.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	rctx, stopReaper := context.WithCancel(context.Background())
	reaperDone := make(chan struct{})
	go func() { _ = rp.Run(rctx); close(reaperDone) }()
	defer func() { stopReaper(); <-reaperDone }()

	dir := b.TempDir()
	raw := newRawRunner(b, s)
	gates, err := gate.New(gate.Config{Dir: filepath.Join(dir, "gates"), Binary: s.executor})
	if err != nil {
		b.Fatal(err)
	}
	confDir, hooksDir := filepath.Join(dir, "net.d"), filepath.Join(dir, "hooks")
	for _, d := range []string{confDir, filepath.Join(hooksDir, string(hooks.PreStart))} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	br, netName := "mdxbb"+containerdtest.RandHex(4), "mdxbench-"+containerdtest.RandHex(4)
	b.Cleanup(func() { _ = exec.Command("ip", "link", "del", br).Run() })
	conf := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": %q, "plugins": [{"type": "bridge", "bridge": %q,
  "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": "10.99.254.0/24"}]]}}]}`,
		netName, br, filepath.Join(dir, "ipam"))
	if err := os.WriteFile(filepath.Join(confDir, netName+".conflist"), []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hooksDir, string(hooks.PreStart), "10-noop"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		b.Fatal(err)
	}
	cc, err := cni.New(cni.Config{ConfDir: confDir, CacheDir: filepath.Join(dir, "cnicache")}, rp, nil)
	if err != nil {
		b.Fatal(err)
	}
	hr, err := hooks.New(hooks.Config{Dir: hooksDir}, rp, nil)
	if err != nil {
		b.Fatal(err)
	}
	full := prestart.New(s.docker, cc, hr, nil)
	bare := prestart.New(s.docker, nil, nil, nil)

	ctx := context.Background()
	var stops []func()
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	// phases[kind][step] collects the gated launches' step times, to say
	// where the time goes on a loaded host.
	steps := []string{"prepare", "create", "start", "inspect", "prestart"}
	phases := map[string]map[string][]time.Duration{"gate": {}, "full": {}, "unlimited": {}}
	// gateCPU[kind] is the CPU the container used until its release
	// (docker-init and the gate: the executor binary's start-up), read
	// from its cgroup v1 cpuacct where there is one.
	gateCPU := map[string][]time.Duration{}
	// gated launches one gated container through l with networks and
	// returns LAUNCH -> release.
	gated := func(kind, id string, l *prestart.Launcher, networks []string, dockerNet string, unlimited bool) time.Duration {
		last := time.Now()
		mark := func(step string) {
			now := time.Now()
			phases[kind][step] = append(phases[kind][step], now.Sub(last))
			last = now
		}
		spec, err := raw.spec(id, "sleep", "1h")
		if err != nil {
			b.Fatal(err)
		}
		spec.Network = dockerNet
		if unlimited {
			spec.CPUQuota, spec.CPUPeriod = 0, 0
		}
		t0 := time.Now()
		g, err := gates.Prepare(spec.Name)
		if err != nil {
			b.Fatal(err)
		}
		img, err := s.docker.ImageConfig(ctx, spec.Image)
		if err != nil {
			b.Fatal(err)
		}
		if err := g.Wrap(&spec, img); err != nil {
			b.Fatal(err)
		}
		mark("prepare")
		cid, err := s.docker.Create(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		mark("create")
		if err := s.docker.Start(ctx, cid); err != nil {
			b.Fatal(err)
		}
		mark("start")
		info, err := s.docker.Inspect(ctx, cid)
		if err != nil {
			b.Fatal(err)
		}
		mark("inspect")
		task := prestart.Task{TaskID: id, ContainerID: cid, Pid: info.Pid, Image: spec.Image,
			DockerNetwork: dockerNet, Networks: networks}
		res, err := l.Start(ctx, g, task)
		if err != nil {
			b.Fatal(err)
		}
		mark("prestart")
		d := time.Since(t0)
		if b, err := os.ReadFile("/sys/fs/cgroup/cpuacct/docker/" + cid + "/cpuacct.usage"); err == nil {
			if ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
				gateCPU[kind] = append(gateCPU[kind], time.Duration(ns))
			}
		}
		stops = append(stops, func() { _ = l.Stop(context.Background(), g, task, res) })
		return d
	}

	n := count(gateSamples)
	var plainLat, gateLat, fullLat, unlimitedLat []time.Duration
	for i := range n {
		kinds := []func(){
			func() {
				d, err := raw.run(ctx, fmt.Sprintf("plain-%03d", i), "sleep", "1h")
				if err != nil {
					b.Fatal(err)
				}
				plainLat = append(plainLat, d)
			},
			func() {
				gateLat = append(gateLat, gated("gate", fmt.Sprintf("gate-%03d", i), bare, nil, "bridge", false))
			},
			func() {
				fullLat = append(fullLat, gated("full", fmt.Sprintf("full-%03d", i), full, []string{netName}, "none", false))
			},
			func() {
				unlimitedLat = append(unlimitedLat, gated("unlimited", fmt.Sprintf("unl-%03d", i), bare, nil, "bridge", true))
			},
		}
		for k := range kinds { // rotate which kind goes first
			kinds[(i+k)%len(kinds)]()
			time.Sleep(launchPause)
		}
	}
	pm, gm, fm := percentile(plainLat, 50), percentile(gateLat, 50), percentile(fullLat, 50)
	added := gm - pm
	b.ReportMetric(ms(pm), "plain_p50_ms")
	b.ReportMetric(ms(gm), "gate_p50_ms")
	b.ReportMetric(ms(fm), "full_p50_ms")
	b.ReportMetric(ms(added), "gate_added_p50_ms")
	for _, kind := range []string{"gate", "full", "unlimited"} {
		fmt.Printf("\n%s steps, median:", kind)
		for _, st := range steps {
			fmt.Printf(" %s %s;", st, fmtMS(percentile(phases[kind][st], 50)))
		}
		if len(gateCPU[kind]) > 0 {
			fmt.Printf(" container CPU until release %s", fmtMS(percentile(gateCPU[kind], 50)))
		}
	}
	fmt.Printf("\ngate without the task's CPU limit: LAUNCH -> release %s, +%s",
		fmtMS(percentile(unlimitedLat, 50)), fmtMS(percentile(unlimitedLat, 50)-pm))
	fmt.Printf("\nload average %s at the end", loadavg())
	fmt.Printf("\nissue 13, %d launches each: median plain create+start %s; gated (LAUNCH -> release) %s, +%s by the gate (target <= %s: %s); with one no-op hook and a CNI bridge %s, +%s\n",
		n, fmtMS(pm), fmtMS(gm), fmtMS(added), fmtMS(targetGateAdded), verdict(added <= targetGateAdded), fmtMS(fm), fmtMS(fm-pm))
}
