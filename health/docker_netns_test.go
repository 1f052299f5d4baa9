package health_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
	"github.com/mdx-executor/mdx/health"
)

// The tests in this file check that probes run inside the container's own
// network namespace (issue 10, item 5): nothing a task does can point them
// at the host, and a probe of a dead container never reaches the container
// that took its IP.

// inNetns is the message suffix of a probe made in tg's namespace.
func inNetns(tg health.Target) string { return fmt.Sprintf("(network namespace of pid %d)", tg.Pid) }

// TestDockerRedirectToHostLoopback: a bridge container's health endpoint
// redirects to a server the test runs on the host's 127.0.0.1. The probe
// follows it as `curl -L` in the task's namespace would, to the container's
// own 127.0.0.1 where nothing listens, so the check fails as in Mesos and
// the host server gets no request.
func TestDockerRedirectToHostLoopback(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	var hits atomic.Int64
	host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		t.Errorf("the host server got %s %s from the probe", r.Method, r.URL)
	}))
	t.Cleanup(host.Close)

	tg := runContainer(t, c, image, "", "serve", "8080")
	s := supervise(t, c, health.Options{})
	waitHealthy(t, s, tg)

	res := newResults()
	spec := fast(health.HTTP)
	spec.Port, spec.Failures = 8080, 2
	spec.Path = "/redirect?to=" + host.URL + "/steal"
	s.Start(tg, spec, res.report)
	want := fmt.Sprintf("HTTP GET http://127.0.0.1:8080%s %s failed after a redirect to %s/steal: connection refused",
		spec.Path, inNetns(tg), host.URL)
	if r := res.next(t, 10*time.Second); r.Healthy || r.Message != want {
		t.Errorf("report = %+v; want %q", r, want)
	}
	if r := res.next(t, 10*time.Second); !r.Kill {
		t.Errorf("report = %+v; want the kill after 2 failures", r)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the host server got %d requests", n)
	}
	s.Stop(tg.TaskID)
	health.AssertThreadsInOwnNetns(t)
}

// waitHealthy waits for tg's server on port 8080 to answer / through a
// health check of its own, which it then stops.
func waitHealthy(t *testing.T, s *health.Supervisor, tg health.Target) {
	t.Helper()
	up := newResults()
	task := tg
	task.TaskID += "-up"
	spec := fast(health.HTTP)
	spec.Port, spec.Grace = 8080, 20*time.Second
	s.Start(task, spec, up.report)
	defer s.Stop(task.TaskID)
	if r := up.next(t, 20*time.Second); !r.Healthy {
		t.Fatalf("report = %+v; want the server up", r)
	}
}

// TestDockerLoopbackOnlyServer probes a bridge container whose server
// listens on its 127.0.0.1 only: unreachable through the container's IP,
// healthy from inside its namespace.
func TestDockerLoopbackOnlyServer(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	tg := runContainer(t, c, image, "", "serve-local", "8080")
	s := supervise(t, c, health.Options{})
	for _, typ := range []health.Type{health.HTTP, health.TCP} {
		res := newResults()
		task := tg
		task.TaskID += "-" + string(typ)
		spec := fast(typ)
		spec.Port, spec.Grace = 8080, 20*time.Second
		s.Start(task, spec, res.report)
		if r := res.next(t, 20*time.Second); !r.Healthy || !strings.Contains(r.Message, "127.0.0.1:8080") ||
			!strings.Contains(r.Message, inNetns(tg)) {
			t.Errorf("%s report = %+v; want healthy through the namespace", typ, r)
		}
		s.Stop(task.TaskID)
	}
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort(tg.IP, "8080"), time.Second); err == nil {
		conn.Close()
		t.Errorf("%s:8080 answered from the host: the server is not loopback-only, so this test proves nothing", tg.IP)
	}
}

// TestDockerHostileEndpoints: an endpoint that never answers and one that
// sends headers without end cost one probe timeout each.
func TestDockerHostileEndpoints(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	tg := runContainer(t, c, image, "", "serve", "8080")
	s := supervise(t, c, health.Options{})
	waitHealthy(t, s, tg)

	for _, path := range []string{"/hang", "/headers"} {
		res := newResults()
		task := tg
		task.TaskID += path
		spec := fast(health.HTTP)
		spec.Port, spec.Path, spec.Timeout, spec.Failures = 8080, path, 500*time.Millisecond, 2
		start := time.Now()
		s.Start(task, spec, res.report)
		r := res.next(t, 10*time.Second)
		if r.Healthy || !strings.Contains(r.Message, "timed out after 500ms") {
			t.Errorf("%s: report = %+v; want a timeout", path, r)
		}
		r = res.next(t, 10*time.Second)
		// Two probes of 500ms and one interval of 200ms, plus the
		// first probe's jitter of up to 200ms.
		if took := time.Since(start); !r.Kill || took > 3*time.Second {
			t.Errorf("%s: report = %+v after %v; want the kill after two timeouts", path, r, took)
		}
		s.Stop(task.TaskID)
	}
	health.AssertThreadsInOwnNetns(t)
}

// TestDockerReusedIP: a container on a user-defined network is probed, dies,
// and a new container takes its IP and port. The old check keeps probing the
// dead container's namespace, so it fails and the new container gets no
// probe.
func TestDockerReusedIP(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	api := dockerAPI(t)
	netName, ip := userNetwork(t, api)

	old := runFixedIP(t, c, api, image, netName, ip)
	s := supervise(t, c, health.Options{})
	res := newResults()
	spec := fast(health.HTTP)
	spec.Port, spec.Grace, spec.Failures = 8080, 20*time.Second, 1000
	s.Start(old, spec, res.report)
	want := fmt.Sprintf("HTTP GET http://127.0.0.1:8080/ %s returned 200", inNetns(old))
	if r := res.next(t, 20*time.Second); !r.Healthy || r.Message != want {
		t.Fatalf("report = %+v; want %q", r, want)
	}

	if err := c.Kill(t.Context(), old.ContainerID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	if err := api.ContainerRemove(t.Context(), old.ContainerID, container.RemoveOptions{Force: true}); err != nil {
		t.Fatalf("remove the dead container to free its IP: %v", err)
	}
	if r := res.next(t, 10*time.Second); r.Healthy || !strings.Contains(r.Message, "connection refused") {
		t.Errorf("report after the container died = %+v; want connection refused", r)
	}

	taker := runFixedIP(t, c, api, image, netName, ip)
	url := fmt.Sprintf("http://%s/", net.JoinHostPort(ip, "8080"))
	waitGet(t, url) // the new container serves on the old one's IP and port
	time.Sleep(2 * time.Second)
	if last, ok := s.Last(old.TaskID); !ok || last.Healthy || !strings.Contains(last.Message, "connection refused") {
		t.Errorf("Last() = %+v; want the old container's probe still refused", last)
	}
	res.none(t, 0)
	if n := getBody(t, fmt.Sprintf("http://%s/requests", net.JoinHostPort(ip, "8080"))); n != "1" {
		t.Errorf("the new container %s served %s requests; want 1 (the test's own)", taker.ContainerID[:12], n)
	}
	s.Stop(old.TaskID)
	health.AssertThreadsInOwnNetns(t)
}

// dockerAPI is a Docker SDK client for what package containerd does not do
// (networks, fixed IPs).
func dockerAPI(t *testing.T) *client.Client {
	t.Helper()
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	return api
}

// userNetwork creates a bridge network of the test's own and returns its
// name and an address in it. Docker gives fixed addresses only on a subnet
// the user chose, so it picks a random 10.213.X.0/24, and another one if
// that overlaps an existing network.
func userNetwork(t *testing.T, api *client.Client) (name, ip string) {
	t.Helper()
	name = "mdx-test-health-" + containerdtest.RandHex(4)
	var lastErr error
	for range 8 {
		b, err := hex.DecodeString(containerdtest.RandHex(1))
		if err != nil {
			t.Fatal(err)
		}
		prefix := fmt.Sprintf("10.213.%d", b[0])
		created, err := api.NetworkCreate(t.Context(), name, network.CreateOptions{
			Driver: "bridge",
			Labels: map[string]string{"io.mdx.test": "health"},
			IPAM: &network.IPAM{Config: []network.IPAMConfig{{
				Subnet: prefix + ".0/24", Gateway: prefix + ".1",
			}}},
		})
		if err != nil {
			lastErr = err
			continue
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := api.NetworkRemove(ctx, created.ID); err != nil {
				t.Errorf("remove network %s: %v", name, err)
			}
		})
		return name, prefix + ".10"
	}
	t.Fatalf("create network: %v", lastErr)
	return "", ""
}

// runFixedIP runs `serve 8080` on netName at ip and returns its target as
// the task manager builds it.
func runFixedIP(t *testing.T, c *containerd.Client, api *client.Client, image, netName, ip string) health.Target {
	t.Helper()
	fw, ex, task := "fw-test", "ex-health-"+containerdtest.RandHex(4), "task-"+containerdtest.RandHex(4)
	init := true
	created, err := api.ContainerCreate(t.Context(),
		&container.Config{Image: image, Cmd: []string{"serve", "8080"}, Labels: map[string]string{
			containerd.LabelFramework: fw, containerd.LabelExecutor: ex, containerd.LabelTask: task,
		}},
		&container.HostConfig{NetworkMode: container.NetworkMode(netName), Init: &init},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			netName: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: ip}},
		}},
		nil, containerd.ContainerName(fw, ex, task))
	if err != nil {
		t.Fatalf("create a container at %s: %v", ip, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := api.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true}); err != nil && !client.IsErrNotFound(err) {
			t.Errorf("remove container: %v", err)
		}
	})
	if err := c.Start(t.Context(), created.ID); err != nil {
		t.Fatalf("start: %v", err)
	}
	info, err := c.Inspect(t.Context(), created.ID)
	if err != nil || info.Pid <= 0 || len(info.IPs) == 0 || info.IPs[0] != ip {
		t.Fatalf("inspect = %+v, %v; want a pid and IP %s", info, err, ip)
	}
	return health.Target{TaskID: task, ContainerID: created.ID, IP: ip, Pid: info.Pid}
}

// direct is an HTTP client that ignores the environment's proxies: the
// test talks to a container's IP from the host.
var direct = &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}

// waitGet waits up to 10s for url to answer 200 from the host.
func waitGet(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := direct.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v; want 200 within 10s", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := direct.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDockerOneNetnsFdPerTask: a task's health check and generic check
// share one descriptor of its container's namespace, which Stop releases.
func TestDockerOneNetnsFdPerTask(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	tg := runContainer(t, c, image, "", "serve", "8080")
	s := supervise(t, c, health.Options{})
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", tg.Pid))
	if err != nil {
		t.Fatal(err)
	}
	res := newResults()
	spec := fast(health.HTTP)
	spec.Port, spec.Grace = 8080, 20*time.Second
	s.Start(tg, spec, res.report)
	s.StartCheck(tg, &health.CheckSpec{Type: health.TCP, Port: 8080, Interval: 200 * time.Millisecond, Timeout: time.Second}, nil)
	if r := res.next(t, 20*time.Second); !r.Healthy {
		t.Fatalf("report = %+v; want healthy", r)
	}
	if n := fdsTo(t, link); n != 1 {
		t.Errorf("%d descriptors of %s while the task is checked; want 1", n, link)
	}
	s.Stop(tg.TaskID)
	deadline := time.Now().Add(5 * time.Second)
	for fdsTo(t, link) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors of %s left 5s after Stop", fdsTo(t, link), link)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fdsTo counts the process's descriptors whose link is target, e.g.
// "net:[4026532249]".
func fdsTo(t *testing.T, target string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == target {
			n++
		}
	}
	return n
}
