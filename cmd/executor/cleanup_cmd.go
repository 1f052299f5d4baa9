package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mdx-executor/mdx/cleanup"
	"github.com/mdx-executor/mdx/containerd"
)

// cleanupTimeout bounds the whole one-shot sweep: it is run by hand or from
// a timer, and must not hang on a wedged daemon.
const cleanupTimeout = 10 * time.Minute

const cleanupUsage = `Usage: executor cleanup [flags]

A one-shot sweep of this host for what executors left behind, for operators.
It only ever considers containers with the executor's io.mdx.* ownership
labels; everything else on the host is never touched. It lists:

  container  exited or dead containers (recently finished ones of a live
             executor are left to it: it removes them after its remove delay)
  orphan     running or created containers whose executor is dead (the host
             rebooted, or its pid is gone or reused); removing kills them
  image      dangling, unused images (only with --dangling-images)

By default it only prints what it would remove. With --apply it removes it:
containers by id with their anonymous volumes, images without force. It
never prunes and never unmounts anything.

Flags:
`

// runCleanupCmd is `executor cleanup`. It returns an error when a flag is
// wrong, Docker cannot be reached, or any removal failed (after printing
// every result).
func runCleanupCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("executor cleanup", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		dockerHost  = fs.String("docker-host", "", "Docker Engine address (default $DOCKER_HOST or unix:///var/run/docker.sock)")
		apply       = fs.Bool("apply", false, "remove what is listed (default: dry run)")
		dangling    = fs.Bool("dangling-images", false, "also list (and with --apply remove) dangling images that no container uses")
		asJSON      = fs.Bool("json", false, "print JSON instead of a table")
		frameworkID = fs.String("framework-id", "", "only this framework's containers")
		minAge      = fs.Duration("min-age", 5*time.Minute, "leave exited containers of live executors, and dangling images, younger than this")
		timeout     = fs.Duration("timeout", cleanupTimeout, "give up after this long")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, cleanupUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	dc, err := containerd.New(ctx, containerd.Config{Host: *dockerHost}, nil)
	if err != nil {
		return err
	}
	defer dc.Close()
	opts := cleanup.HostSweepOptions{FrameworkID: *frameworkID, MinAge: *minAge, DanglingImages: *dangling}
	if info, err := dc.DaemonInfo(ctx); err == nil {
		opts.DockerRootDir = info.DockerRootDir
	}
	actions, skipped, err := cleanup.PlanHostSweep(ctx, dc, opts)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	failed := 0
	if *apply {
		for i := range actions {
			cleanup.ApplyHostAction(ctx, dc, &actions[i], opts)
			if !actions[i].Removed {
				failed++
			}
		}
	}
	if *asJSON {
		err = printCleanupJSON(stdout, actions, skipped, *apply)
	} else {
		err = printCleanupTable(stdout, actions, skipped, *apply)
	}
	if err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d removals failed", failed, len(actions))
	}
	return nil
}

func printCleanupTable(w io.Writer, actions []cleanup.HostAction, skipped int, applied bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(actions) > 0 {
		fmt.Fprintln(tw, "ACTION\tKIND\tID\tNAME\tTASK\tFRAMEWORK\tEXECUTOR\tSTATE\tREASON")
	}
	for _, a := range actions {
		action := "would remove"
		if applied {
			action = "removed"
			if !a.Removed {
				action = "FAILED"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", action, a.Kind, cleanupShortID(a.ID), cleanupOrDash(a.Name),
			cleanupOrDash(a.TaskID), cleanupOrDash(a.FrameworkID), cleanupOrDash(a.ExecutorID), cleanupOrDash(a.State), a.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, a := range actions {
		if a.Err == "" {
			continue
		}
		fmt.Fprintf(w, "\n%s %s: %s\n", a.Kind, cleanupShortID(a.ID), a.Err)
		for _, h := range a.Holders {
			fmt.Fprintf(w, "  held by %s\n", h)
		}
	}
	switch {
	case len(actions) == 0:
		fmt.Fprintf(w, "nothing to remove (%d labelled containers of live executors left alone)\n", skipped)
	case applied:
		fmt.Fprintf(w, "\n%d listed; %d labelled containers of live executors left alone\n", len(actions), skipped)
	default:
		fmt.Fprintf(w, "\ndry run: nothing removed; %d labelled containers of live executors left alone; run with --apply to remove the %d listed\n", skipped, len(actions))
	}
	return nil
}

// cleanupJSON is the --json output. Field names are for scripts: keep them.
type cleanupJSON struct {
	DryRun  bool               `json:"dry_run"`
	Skipped int                `json:"skipped"`
	Actions []cleanupJSONEntry `json:"actions"`
}

type cleanupJSONEntry struct {
	Kind        string   `json:"kind"`
	ID          string   `json:"id"`
	Name        string   `json:"name,omitempty"`
	TaskID      string   `json:"task_id,omitempty"`
	FrameworkID string   `json:"framework_id,omitempty"`
	ExecutorID  string   `json:"executor_id,omitempty"`
	State       string   `json:"state,omitempty"`
	Reason      string   `json:"reason"`
	Removed     bool     `json:"removed"`
	Error       string   `json:"error,omitempty"`
	Holders     []string `json:"holders,omitempty"`
}

func printCleanupJSON(w io.Writer, actions []cleanup.HostAction, skipped int, applied bool) error {
	out := cleanupJSON{DryRun: !applied, Skipped: skipped, Actions: []cleanupJSONEntry{}}
	for _, a := range actions {
		e := cleanupJSONEntry{Kind: a.Kind, ID: a.ID, Name: a.Name, TaskID: a.TaskID, FrameworkID: a.FrameworkID,
			ExecutorID: a.ExecutorID, State: a.State, Reason: a.Reason, Removed: a.Removed, Error: a.Err}
		for _, h := range a.Holders {
			e.Holders = append(e.Holders, h.String())
		}
		out.Actions = append(out.Actions, e)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func cleanupShortID(id string) string {
	const n = 12
	if len(id) > 7 && id[:7] == "sha256:" {
		id = id[7:]
	}
	if len(id) > n {
		return id[:n]
	}
	return id
}

func cleanupOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
