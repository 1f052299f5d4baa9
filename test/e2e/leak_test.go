package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/status"
)

// Slack over the warmed-up baseline: timers and a request or two in flight.
// A leak of one goroutine or one file per task shows up as 40.
const (
	leakGoroutineSlack = 8
	leakFileSlack      = 2
	leakSettleTimeout  = 30 * time.Second
)

// TestNoLeaks runs tasks through every ending (finished, failed, killed)
// and checks that the executor's goroutines and open files come back to what
// they were before. HTTP keep-alive connections to dockerd are left out: the
// pool keeps up to a few dozen idle ones after a burst, by design.
func TestNoLeaks(t *testing.T) {
	t.Parallel()
	h := start(t, config{})

	round := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			id := fmt.Sprintf("%s-%02d", prefix, i)
			switch i % 3 {
			case 0:
				h.launch(id, args("echo", "hi"))
			case 1:
				h.launch(id, args("exit", "3"))
			case 2:
				h.launch(id, args("sleep", "1h"))
			}
		}
		for i := range n {
			id := fmt.Sprintf("%s-%02d", prefix, i)
			switch i % 3 {
			case 0:
				h.waitState(id, mesos.TASK_FINISHED)
			case 1:
				h.waitState(id, mesos.TASK_FAILED)
			case 2:
				h.waitState(id, mesos.TASK_RUNNING)
				h.la.Kill(id, nil)
				h.waitState(id, mesos.TASK_KILLED)
			}
		}
		h.waitNoContainers()
	}

	// The first tasks create what the executor keeps for good (clients,
	// the events stream, pools).
	round("warmup", 6)
	baseG, baseProfile := h.goroutines()
	baseF := h.openFiles()

	round("load", 60)
	deadline := time.Now().Add(leakSettleTimeout)
	for {
		g, profile := h.goroutines()
		f := h.openFiles()
		if g <= baseG+leakGoroutineSlack && f <= baseF+leakFileSlack {
			t.Logf("goroutines %d (baseline %d), open files %d (baseline %d)", g, baseG, f, baseF)
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("after 60 more tasks: %d goroutines (baseline %d) and %d open files (baseline %d), not back within %v",
				g, baseG, f, baseF, leakSettleTimeout)
			t.Logf("baseline goroutines:\n%s", baseProfile)
			t.Logf("goroutines now:\n%s", profile)
			t.Logf("open files now: %v", h.fileLinks())
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitNoContainers waits until the executor has removed every container of
// the test (they go RemoveDelay after the exit).
func (h *harness) waitNoContainers() {
	h.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		cs := h.containers(nil)
		if len(cs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%d containers still there %v after their tasks ended", len(cs), waitTimeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// goroutineHeader is the first line of a debug=1 goroutine profile; each
// stack then starts with "<count> @ <pcs>".
var (
	goroutineHeader = regexp.MustCompile(`^goroutine profile: total (\d+)`)
	goroutineStack  = regexp.MustCompile(`^(\d+) @`)
)

// goroutines returns the executor's goroutine count, less those that serve
// idle HTTP keep-alive connections, and the profile it read.
func (h *harness) goroutines() (int, string) {
	h.t.Helper()
	profile := getStatus(h.t, filepath.Join(h.sandbox, status.SocketName), "/debug/pprof/goroutine?debug=1")
	lines := strings.Split(profile, "\n")
	m := goroutineHeader.FindStringSubmatch(lines[0])
	if m == nil {
		h.t.Fatalf("unexpected goroutine profile:\n%s", profile)
	}
	total, _ := strconv.Atoi(m[1])
	// Stacks are separated by blank lines: the count line, then frames.
	count := 0
	for _, line := range lines[1:] {
		switch {
		case goroutineStack.MatchString(line):
			count, _ = strconv.Atoi(goroutineStack.FindStringSubmatch(line)[1])
		case strings.Contains(line, "net/http.(*persistConn).readLoop"),
			strings.Contains(line, "net/http.(*persistConn).writeLoop"):
			total -= count
			count = 0 // one stack holds one of them at most
		}
	}
	return total, profile
}

// openFiles counts the executor's open descriptors other than sockets (the
// HTTP pools') and anonymous inodes (epoll, eventfd, pipes of the runtime).
func (h *harness) openFiles() int {
	n := 0
	for _, l := range h.fileLinks() {
		if !strings.HasPrefix(l, "socket:") && !strings.HasPrefix(l, "anon_inode:") && !strings.HasPrefix(l, "pipe:") {
			n++
		}
	}
	return n
}

// fileLinks returns what each of the executor's descriptors points to.
func (h *harness) fileLinks() []string {
	h.t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", h.cmd.Process.Pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		h.t.Fatalf("read the executor's descriptors: %v", err)
	}
	var out []string
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil {
			out = append(out, l)
		}
	}
	return out
}
