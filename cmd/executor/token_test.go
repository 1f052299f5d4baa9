package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mdx-executor/mdx/agent"
)

const testToken = "eyJhbGciOiJIUzI1NiJ9.eyJmaWQiOiJmdyIsImVpZCI6ImV4In0.c2lnbmF0dXJl"

// helperReport is what TestTokenHelperProcess prints.
type helperReport struct {
	Pid      int
	Token    string
	Warning  string
	Err      string
	Environ  string // /proc/self/environ
	ChildEnv string // what a child process inherits
}

// TestTokenHelperProcess is not a test: TestTakeAuthToken runs the test
// binary with MDX_TOKEN_HELPER=1 and this test selected, as os/exec's tests
// use helper processes, and the helper acts as the executor's start.
func TestTokenHelperProcess(t *testing.T) {
	if os.Getenv("MDX_TOKEN_HELPER") != "1" {
		return
	}
	var rep helperReport
	tok, warning, err := takeAuthToken()
	rep.Pid, rep.Token, rep.Warning = os.Getpid(), string(tok), warning
	if err != nil {
		rep.Err = err.Error()
	}
	b, _ := os.ReadFile("/proc/self/environ")
	rep.Environ = string(b)
	out, _ := exec.Command("/bin/sh", "-c", "cat /proc/$$/environ").Output()
	rep.ChildEnv = string(out)
	_ = json.NewEncoder(os.Stdout).Encode(rep)
	os.Exit(0)
}

func runTokenHelper(t *testing.T, env ...string) (helperReport, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTokenHelperProcess$")
	cmd.Env = append(cleanEnv(os.Environ()), "MDX_TOKEN_HELPER=1")
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper: %v\n%s", err, stderr.String())
	}
	var rep helperReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("helper output %q: %v", stdout.String(), err)
	}
	return rep, cmd.Process.Pid
}

// TestTakeAuthToken: the process started with the token in its environment
// re-executes itself (same pid) and ends up with the token in hand, while
// neither its /proc/<pid>/environ nor a child's environment holds it.
func TestTakeAuthToken(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"token", []string{agent.TokenEnv + "=" + testToken}, testToken},
		// Go's getenv takes the last copy; the exec must drop both.
		{"token twice", []string{agent.TokenEnv + "=" + testToken + "-first", agent.TokenEnv + "=" + testToken}, testToken},
		// A framework setting the descriptor variable cannot redirect the read.
		{"descriptor preset by a framework", []string{tokenFDEnv + "=0", agent.TokenEnv + "=" + testToken}, testToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, pid := runTokenHelper(t, tt.env...)
			if rep.Err != "" || rep.Warning != "" {
				t.Fatalf("takeAuthToken: err %q, warning %q", rep.Err, rep.Warning)
			}
			if rep.Token != tt.want {
				t.Errorf("token %q, want %q", rep.Token, tt.want)
			}
			if rep.Pid != pid {
				t.Errorf("pid %d after the re-exec, want %d: the agent watches that pid", rep.Pid, pid)
			}
			if !strings.Contains(rep.Environ, "MDX_TOKEN_HELPER=1") {
				t.Fatalf("environ %q is not the helper's: the check below proves nothing", rep.Environ)
			}
			for what, s := range map[string]string{"/proc/self/environ": rep.Environ, "a child's environment": rep.ChildEnv} {
				if strings.Contains(s, testToken) || strings.Contains(s, agent.TokenEnv) {
					t.Errorf("%s holds the token: %q", what, s)
				}
			}
			if !strings.Contains(rep.ChildEnv, "MDX_TOKEN_HELPER=1") {
				t.Errorf("child environment %q is not inherited: the check proves nothing", rep.ChildEnv)
			}
		})
	}
	t.Run("no token", func(t *testing.T) {
		rep, _ := runTokenHelper(t)
		if rep.Err != "" || rep.Warning != "" || rep.Token != "" {
			t.Errorf("without a token: %+v", rep)
		}
	})
	t.Run("token too large", func(t *testing.T) {
		rep, _ := runTokenHelper(t, agent.TokenEnv+"="+strings.Repeat("x", maxTokenLen+1))
		// Refused (the executor exits 2), and gone from what children get.
		if !strings.Contains(rep.Err, "more than") || strings.Contains(rep.ChildEnv, agent.TokenEnv) {
			t.Errorf("a token over %d bytes: err %q, child env %.200q", maxTokenLen, rep.Err, rep.ChildEnv)
		}
	})
}

func TestCleanEnv(t *testing.T) {
	in := []string{"PATH=/bin", agent.TokenEnv + "=a", "MESOS_FRAMEWORK_ID=fw", agent.TokenEnv + "=b", tokenFDEnv + "=9", agent.TokenEnv + "x=keep"}
	got := cleanEnv(in, "EXTRA=1")
	want := []string{"PATH=/bin", "MESOS_FRAMEWORK_ID=fw", agent.TokenEnv + "x=keep", "EXTRA=1"}
	if !slices.Equal(got, want) {
		t.Errorf("cleanEnv(%q) = %q, want %q", in, got, want)
	}
}

// TestReadTokenFD: only an inherited pipe is read; any other descriptor
// number from the environment is refused.
func TestReadTokenFD(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "notapipe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, fd := range []string{"", "x", "-1", "0", "2", strconv.Itoa(int(f.Fd())), "99999"} {
		if _, err := readTokenFD(fd); err == nil {
			t.Errorf("readTokenFD(%q) accepted", fd)
		}
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(p[1], []byte(testToken)); err != nil {
		t.Fatal(err)
	}
	_ = unix.Close(p[1])
	got, err := readTokenFD(strconv.Itoa(p[0]))
	if err != nil || got != testToken {
		t.Fatalf("readTokenFD(pipe) = %q, %v", got, err)
	}
	if err := unix.Fstat(p[0], new(unix.Stat_t)); err == nil {
		t.Error("the pipe is still open after the read")
	}
}
