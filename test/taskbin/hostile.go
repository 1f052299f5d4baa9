package main

// The hostile-* commands behave as a tenant attacking the executor would:
// they replace every name they can reach in their sandbox (and the names
// where an executor might keep the task's logs) with symlinks to host paths or
// with named pipes, and print enough to force log rotations. They never exit
// on their own; SIGTERM ends them as it ends every other command.
//
//	hostile-symlink TARGET...       replace names with symlinks to the TARGETs (host paths), printing 4 KiB to each stream 4 times a second
//	hostile-fifo                    replace names with FIFOs, some held open for reading, printing a line a round
//	hostile-policy PATH             write a policy file allowing everything at PATH in the container, print where
//	                                its root filesystem lies on the host (from mountinfo), then sleep
//	hostile-flood BYTES TARGET...   print BYTES as fast as it can in 16 KiB lines, replacing names between lines, then act as hostile-symlink

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// hostileArity is arity for the hostile-* commands.
func hostileArity(name string) (int, bool) {
	switch name {
	case "hostile-fifo":
		return 0, true
	case "hostile-policy":
		return 1, true
	case "hostile-symlink", "hostile-flood":
		return -1, true
	}
	return 0, false
}

// validateHostile checks the arguments of a hostile-* command.
func validateHostile(s step) error {
	targets := s.args
	if s.name == "hostile-flood" {
		if len(s.args) == 0 {
			return errors.New("hostile-flood: want BYTES TARGET...")
		}
		if n, err := strconv.ParseInt(s.args[0], 10, 64); err != nil || n < 0 {
			return fmt.Errorf("hostile-flood: bad byte count %q", s.args[0])
		}
		targets = s.args[1:]
	}
	if s.name == "hostile-fifo" {
		return nil
	}
	if s.name == "hostile-policy" && !filepath.IsAbs(s.args[0]) {
		return fmt.Errorf("hostile-policy: %q is not an absolute path", s.args[0])
	}
	if len(targets) == 0 {
		return fmt.Errorf("%s: want at least one TARGET", s.name)
	}
	for _, t := range targets {
		if !filepath.IsAbs(t) {
			return fmt.Errorf("%s: target %q is not an absolute path", s.name, t)
		}
	}
	return nil
}

// sandboxDir is where the container's sandbox is mounted.
func sandboxDir() string {
	if d := os.Getenv("MESOS_SANDBOX"); d != "" {
		return d
	}
	return "/mnt/mesos/sandbox"
}

// reachableNames lists every name a hostile task tries to replace: what its
// sandbox holds now, the names of log files and their rotations in it, and
// the same names one level up, where an executor that mounted the task
// directory itself would keep them (../stdout, ../stderr.1, ...).
func reachableNames() []string {
	dir := sandboxDir()
	var bases []string
	for _, s := range []string{"stdout", "stderr"} {
		bases = append(bases, s)
		for i := 1; i <= 6; i++ {
			bases = append(bases, s+"."+strconv.Itoa(i))
		}
	}
	var out []string
	for _, b := range bases {
		out = append(out, filepath.Join(dir, b), filepath.Join(dir, "..", b))
	}
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// replaceAll replaces every reachable name with what create makes there, and
// returns how many it replaced.
func replaceAll(create func(path string, i int) error) int {
	n := 0
	for i, p := range reachableNames() {
		_ = os.RemoveAll(p)
		if err := create(p, i); err == nil {
			n++
		}
	}
	return n
}

func symlinkTo(targets []string) func(string, int) error {
	return func(p string, i int) error { return os.Symlink(targets[i%len(targets)], p) }
}

// runHostile runs a hostile-* step. It returns only when writing fails.
func (p *prog) runHostile(s step) int {
	switch s.name {
	case "hostile-symlink":
		p.symlinkRounds(s.args)
	case "hostile-fifo":
		p.fifoRounds()
	case "hostile-policy":
		if err := p.plantPolicy(s.args[0]); err != nil {
			fmt.Fprintf(p.stderr, "hostile-policy: %v\n", err)
			return 1
		}
		time.Sleep(time.Hour)
		return 0
	case "hostile-flood":
		n, _ := strconv.ParseInt(s.args[0], 10, 64)
		p.flood(n, s.args[1:])
		p.symlinkRounds(s.args[1:])
	}
	return 1
}

// symlinkRounds replaces the names with symlinks and prints 4 KiB to each of
// stdout and stderr, four rounds a second: enough to rotate small log files
// often, little enough for a shared Docker daemon's log driver.
func (p *prog) symlinkRounds(targets []string) {
	line := strings.Repeat("s", 1023) + "\n"
	for round := 1; ; round++ {
		n := replaceAll(symlinkTo(targets))
		if _, err := fmt.Fprintf(p.stdout, "hostile round %d: %d symlinks\n", round, n); err != nil {
			return
		}
		for range 4 {
			_, _ = io.WriteString(p.stdout, line)
			_, _ = io.WriteString(p.stderr, line)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// fifoRounds replaces the names with FIFOs, holding every other one open for
// reading (so that a writer's open would succeed and block on a full pipe
// rather than fail), and prints a line per round.
func (p *prog) fifoRounds() {
	var held []*os.File
	for round := 1; ; round++ {
		for _, f := range held {
			_ = f.Close()
		}
		held = held[:0]
		n := replaceAll(func(path string, i int) error {
			if err := syscall.Mkfifo(path, 0o666); err != nil {
				return err
			}
			if i%2 == 0 {
				if f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
					held = append(held, f)
				}
			}
			return nil
		})
		if _, err := fmt.Fprintf(p.stdout, "hostile round %d: %d fifos\n", round, n); err != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// flood prints n bytes to stdout (and an eighth as much to stderr) as fast
// as it can, in 16 KiB lines (Docker's largest log message, so the daemon's
// log driver handles few messages), replacing the names with symlinks or
// FIFOs between writes.
func (p *prog) flood(n int64, targets []string) {
	chunk := []byte(strings.Repeat("f", 16<<10-1) + "\n")
	for written, i := int64(0), 0; written < n; i++ {
		if i%16 == 0 {
			if i%32 == 0 {
				replaceAll(symlinkTo(targets))
			} else {
				replaceAll(func(path string, _ int) error { return syscall.Mkfifo(path, 0o666) })
			}
		}
		w, err := p.stdout.Write(chunk)
		written += int64(w)
		if err != nil {
			return
		}
		if i%8 == 0 {
			_, _ = p.stderr.Write(chunk)
		}
	}
	fmt.Fprintf(p.stdout, "hostile flood done: %d bytes\n", n)
}

// permissivePolicy is an operator policy file that allows everything.
const permissivePolicy = `{"allow-privileged": true, "allow-host-mounts": true, "allow-host-namespaces": true,
 "allow-container-namespaces": true, "allowed-networks": ["*"]}
`

// plantPolicy writes permissivePolicy at path in the container's own root
// filesystem. The container runs as root, so on the host the file is owned by
// root, mode 0644, in root-owned directories of Docker's storage: exactly
// what the executor's trust rules ask of an operator's policy file. It prints
// the host path of its root filesystem's upper layer where mountinfo shows it
// (overlay2 does), which is how a task tells its framework where the file is.
func (p *prog) plantPolicy(path string) error {
	if err := os.WriteFile(path, []byte(permissivePolicy), 0o644); err != nil {
		return err
	}
	if err := os.Chmod(path, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(p.stdout, "wrote %s\n", path)
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if i := strings.Index(line, "upperdir="); i >= 0 {
				upper, _, _ := strings.Cut(line[i+len("upperdir="):], ",")
				fmt.Fprintf(p.stdout, "host path %s\n", filepath.Join(upper, path))
			}
		}
	}
	return nil
}
