// Command taskbin is the only program in the executor's test and demo images,
// installed there as /task and as /bin/sh. Images are imported from a tar with
// no registry and no libc (see containerd.Client.ImportBinaryImage), so it is
// stdlib-only and built with CGO_ENABLED=0.
//
// Run as sh with "-c STRING", it splits STRING on whitespace and runs that, so
// Mesos shell commands such as `/bin/sh -c "exit 3"` work; there is no other
// shell syntax. Otherwise its arguments are the command:
//
//	sleep DUR       sleep (Go duration, or whole seconds); SIGTERM prints "got SIGTERM" and exits 0
//	stubborn DUR    sleep, printing "ignoring SIGTERM" on each SIGTERM
//	spin DUR        burn CPU
//	exit N          exit with status N
//	echo ARGS...    print ARGS to stdout, space-separated
//	stderr ARGS...  print ARGS to stderr
//	env             print the environment, sorted, one variable per line
//	oom             allocate and touch memory in 16 MiB chunks until killed
//	serve PORT      HTTP on :PORT: 200 "ok", or NNN for /status/NNN; /redirect?to=URL
//	                redirects (302), /hang never answers, /headers sends headers
//	                without end, /requests counts the other requests served
//	serve-local PORT  the same, on 127.0.0.1:PORT only
//	orphans N       start N children running "sleep 1s" and do not wait for them
//	burn DUR        burn CPU until this process has used DUR of CPU time (spin counts wall time)
//	alloc MIB       allocate and touch MIB MiB, held until the process ends
//	oomchild        run a child "oom" and wait for it (it is OOM-killed; this one lives on)
//	forkbomb N      start up to N children running "sleep 1h"; print how many started and the error that stopped it
//	flood N         write N bytes to stdout as fast as it can, in lines of 1 KiB
//	addrs           print each interface with its addresses: "eth0 10.99.1.2/24"
//	get URL         HTTP GET URL (5s timeout) and print the body; exit 1 on failure or a non-2xx status
//	cat PATH        print the file at PATH
//	hostile-*       attacks on the executor's files; see hostile.go
//
// Steps separated by "--" run in order: `echo hello -- exit 3`. SIGTERM
// outside a stubborn step prints "got SIGTERM" and exits 0. Anything unknown
// is a usage error: a message on stderr and exit status 2.
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	steps, err := parseArgs(os.Args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "taskbin: %v\n", err)
		os.Exit(2)
	}
	p := &prog{stdout: os.Stdout, stderr: os.Stderr}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	go p.handleSignals(sigs)
	os.Exit(p.run(steps))
}

// step is one command of a chain.
type step struct {
	name string
	args []string
}

// arity returns the number of arguments a command takes (-1: any) and
// whether the command exists.
func arity(name string) (int, bool) {
	if n, ok := hostileArity(name); ok {
		return n, true
	}
	switch name {
	case "sleep", "stubborn", "spin", "burn", "exit", "serve", "serve-local", "orphans", "alloc", "forkbomb", "flood", "get", "cat":
		return 1, true
	case "env", "oom", "oomchild", "addrs":
		return 0, true
	case "echo", "stderr":
		return -1, true
	}
	return 0, false
}

// parseArgs turns the program's argv into steps, validating every step before
// any runs, so a typo fails the container at once rather than after a sleep.
func parseArgs(argv []string) ([]step, error) {
	var args []string
	switch {
	case len(argv) >= 2 && filepath.Base(argv[0]) == "sh" && argv[1] == "-c":
		if len(argv) < 3 {
			return nil, errors.New("sh -c: missing command string")
		}
		args = strings.Fields(argv[2])
	case len(argv) >= 1:
		args = argv[1:]
	}
	if len(args) == 0 {
		return nil, errors.New("usage: task COMMAND [ARGS...] [-- COMMAND [ARGS...]]...")
	}

	var steps []step
	for group := range splitSteps(args) {
		if len(group) == 0 {
			return nil, errors.New("empty step between --")
		}
		s := step{name: group[0], args: group[1:]}
		if err := s.validate(); err != nil {
			return nil, err
		}
		steps = append(steps, s)
	}
	return steps, nil
}

// splitSteps yields the groups of args between "--" separators.
func splitSteps(args []string) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		start := 0
		for i, a := range args {
			if a == "--" {
				if !yield(args[start:i]) {
					return
				}
				start = i + 1
			}
		}
		yield(args[start:])
	}
}

func (s step) validate() error {
	n, ok := arity(s.name)
	if !ok {
		return fmt.Errorf("unknown command %q", s.name)
	}
	if n >= 0 && len(s.args) != n {
		return fmt.Errorf("%s: want %d argument(s), got %d", s.name, n, len(s.args))
	}
	if strings.HasPrefix(s.name, "hostile-") {
		return validateHostile(s)
	}
	switch s.name {
	case "sleep", "stubborn", "spin", "burn":
		if _, err := parseDuration(s.args[0]); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	case "exit":
		if code, err := strconv.Atoi(s.args[0]); err != nil || code < 0 || code > 255 {
			return fmt.Errorf("exit: bad status %q", s.args[0])
		}
	case "serve", "serve-local":
		if port, err := strconv.Atoi(s.args[0]); err != nil || port < 1 || port > 65535 {
			return fmt.Errorf("serve: bad port %q", s.args[0])
		}
	case "orphans", "alloc", "forkbomb":
		if n, err := strconv.Atoi(s.args[0]); err != nil || n < 0 {
			return fmt.Errorf("%s: bad count %q", s.name, s.args[0])
		}
	case "flood":
		if n, err := strconv.ParseInt(s.args[0], 10, 64); err != nil || n < 0 {
			return fmt.Errorf("flood: bad byte count %q", s.args[0])
		}
	}
	return nil
}

// parseDuration accepts a Go duration or, as sleep(1) does, whole seconds.
func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return d, nil
}

// prog runs steps. Its writers are the process's stdout and stderr except in
// unit tests.
type prog struct {
	held           [][]byte // memory from alloc steps, kept until the process ends
	stdout, stderr io.Writer
	// stubborn is set while a stubborn step runs; the signal goroutine reads it.
	stubborn atomic.Bool
}

func (p *prog) handleSignals(sigs <-chan os.Signal) {
	for range sigs {
		if p.stubborn.Load() {
			fmt.Fprintln(p.stdout, "ignoring SIGTERM")
			continue
		}
		fmt.Fprintln(p.stdout, "got SIGTERM")
		os.Exit(0)
	}
}

// run runs the validated steps in order and returns the exit status.
func (p *prog) run(steps []step) int {
	for _, s := range steps {
		switch s.name {
		case "sleep":
			d, _ := parseDuration(s.args[0])
			time.Sleep(d)
		case "stubborn":
			d, _ := parseDuration(s.args[0])
			p.stubborn.Store(true)
			time.Sleep(d)
			p.stubborn.Store(false)
		case "spin":
			d, _ := parseDuration(s.args[0])
			spin(d)
		case "exit":
			code, _ := strconv.Atoi(s.args[0])
			return code
		case "echo":
			fmt.Fprintln(p.stdout, strings.Join(s.args, " "))
		case "stderr":
			fmt.Fprintln(p.stderr, strings.Join(s.args, " "))
		case "env":
			env := os.Environ()
			slices.Sort(env)
			for _, kv := range env {
				fmt.Fprintln(p.stdout, kv)
			}
		case "oom":
			p.oom()
		case "serve", "serve-local":
			addr := ":" + s.args[0]
			if s.name == "serve-local" {
				addr = "127.0.0.1" + addr
			}
			if err := serve(addr); err != nil {
				fmt.Fprintf(p.stderr, "%s: %v\n", s.name, err)
				return 1
			}
		case "burn":
			d, _ := parseDuration(s.args[0])
			burn(d)
		case "alloc":
			n, _ := strconv.Atoi(s.args[0])
			p.alloc(n)
		case "oomchild":
			p.child("oom")
		case "forkbomb":
			n, _ := strconv.Atoi(s.args[0])
			p.forkbomb(n)
		case "addrs", "get", "cat":
			if err := p.netfile(s); err != nil {
				fmt.Fprintf(p.stderr, "%s: %v\n", s.name, err)
				return 1
			}
		case "orphans":
			n, _ := strconv.Atoi(s.args[0])
			if err := p.orphans(n); err != nil {
				fmt.Fprintf(p.stderr, "orphans: %v\n", err)
				return 1
			}
		case "flood":
			n, _ := strconv.ParseInt(s.args[0], 10, 64)
			if err := flood(p.stdout, n); err != nil {
				fmt.Fprintf(p.stderr, "flood: %v\n", err)
				return 1
			}
		default: // hostile-*, which never return unless writing fails
			return p.runHostile(s)
		}
	}
	return 0
}

func spin(d time.Duration) {
	deadline := time.Now().Add(d)
	n := 0
	for time.Now().Before(deadline) {
		n++
	}
	_ = n
}

// oom allocates until the memory cgroup kills the process. Every page is
// written, since untouched pages are never charged.
func (p *prog) oom() {
	const chunk = 16 << 20
	var held [][]byte
	for {
		b := make([]byte, chunk)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		held = append(held, b)
		fmt.Fprintf(p.stdout, "allocated %d MiB\n", len(held)*chunk>>20)
	}
}

func serve(addr string) error {
	var served atomic.Int64 // requests other than /requests
	mux := http.NewServeMux()
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.PathValue("code"))
		if err != nil || code < 100 || code > 999 {
			http.Error(w, "bad status code", http.StatusBadRequest)
			return
		}
		w.WriteHeader(code)
		fmt.Fprintln(w, code)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\n")
		for {
			_, _ = buf.WriteString("X-Endless: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")
			if err := buf.Flush(); err != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	mux.HandleFunc("/requests", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, served.Load())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	})
	count := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/requests" {
			served.Add(1)
		}
		mux.ServeHTTP(w, r)
	})
	return http.ListenAndServe(addr, count)
}

// orphans starts n children and returns without waiting for them, so that
// they outlive this process and are re-parented to PID 1 of the container.
func (p *prog) orphans(n int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for range n {
		cmd := exec.Command(self, "sleep", "1s")
		// Not "sh": the child must not take the sh -c path.
		cmd.Args[0] = "task"
		if err := cmd.Start(); err != nil {
			return err
		}
		fmt.Fprintf(p.stdout, "started orphan %d\n", cmd.Process.Pid)
		_ = cmd.Process.Release()
	}
	return nil
}

// alloc allocates and touches mib MiB in 1 MiB pieces and keeps them.
func (p *prog) alloc(mib int) {
	for range mib {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		p.held = append(p.held, b)
	}
	fmt.Fprintf(p.stdout, "allocated %d MiB\n", mib)
}

// child runs this program with args and reports how it ended.
func (p *prog) child(args ...string) {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(p.stderr, "child: %v\n", err)
		return
	}
	cmd := exec.Command(self, args...)
	cmd.Args[0] = "task"
	err = cmd.Run()
	fmt.Fprintf(p.stdout, "child %v ended: %v\n", args, err)
}

// forkbomb starts up to n children that sleep, until the kernel refuses.
func (p *prog) forkbomb(n int) {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(p.stderr, "forkbomb: %v\n", err)
		return
	}
	started := 0
	for ; started < n; started++ {
		cmd := exec.Command(self, "sleep", "1h")
		cmd.Args[0] = "task"
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
		if err = cmd.Start(); err != nil {
			break
		}
		_ = cmd.Process.Release()
	}
	fmt.Fprintf(p.stdout, "forkbomb: started %d children; stopped by: %v\n", started, err)
}

// burn spins until the process's user+system CPU time reaches d, so that it
// uses d of CPU however busy the machine is.
func burn(d time.Duration) {
	for n := 0; ; n++ {
		if n%(1<<20) == 0 {
			var ru syscall.Rusage
			if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
				return
			}
			if time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) >= d {
				return
			}
		}
	}
}

// floodLine is one line of flood output: 1023 bytes and a newline. Docker's
// log drivers store output line by line, so lines keep its per-line overhead
// realistic.
var floodLine = []byte(strings.Repeat("x", 1023) + "\n")

// flood writes exactly n bytes to w in whole floodLines (the last one cut
// short), so that a test can produce a known volume of output quickly.
func flood(w io.Writer, n int64) error {
	for n > 0 {
		b := floodLine
		if int64(len(b)) > n {
			b = b[len(b)-int(n):]
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		n -= int64(len(b))
	}
	return nil
}

// netfile runs the steps that look at the container from inside: its
// interfaces, a peer over HTTP, a file.
func (p *prog) netfile(s step) error {
	switch s.name {
	case "addrs":
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, ifc := range ifs {
			addrs, err := ifc.Addrs()
			if err != nil {
				return err
			}
			for _, a := range addrs {
				fmt.Fprintf(p.stdout, "%s %s\n", ifc.Name, a)
			}
		}
	case "get":
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(s.args[0])
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return err
		}
		fmt.Fprintln(p.stdout, string(body))
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
	case "cat":
		b, err := os.ReadFile(s.args[0])
		if err != nil {
			return err
		}
		_, _ = p.stdout.Write(b)
	}
	return nil
}
