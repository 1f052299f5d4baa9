package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
	"github.com/mdx-executor/mdx/internal/testenv"
)

func TestCleanupCmdFlags(t *testing.T) {
	var out bytes.Buffer
	if err := runCleanupCmd([]string{"-h"}, &out); err != nil {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"--apply", "dry run", "-dangling-images", "-docker-host", "-json"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out.String())
		}
	}
	if err := runCleanupCmd([]string{"--no-such-flag"}, &out); err == nil {
		t.Error("unknown flag: nil error")
	}
	if err := runCleanupCmd([]string{"extra"}, &out); err == nil {
		t.Error("stray argument: nil error")
	}
}

// The operator's sweep against the real daemon, limited to this test's
// framework id so that it cannot touch anything else on the host: the dry
// run lists an owned exited container and a dead executor's running one,
// and not a live executor's or an unlabelled one; --apply removes exactly
// those two.
func TestCleanupCmdDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("real Docker test: skipped under -short")
	}
	c := containerdtest.Docker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "task")
	if err := containerdtest.BuildStatic(ctx, bin, "./test/taskbin"); err != nil {
		t.Fatal(err)
	}
	img := "mdx-test/cleanup-cmd:" + containerdtest.RandHex(6)
	if err := c.ImportBinaryImage(ctx, img, map[string]string{"/task": bin}, []string{`ENTRYPOINT ["/task"]`}); err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the containers' cleanups.
	t.Cleanup(func() { _ = c.DeleteImage(context.Background(), img) })

	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		testenv.SkipOrFail(t, "no boot id: %v", err)
	}
	boot := strings.TrimSpace(string(b))
	fw := "cleanup-cmd-test-" + containerdtest.RandHex(4)
	labels := func(ex, task, bootID string) map[string]string {
		return map[string]string{
			containerd.LabelFramework: fw, containerd.LabelExecutor: ex, containerd.LabelInstance: "i-" + ex,
			containerd.LabelTask: task, containerd.LabelPID: strconv.Itoa(os.Getpid()), containerd.LabelBootID: bootID,
			containerd.LabelCreatedUnix: strconv.FormatInt(time.Now().Unix(), 10),
		}
	}
	run := func(cmd []string, l map[string]string, wait bool) string {
		t.Helper()
		id, err := c.Create(ctx, containerd.Spec{Image: img, Cmd: cmd, Labels: l})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Remove(context.Background(), id) })
		if err := c.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		for wait {
			info, err := c.Inspect(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !info.Running {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		return id
	}
	exited := run([]string{"exit", "3"}, labels("live-ex", "finished-task", boot), true)
	orphan := run([]string{"sleep", "1h"}, labels("dead-ex", "orphan-task", "boot-before-reboot"), false)
	live := run([]string{"sleep", "1h"}, labels("live-ex", "running-task", boot), false)
	foreign := run([]string{"exit", "0"}, map[string]string{"com.example": fw}, true)

	args := []string{"--framework-id", fw, "--min-age", "0s"}
	var out bytes.Buffer
	if err := runCleanupCmd(args, &out); err != nil {
		t.Fatalf("dry run: %v\n%s", err, out.String())
	}
	dry := out.String()
	t.Logf("dry run output:\n%s", dry)
	for _, want := range []string{"ACTION", "would remove", exited[:12], "finished-task", orphan[:12], "orphan-task",
		"rebooted", "dry run: nothing removed"} {
		if !strings.Contains(dry, want) {
			t.Errorf("dry run output lacks %q", want)
		}
	}
	for _, not := range []string{live[:12], foreign[:12]} {
		if strings.Contains(dry, not) {
			t.Errorf("dry run lists %s, which must be left alone", not)
		}
	}
	for _, id := range []string{exited, orphan, live, foreign} {
		if _, err := c.Inspect(ctx, id); err != nil {
			t.Errorf("dry run removed %s: %v", id[:12], err)
		}
	}

	out.Reset()
	if err := runCleanupCmd(append(args, "--json"), &out); err != nil {
		t.Fatalf("--json: %v", err)
	}
	var js cleanupJSON
	if err := json.Unmarshal(out.Bytes(), &js); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out.String())
	}
	kinds := map[string]string{}
	for _, a := range js.Actions {
		kinds[a.ID] = a.Kind
	}
	if !js.DryRun || len(js.Actions) != 2 || kinds[exited] != "container" || kinds[orphan] != "orphan" {
		t.Errorf("--json = %+v; want a dry run with %s as container and %s as orphan", js, exited[:12], orphan[:12])
	}

	out.Reset()
	if err := runCleanupCmd(append(args, "--apply"), &out); err != nil {
		t.Fatalf("--apply: %v\n%s", err, out.String())
	}
	t.Logf("--apply output:\n%s", out.String())
	if strings.Count(out.String(), "removed  ") < 2 {
		t.Errorf("--apply output does not say both were removed:\n%s", out.String())
	}
	for id, wantGone := range map[string]bool{exited: true, orphan: true, live: false, foreign: false} {
		_, err := c.Inspect(ctx, id)
		if gone := containerd.IsNotFound(err); gone != wantGone {
			t.Errorf("after --apply, container %s gone=%v; want %v (err %v)", id[:12], gone, wantGone, err)
		}
	}

	out.Reset()
	if err := runCleanupCmd(append(args, "--dangling-images"), &out); err != nil {
		t.Fatalf("--dangling-images dry run: %v", err)
	}
	if !strings.Contains(out.String(), "nothing to remove") && !strings.Contains(out.String(), "dry run") {
		t.Errorf("--dangling-images output:\n%s", out.String())
	}
}
