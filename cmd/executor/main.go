// Command executor is a Mesos custom executor that runs many Docker tasks
// in one process. A Mesos agent starts it with no arguments and the standard
// MESOS_* environment; see the README for flags, task labels and the status
// socket.
//
// Subcommands:
//
//	executor                 run as the executor (what the agent starts)
//	executor status [...]    show a running executor's state from its socket
//	executor demo [...]      run example tasks under a built-in local agent
//	executor cleanup [...]   one-shot host sweep of this project's leftovers (dry run by default)
//	executor version         print the version
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mdx-executor/mdx/agent"
	"github.com/mdx-executor/mdx/gate"
	"github.com/mdx-executor/mdx/status"
)

// version is set by the Makefile through -ldflags.
var version = "dev"

func main() {
	// Inside a gated container this binary is the entrypoint, mounted at
	// gate.BinaryPath: it must do nothing but wait and exec the task's argv
	// (no flags, no environment parsing, the argv passed on untouched).
	if os.Args[0] == gate.BinaryPath {
		os.Exit(gate.Main(os.Args[1:]))
	}
	os.Exit(realMain(os.Args[1:]))
}

func realMain(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "status":
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := status.RunCLI(ctx, args[1:], os.Getenv, os.Stdout); err != nil {
				fmt.Fprintln(os.Stderr, "executor status:", err)
				return 1
			}
			return 0
		case "demo":
			if err := runDemo(args[1:]); err != nil {
				fmt.Fprintln(os.Stderr, "executor demo:", err)
				return 1
			}
			return 0
		case "cleanup":
			if err := runCleanupCmd(args[1:], os.Stdout); err != nil {
				fmt.Fprintln(os.Stderr, "executor cleanup:", err)
				return 1
			}
			return 0
		case "__gate":
			// Hidden: the start gate by name, for running it by hand.
			return gate.Main(args[1:])
		case "version", "--version":
			fmt.Println(version)
			return 0
		}
	}
	// First of all, before any goroutine or child could see it: the agent
	// token leaves the environment (this may re-execute the process).
	token, warning, err := takeAuthToken()
	if err != nil {
		fmt.Fprintln(os.Stderr, "executor:", err)
		return 2
	}
	getenv := func(k string) string {
		if k == agent.TokenEnv {
			return string(token)
		}
		return os.Getenv(k)
	}
	cfg, err := parseConfig(args, getenv)
	if warning != "" {
		cfg.StartWarnings = append(cfg.StartWarnings, warning)
	}
	if err != nil {
		if errors.Is(err, errHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "executor:", err)
		return 2
	}
	return run(cfg)
}
