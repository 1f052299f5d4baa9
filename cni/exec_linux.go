package cni

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"golang.org/x/sys/unix"

	"github.com/mdx-executor/mdx/reaper"
)

// pluginPath is the PATH plugins get (portmap and firewall look up
// iptables): the host's standard directories, not the executor's PATH.
const pluginPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Output bounds of one plugin call: a result is small, and a plugin that
// writes without end must not grow the executor.
const (
	maxStdout  = 1 << 20
	maxStderr  = 16 << 10
	drainDelay = time.Second
)

// reaperExec is libcni's invoke.Exec running plugins through the executor's
// reaper. libcni's own RawExec uses exec.Cmd.Run, whose Wait would lose the
// plugin's exit status to the reaper's wait4(-1) loop.
type reaperExec struct {
	r *reaper.Reaper
	version.PluginDecoder
}

var _ invoke.Exec = (*reaperExec)(nil)

func (e *reaperExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

// ExecPlugin runs one plugin. When ctx ends the plugin's process group is
// killed.
func (e *reaperExec) ExecPlugin(ctx context.Context, pluginPath string, stdinData []byte, environ []string) ([]byte, error) {
	cmd := exec.Command(pluginPath)
	cmd.Env = pluginEnv(environ)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			_ = f.Close()
		}
	}
	defer closeAll()
	pipe := func() (*os.File, *os.File, error) {
		r, w, err := os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	inR, inW, err := pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	p, err := e.r.Start(cmd)
	// Our copies of the child's ends go, so that EOF arrives.
	_ = inR.Close()
	_ = outW.Close()
	_ = errW.Close()
	if err != nil {
		return nil, fmt.Errorf("run CNI plugin %s: %w", pluginPath, err)
	}

	go func() {
		_, _ = inW.Write(stdinData)
		_ = inW.Close()
	}()
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = maxStdout, maxStderr
	copied := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(&stdout, outR); copied <- struct{}{} }()
	go func() { _, _ = io.Copy(&stderr, errR); copied <- struct{}{} }()

	status, werr := p.Wait(ctx)
	if werr != nil {
		_ = p.SignalGroup(unix.SIGKILL)
		status, _ = p.Wait(context.WithoutCancel(ctx))
	}
	timer := time.NewTimer(drainDelay)
	for pending := 2; pending > 0; {
		select {
		case <-copied:
			pending--
		case <-timer.C:
			// Something that left the group holds the pipes.
			_ = outR.Close()
			_ = errR.Close()
		}
	}
	timer.Stop()
	if werr != nil {
		return nil, fmt.Errorf("CNI plugin %s killed: %w", pluginPath, werr)
	}
	if status != 0 {
		return nil, pluginErr(status, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// pluginErr turns a failed plugin's output into the CNI error it printed on
// stdout (the spec's error format), as libcni's RawExec does.
func pluginErr(status int, stdout, stderr []byte) error {
	emsg := &types.Error{}
	switch {
	case len(stdout) > 0 && json.Unmarshal(stdout, emsg) == nil && emsg.Msg != "":
	case len(stderr) > 0:
		emsg.Msg = fmt.Sprintf("plugin failed with status %d: %q", status, strings.TrimSpace(string(stderr)))
	default:
		emsg.Msg = fmt.Sprintf("plugin failed with status %d and no message", status)
	}
	return emsg
}

// pluginEnv keeps the CNI_* variables libcni set and drops the rest of the
// executor's environment, which libcni copies in.
func pluginEnv(environ []string) []string {
	env := []string{"PATH=" + pluginPath}
	for _, kv := range environ {
		if strings.HasPrefix(kv, "CNI_") {
			env = append(env, kv)
		}
	}
	return env
}

// limitedBuffer keeps the first max bytes written and drops the rest.
type limitedBuffer struct {
	max int
	buf []byte
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *limitedBuffer) Bytes() []byte { return b.buf }
