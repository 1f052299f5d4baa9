package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mdx-executor/mdx/agent"
)

// tokenFDEnv names the descriptor a re-executed executor reads its agent
// token from. It carries a number, never the token.
const tokenFDEnv = "MDX_EXECUTOR_TOKEN_FD"

// maxTokenLen bounds the token. Agent JWTs are a few hundred bytes; the
// bound keeps the whole token within one pipe buffer, so that it can be
// written before the exec with nobody reading yet.
const maxTokenLen = 16 << 10

// selfExe is the running binary, valid even when its file was replaced or
// deleted since the start (an upgrade, a fetcher cache eviction).
const selfExe = "/proc/self/exe"

// takeAuthToken removes the agent's authentication token
// (MESOS_EXECUTOR_AUTHENTICATION_TOKEN) from the process and returns it, to
// be kept only in agent.Config (as agent.Secret).
//
// os.Unsetenv is not enough: /proc/<pid>/environ shows the environment block
// the process was executed with, which unsetenv does not scrub, and anyone
// who may read that file (root in another container sharing the pid
// namespace, a debugging tool, a crash collector) would see the token. So
// when the token is in the environment, the executor executes itself once
// more, same pid and arguments, with an environment without it, and passes
// the token through an inherited pipe whose number is in tokenFDEnv. The
// re-executed process reads the pipe, closes it and carries on; its
// /proc/<pid>/environ never held the token, and neither do the
// environments that children (hooks, probes) inherit.
//
// If the re-exec itself fails, the token is taken from the environment with
// os.Unsetenv and the returned warning says that /proc still shows it.
func takeAuthToken() (token agent.Secret, warning string, err error) {
	if v, ok := os.LookupEnv(agent.TokenEnv); ok {
		// Fresh from the agent. A tokenFDEnv from outside (a framework can
		// set the executor's environment) is ignored and dropped.
		_ = os.Unsetenv(tokenFDEnv)
		if v == "" {
			_ = os.Unsetenv(agent.TokenEnv)
			return "", "", nil
		}
		if len(v) > maxTokenLen {
			_ = os.Unsetenv(agent.TokenEnv)
			return "", "", fmt.Errorf("%s is %d bytes, more than the %d this executor accepts", agent.TokenEnv, len(v), maxTokenLen)
		}
		rerr := reexecWithToken(v, os.Args, os.Environ())
		// Only a failed exec returns here.
		_ = os.Unsetenv(agent.TokenEnv)
		return agent.Secret(v), fmt.Sprintf("could not re-execute without the agent token in the environment (%v); "+
			"it is unset, but /proc/%d/environ still shows it", rerr, os.Getpid()), nil
	}
	fdText, ok := os.LookupEnv(tokenFDEnv)
	if !ok {
		return "", "", nil
	}
	_ = os.Unsetenv(tokenFDEnv)
	t, err := readTokenFD(fdText)
	if err != nil {
		return "", "", fmt.Errorf("%s=%q: %w", tokenFDEnv, fdText, err)
	}
	return agent.Secret(t), "", nil
}

// reexecWithToken replaces the process image with selfExe, args and env
// without the token, and the token in a pipe. It returns only on failure.
func reexecWithToken(token string, args, env []string) error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	r, w := p[0], p[1]
	fail := func(err error) error {
		_ = unix.Close(r)
		_ = unix.Close(w)
		return err
	}
	// Nothing reads before the exec: a write that does not fit the pipe
	// buffer must fail, not block for ever.
	if err := unix.SetNonblock(w, true); err != nil {
		return fail(fmt.Errorf("pipe: %w", err))
	}
	if n, err := unix.Write(w, []byte(token)); err != nil || n != len(token) {
		return fail(fmt.Errorf("write the token into the pipe: wrote %d of %d bytes: %v", n, len(token), err))
	}
	_ = unix.Close(w)
	// The read end is the one descriptor the new image inherits on purpose.
	if _, err := unix.FcntlInt(uintptr(r), unix.F_SETFD, 0); err != nil {
		_ = unix.Close(r)
		return fmt.Errorf("pipe: %w", err)
	}
	err := unix.Exec(selfExe, args, cleanEnv(env, tokenFDEnv+"="+strconv.Itoa(r)))
	_ = unix.Close(r)
	return fmt.Errorf("exec %s: %w", selfExe, err)
}

// cleanEnv returns env without any token variable or token descriptor
// (every copy: an environment can hold a name twice, and getenv sees only
// the first), with extra appended.
func cleanEnv(env []string, extra ...string) []string {
	out := make([]string, 0, len(env)+len(extra))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if name == agent.TokenEnv || name == tokenFDEnv {
			continue
		}
		out = append(out, kv)
	}
	return append(out, extra...)
}

// readTokenFD reads the token from the inherited pipe named by fdText and
// closes it. Only a pipe is accepted, so that a stray number cannot make the
// executor read (and send to the agent) some other file it inherited.
func readTokenFD(fdText string) (string, error) {
	fd, err := strconv.Atoi(fdText)
	if err != nil || fd < 3 {
		return "", errors.New("not a descriptor number above 2")
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", fmt.Errorf("fstat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return "", errors.New("not a pipe")
	}
	unix.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "agent-token")
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenLen+1))
	if err != nil {
		return "", fmt.Errorf("read: %w", err)
	}
	if len(b) > maxTokenLen {
		return "", fmt.Errorf("more than %d bytes", maxTokenLen)
	}
	return string(b), nil
}
