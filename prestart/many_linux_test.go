package prestart

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/mdx-executor/mdx/cni"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
)

// Fifty gated tasks launched at once on one bridge, one hook each: every one
// gets its own address, runs after its hook, and everything is released.
func TestManyAtOnce(t *testing.T) {
	const n = 50
	r := newRig(t, 0)
	containerdtest.TaskImage(t, r.dc) // built once, before the goroutines
	r.hook(t, "10-marker", `echo "$MDX_TASK_ID" > "$MDX_ROOTFS/marker"`+"\n")
	ls := make([]*launched, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	ips := map[string]string{}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := r.startE(t, fmt.Sprintf("many-%d", i), "cat", "/marker")
			var res []cni.Result
			if err == nil {
				res, err = r.launcher.Start(context.Background(), l.gate, l.task)
			}
			mu.Lock()
			defer mu.Unlock()
			ls[i] = l
			if err != nil {
				errs = append(errs, fmt.Sprintf("task %d: %v", i, err))
				return
			}
			ip := res[0].IPs[0].Addr().String()
			if other, dup := ips[ip]; dup {
				errs = append(errs, fmt.Sprintf("task %d got %s, already given to %s", i, ip, other))
			}
			ips[ip] = l.task.TaskID
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d launches failed:\n%s", len(errs), n, strings.Join(errs, "\n"))
	}
	for i, l := range ls {
		out, code := l.wait(t, r.dc)
		if code != 0 || strings.TrimSpace(out) != fmt.Sprintf("many-%d", i) {
			t.Errorf("task %d: exit %d, output %q", i, code, out)
		}
		if err := r.launcher.Stop(context.Background(), l.gate, l.task, nil); err != nil {
			t.Errorf("task %d: Stop: %v", i, err)
		}
	}
	if got := r.reserved(t); len(got) != 0 {
		t.Errorf("%d addresses still reserved", len(got))
	}
	if n := r.bridgePorts(t); n != 0 {
		t.Errorf("%d veths left on the bridge", n)
	}
}
