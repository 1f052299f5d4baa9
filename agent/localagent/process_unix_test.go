//go:build unix

package localagent

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestStartExecutor(t *testing.T) {
	a := start(t, Options{})
	dir := t.TempDir()
	bin := filepath.Join(dir, "fake-executor")
	script := "#!/bin/sh\necho \"pid=$MESOS_SLAVE_PID\"\necho \"cwd=$(pwd)\"\nexec sleep 30\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	sandbox := filepath.Join(dir, "sandbox")
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd, err := a.StartExecutor(ctx, bin, sandbox, nil, pw, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(pr)
	var got []string
	for len(got) < 2 && lines.Scan() {
		got = append(got, lines.Text())
	}
	if want := []string{"pid=slave(1)@" + a.Endpoint(), "cwd=" + sandbox}; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("executor printed %q, want %q", got, want)
	}
	if pgid, err := syscall.Getpgid(cmd.Process.Pid); err != nil || pgid != cmd.Process.Pid {
		t.Errorf("process group %d (%v), want its own %d", pgid, err, cmd.Process.Pid)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	cancel()
	if err := cmd.Wait(); err == nil {
		t.Error("Wait after cancel returned nil, want the kill")
	}
	pw.Close()
}
