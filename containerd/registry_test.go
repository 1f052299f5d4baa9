package containerd_test

import (
	"context"
	"errors"
	"github.com/mdx-executor/mdx/internal/testenv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
	"github.com/mdx-executor/mdx/containerd/registrytest"
)

// registryEnv is one test's registry, its client with the config file, and
// everything that must never contain the password.
type registryEnv struct {
	reg    *registrytest.Registry
	client *containerd.Client
	log    *testenv.SyncBuffer
}

func requireRegistry(t *testing.T) *registrytest.Registry {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: needs a registry and Docker")
	}
	containerdtest.Docker(t)
	return registrytest.Start(t)
}

// pullClient is a client of its own (not the shared one) whose log the test
// reads, with the given docker config and stall timeout. When the test ends
// it checks that the password appears in none of the client's output.
func pullClient(t *testing.T, reg *registrytest.Registry, configPath string, stall time.Duration) (*containerd.Client, *testenv.SyncBuffer) {
	t.Helper()
	buf := &testenv.SyncBuffer{}
	log := logrus.New()
	log.SetOutput(buf)
	log.SetLevel(logrus.DebugLevel)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, err := containerd.New(ctx, containerd.Config{DockerConfigPath: configPath, PullStallTimeout: stall}, log.WithField("test", t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		noSecret(t, reg, "the client's log", buf.String())
	})
	return c, buf
}

// noSecret fails t when s holds the registry password.
func noSecret(t *testing.T, reg *registrytest.Registry, what, s string) {
	t.Helper()
	if strings.Contains(s, reg.Password) {
		t.Errorf("%s contains the registry password:\n%s", what, s)
	}
}

// pushed pushes a fresh image to repo on host (the registry or a proxy in
// front of it) with payload bytes, and removes whatever the test pulls of
// it when the test ends.
func pushed(t *testing.T, reg *registrytest.Registry, c *containerd.Client, host, repo string, payload int) string {
	t.Helper()
	ref := host + "/" + repo + ":v1"
	reg.PushImage(t, c, ref, payload)
	t.Cleanup(func() { registrytest.RemoveImage(t, ref) })
	return ref
}

func TestRegistryPrivatePull(t *testing.T) {
	t.Parallel()
	reg := requireRegistry(t)
	c, _ := pullClient(t, reg, registrytest.DockerConfig(t, reg.Host, reg.User, reg.Password), 0)
	repo := "mdx-test/private-" + randHex(4)
	ref := pushed(t, reg, c, reg.Host, repo, 16<<10)

	// Without credentials the registry refuses, with its own reason.
	anon, _ := pullClient(t, reg, "", 0)
	if err := anon.EnsureImage(t.Context(), ref, false); err == nil || !strings.Contains(err.Error(), "no basic auth credentials") {
		t.Errorf("anonymous pull error = %v; want the registry's refusal", err)
	}

	res, err := c.EnsureImageFor(t.Context(), "private-1", ref, false)
	if err != nil {
		t.Fatalf("EnsureImageFor with credentials: %v", err)
	}
	if !res.Pulled || res.LocalFallback {
		t.Errorf("result = %+v; want Pulled", res)
	}
	if got := reg.ManifestGets(repo); got != 1 {
		t.Errorf("registry served %d manifest GETs; want 1", got)
	}
	// Present now: no second pull.
	if res, err := c.EnsureImageFor(t.Context(), "private-2", ref, false); err != nil || res.Pulled {
		t.Errorf("second EnsureImageFor = %+v, %v; want the local image, no pull", res, err)
	}
	if got := reg.ManifestGets(repo); got != 1 {
		t.Errorf("registry served %d manifest GETs after a present image; want still 1", got)
	}

	o := newOwner()
	id := run(t, c, o.spec(ref, "private", "echo", "from-the-registry"))
	if info := waitExited(t, c, id, 30*time.Second); info.ExitCode != 0 {
		t.Errorf("container of the pulled image exited %d; want 0", info.ExitCode)
	}
}

func TestRegistryFailuresCarryTheRegistryReason(t *testing.T) {
	t.Parallel()
	reg := requireRegistry(t)
	good, _ := pullClient(t, reg, registrytest.DockerConfig(t, reg.Host, reg.User, reg.Password), 0)
	repo := "mdx-test/fail-" + randHex(4)
	ref := pushed(t, reg, good, reg.Host, repo, 1<<10)
	wrongPassword := "wrong-" + reg.Password[:4] + "-" + randHex(6)
	wrong, wrongLog := pullClient(t, reg, registrytest.DockerConfig(t, reg.Host, reg.User, wrongPassword), 0)

	cases := []struct {
		name   string
		c      *containerd.Client
		ref    string
		reason string
	}{
		{"wrong credentials", wrong, ref, "unauthorized"},
		{"unknown tag", good, reg.Host + "/" + repo + ":nope", "manifest unknown"},
		{"unknown image", good, reg.Host + "/mdx-test/none-" + randHex(4) + ":v1", "unknown"},
		{"bad reference", good, "mdx-test/Bad:x", "must be lowercase"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := tc.c.EnsureImageFor(t.Context(), "fail", tc.ref, false)
			d := time.Since(start)
			if err == nil {
				t.Fatalf("EnsureImageFor(%s) succeeded", tc.ref)
			}
			t.Logf("%s after %v: %v", tc.name, d.Round(time.Millisecond), err)
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q lacks the registry's reason %q", err, tc.reason)
			}
			if d > 10*time.Second {
				t.Errorf("failure took %v; want it fast (no retries)", d)
			}
			noSecret(t, reg, "the error", err.Error())
			if strings.Contains(err.Error(), wrongPassword) {
				t.Errorf("error %q echoes the configured (wrong) password", err)
			}
		})
	}
	if strings.Contains(wrongLog.String(), wrongPassword) {
		t.Errorf("client log echoes the configured password:\n%s", wrongLog.String())
	}
	if id := registrytest.ImageID(t, ref); id != "" {
		t.Errorf("image %s present after only failed pulls", ref)
	}
}

func TestRegistryDownFailsFast(t *testing.T) {
	t.Parallel()
	reg := requireRegistry(t)
	c, _ := pullClient(t, reg, registrytest.DockerConfig(t, reg.Host, reg.User, reg.Password), 0)
	ref := pushed(t, reg, c, reg.Host, "mdx-test/down-"+randHex(4), 1<<10)
	reg.Stop()
	start := time.Now()
	_, err := c.EnsureImageFor(t.Context(), "down", ref, false)
	d := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("pull from a stopped registry error = %v; want connection refused", err)
	}
	if d > 10*time.Second {
		t.Errorf("pull from a stopped registry took %v; want it fast", d)
	}
}

func TestRegistryConcurrentCallersShareOnePull(t *testing.T) {
	t.Parallel()
	reg := requireRegistry(t)
	c, _ := pullClient(t, reg, registrytest.DockerConfig(t, reg.Host, reg.User, reg.Password), 0)
	repo := "mdx-test/fifty-" + randHex(4)
	ref := pushed(t, reg, c, reg.Host, repo, 256<<10)
	if got := reg.ManifestGets(repo); got != 0 {
		t.Fatalf("%d manifest GETs before any pull", got)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	errs := make([]error, 50)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { _, errs[i] = c.EnsureImageFor(ctx, "task-"+randHex(2), ref, false) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
	if got := reg.ManifestGets(repo); got != 1 {
		t.Errorf("50 concurrent callers made the registry serve %d manifest GETs; want exactly 1 pull", got)
	}
	if p := c.Pulls(); len(p) != 0 {
		t.Errorf("Pulls() after every caller returned = %+v; want none", p)
	}
}

// slowPull sets up an image behind a throttled proxy.
func slowPull(t *testing.T, payload int, rate int64) (*registrytest.Registry, *registrytest.Proxy, *containerd.Client, string) {
	t.Helper()
	reg := requireRegistry(t)
	proxy := registrytest.NewProxy(t, reg.Host)
	c, _ := pullClient(t, reg, registrytest.DockerConfig(t, proxy.Host, reg.User, reg.Password), 0)
	ref := pushed(t, reg, c, proxy.Host, "mdx-test/slow-"+randHex(4), payload)
	proxy.SetRate(rate)
	return reg, proxy, c, ref
}

// waitPullProgress waits until the pull of the image shows downloaded bytes
// and returns its snapshot.
func waitPullProgress(t *testing.T, c *containerd.Client) containerd.PullInfo {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if p := c.Pulls(); len(p) == 1 && p[0].BytesDone > 0 {
			return p[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pull progress within 60s: %+v", c.Pulls())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRegistryWaiterLeavesSlowPullGoesOn(t *testing.T) {
	t.Parallel()
	_, proxy, c, ref := slowPull(t, 2<<20, 64<<10)

	leaverCtx, leave := context.WithCancel(t.Context())
	leaver := make(chan error, 1)
	stayer := make(chan error, 1)
	go func() { _, err := c.EnsureImageFor(leaverCtx, "killed-task", ref, false); leaver <- err }()
	go func() { _, err := c.EnsureImageFor(t.Context(), "staying-task", ref, false); stayer <- err }()
	info := waitPullProgress(t, c)
	t.Logf("pull in progress: %+v", info)
	if info.Waiters != 2 || info.BytesTotal < 2<<20 {
		t.Errorf("pull info %+v; want 2 waiters and a total of at least the 2 MiB payload", info)
	}

	leave()
	start := time.Now()
	select {
	case err := <-leaver:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("leaving caller got %v; want context.Canceled", err)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("leaving caller returned after %v; want at once", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a caller whose context ended is still waiting for the pull")
	}
	if p := c.Pulls(); len(p) != 1 || len(p[0].TaskIDs) != 1 || p[0].TaskIDs[0] != "staying-task" {
		t.Fatalf("Pulls() after one caller left = %+v; want the pull going on for staying-task", p)
	}
	select {
	case err := <-stayer:
		t.Fatalf("the remaining caller returned %v while the pull is throttled", err)
	default:
	}
	proxy.SetRate(0)
	select {
	case err := <-stayer:
		if err != nil {
			t.Fatalf("remaining caller: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the remaining caller's pull did not complete")
	}
	if registrytest.ImageID(t, ref) == "" {
		t.Error("image absent after the shared pull completed")
	}
}

func TestRegistryLastWaiterLeavingCancelsPull(t *testing.T) {
	t.Parallel()
	_, proxy, c, ref := slowPull(t, 2<<20, 32<<10)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := c.EnsureImageFor(ctx, "only-task", ref, false); done <- err }()
	waitPullProgress(t, c)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("caller got %v; want context.Canceled", err)
	}
	// The pull is gone from the executor and lets go of the registry.
	deadline := time.Now().Add(20 * time.Second)
	for len(c.Pulls()) != 0 || proxy.Open() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("20s after the last caller left: Pulls() = %+v, %d registry connections open; want the pull cancelled", c.Pulls(), proxy.Open())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if registrytest.ImageID(t, ref) != "" {
		t.Error("image present although its only pull was cancelled")
	}
}

func TestRegistryStalledPullFails(t *testing.T) {
	t.Parallel()
	reg := requireRegistry(t)
	proxy := registrytest.NewProxy(t, reg.Host)
	c, _ := pullClient(t, reg, registrytest.DockerConfig(t, proxy.Host, reg.User, reg.Password), 2*time.Second)
	ref := pushed(t, reg, c, proxy.Host, "mdx-test/stall-"+randHex(4), 1<<10)
	proxy.Pause()
	start := time.Now()
	_, err := c.EnsureImageFor(t.Context(), "stalled", ref, false)
	d := time.Since(start)
	if !errors.Is(err, containerd.ErrPullStalled) || !strings.Contains(err.Error(), "stalled") {
		t.Errorf("pull through a paused registry error = %v; want ErrPullStalled saying it stalled", err)
	}
	if d < 2*time.Second || d > 10*time.Second {
		t.Errorf("stalled pull failed after %v; want about the 2s stall timeout", d)
	}
	proxy.SetRate(0)
}

func TestRegistryForcePullRepullsChangedTag(t *testing.T) {
	t.Parallel()
	reg := requireRegistry(t)
	c, _ := pullClient(t, reg, registrytest.DockerConfig(t, reg.Host, reg.User, reg.Password), 0)
	repo := "mdx-test/force-" + randHex(4)
	ref := reg.Host + "/" + repo + ":v1"
	v1 := reg.PushImage(t, c, ref, 1<<10)
	t.Cleanup(func() { registrytest.RemoveImageID(t, v1) })
	if _, err := c.EnsureImageFor(t.Context(), "v1", ref, false); err != nil {
		t.Fatal(err)
	}
	// The tag moves to new content in the registry; locally it stays v1.
	v2 := reg.PushImage(t, c, ref, 2<<10)
	t.Cleanup(func() { registrytest.RemoveImageID(t, v2) })
	registrytest.Tag(t, v1, ref)
	before := reg.ManifestGets(repo)

	if res, err := c.EnsureImageFor(t.Context(), "no-force", ref, false); err != nil || res.Pulled {
		t.Fatalf("EnsureImageFor without force = %+v, %v; want the local image", res, err)
	}
	if got := registrytest.ImageID(t, ref); got != v1 || reg.ManifestGets(repo) != before {
		t.Fatalf("without force: local %s (v1 %s), manifest GETs %d -> %d; want no pull", got, v1, before, reg.ManifestGets(repo))
	}
	res, err := c.EnsureImageFor(t.Context(), "force", ref, true)
	if err != nil || !res.Pulled {
		t.Fatalf("EnsureImageFor with force = %+v, %v; want a pull", res, err)
	}
	if got := registrytest.ImageID(t, ref); got != v2 {
		t.Errorf("after a forced pull the tag is %s; want the registry's new image %s (old %s)", got, v2, v1)
	}

	// A forced pull that fails never falls back to the local copy.
	reg.Stop()
	if _, err := c.EnsureImageFor(t.Context(), "force-down", ref, true); err == nil {
		t.Error("forced pull from a stopped registry succeeded; want the failure although the image is present")
	}
}

// A pull that fails while the image has appeared locally (another pull or an
// import made it) uses the local copy and says so, unless the pull was
// forced.
func TestRegistryFailedPullFallsBackToLocalImageUnlessForced(t *testing.T) {
	t.Parallel()
	reg := requireRegistry(t)
	proxy := registrytest.NewProxy(t, reg.Host)
	c, _ := pullClient(t, reg, registrytest.DockerConfig(t, proxy.Host, reg.User, reg.Password), 2*time.Second)
	ref := pushed(t, reg, c, proxy.Host, "mdx-test/fallback-"+randHex(4), 1<<10)
	proxy.Pause()

	res := make(chan containerd.ImageResult, 1)
	errc := make(chan error, 1)
	go func() {
		r, err := c.EnsureImageFor(t.Context(), "fallback", ref, false)
		res <- r
		errc <- err
	}()
	// While the pull hangs, the image appears locally.
	deadline := time.Now().Add(10 * time.Second)
	for len(c.Pulls()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the pull never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, image := requireDocker(t)
	registrytest.Tag(t, registrytest.ImageID(t, image), ref)

	r, err := <-res, <-errc
	if err != nil {
		t.Fatalf("EnsureImageFor = %v; want the local image after the failed pull", err)
	}
	if !r.LocalFallback || !errors.Is(r.PullError, containerd.ErrPullStalled) {
		t.Fatalf("result = %+v; want LocalFallback with the stall as PullError", r)
	}
	if msg := r.Message(); !strings.Contains(msg, "using the image present locally") || !strings.Contains(msg, "stalled") {
		t.Errorf("Message() = %q; want it to say the local image is used and why", msg)
	}
	if _, err := c.EnsureImageFor(t.Context(), "forced", ref, true); !errors.Is(err, containerd.ErrPullStalled) {
		t.Errorf("forced pull through a paused registry = %v; want the stall, never the local copy", err)
	}
	proxy.SetRate(0)
}
