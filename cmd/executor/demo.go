package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/agent/localagent"
	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/status"
)

// runDemo runs the executor under the built-in local agent against the real
// Docker Engine: it builds an image from the project's static test binary,
// launches four example tasks, prints every status update as the agent
// receives it, shows `executor status`, shuts the executor down and cleans
// up. No Mesos cluster and no registry are needed.
func runDemo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	taskBin := fs.String("task-binary", filepath.Join(filepath.Dir(self), "taskbin"), "static binary to put in the demo image (make build builds bin/taskbin)")
	keep := fs.Bool("keep", false, "keep the demo sandbox directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := os.Stat(*taskBin); err != nil {
		return fmt.Errorf("demo task binary: %w (run `make build` first)", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	quiet := logrus.New()
	quiet.SetLevel(logrus.WarnLevel)
	dc, err := containerd.New(ctx, containerd.Config{}, logrus.NewEntry(quiet))
	if err != nil {
		return err
	}
	defer dc.Close()
	ref := fmt.Sprintf("mdx-demo/task:%d", time.Now().Unix())
	say("building image %s from %s (no registry needed)", ref, *taskBin)
	if err := dc.ImportBinaryImage(ctx, ref, map[string]string{"/task": *taskBin, "/bin/sh": *taskBin},
		[]string{`ENTRYPOINT ["/task"]`, `CMD ["sleep", "1h"]`}); err != nil {
		return err
	}
	defer func() { _ = dc.DeleteImage(context.WithoutCancel(ctx), ref) }()

	dir, err := os.MkdirTemp("", "mdx-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	la := localagent.New(localagent.Options{
		FrameworkID:  "demo-framework",
		ExecutorID:   "demo-executor",
		Capabilities: []mesos.FrameworkInfo_Capability_Type{mesos.FrameworkInfo_Capability_TASK_KILLING_STATE},
	})
	if err := la.Start(); err != nil {
		return err
	}
	defer la.Close()
	logPath := filepath.Join(dir, "executor.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	say("local agent on %s; starting the executor as an agent would (logs: %s)", la.Endpoint(), logPath)
	env := map[string]string{"EXECUTOR_REMOVE_DELAY": "1s"}
	// EXECUTOR_* settings in the demo's environment reach the executor,
	// e.g. EXECUTOR_LOG_LEVEL=debug.
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, envPrefix) {
			env[k] = v
		}
	}
	cmd, err := la.StartExecutor(ctx, self, dir, env, logFile, logFile)
	if err != nil {
		return err
	}
	// exited is closed when the executor process ends; exitErr is its
	// result, valid after that.
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()

	printed := 0
	printNew := func() {
		ups := la.Updates()
		for ; printed < len(ups); printed++ {
			st := ups[printed].Status
			line := fmt.Sprintf("  update  %-8s %-14s", st.TaskID.Value, st.GetState())
			if st.Reason != nil {
				line += " " + st.GetReason().String()
			}
			if st.Healthy != nil {
				line += fmt.Sprintf(" healthy=%t", st.GetHealthy())
			}
			if st.Message != nil {
				line += "  \"" + st.GetMessage() + "\""
			}
			fmt.Println(line)
		}
	}
	wait := func(taskID string, state mesos.TaskState) error {
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		for {
			printNew()
			if s, ok := la.TaskState(taskID); ok && s == state {
				return nil
			}
			select {
			case <-wctx.Done():
				return fmt.Errorf("task %s never reached %s: %w", taskID, state, wctx.Err())
			case <-exited:
				printNew()
				if s, ok := la.TaskState(taskID); ok && s == state {
					return nil
				}
				return fmt.Errorf("executor exited (%v) before task %s reached %s (see %s)", exitErr, taskID, state, logPath)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}

	with := func(kv ...string) map[string]string {
		m := map[string]string{"docker.image": ref}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	say("launching 4 tasks: web (runs, with an HTTP health check), hello (exits 0), broken (exits 3), sleeper (will be killed)")
	la.Launch(localagent.Task("web", with("docker.args", `["serve","8080"]`,
		"health.type", "http", "health.port", "8080", "health.delay", "0s", "health.interval", "1s"), 0.1, 64))
	la.Launch(localagent.Task("hello", with("docker.args", `["echo","hello from a Mesos task"]`, "docker.env.GREETING", "hi"), 0.1, 32))
	la.Launch(localagent.Task("broken", with("docker.args", `["exit","3"]`), 0.1, 32))
	la.Launch(localagent.Task("sleeper", with("docker.args", `["sleep","1h"]`, "kill.grace", "1500ms"), 0.1, 32))
	for _, w := range []struct {
		id string
		s  mesos.TaskState
	}{{"web", mesos.TASK_RUNNING}, {"hello", mesos.TASK_FINISHED}, {"broken", mesos.TASK_FAILED}, {"sleeper", mesos.TASK_RUNNING}} {
		if err := wait(w.id, w.s); err != nil {
			return err
		}
	}
	say("killing sleeper (the framework's KILL)")
	la.Kill("sleeper", nil)
	if err := wait("sleeper", mesos.TASK_KILLED); err != nil {
		return err
	}
	if b, err := os.ReadFile(filepath.Join(dir, "tasks", "hello", "stdout")); err == nil {
		say("sandbox tasks/hello/stdout: %q", string(b))
	}
	say("executor status:")
	if err := status.RunCLI(ctx, []string{"--socket", filepath.Join(dir, status.SocketName)}, os.Getenv, os.Stdout); err != nil {
		say("status: %v", err)
	}
	say("agent sends SHUTDOWN")
	la.Shutdown()
	if err := wait("web", mesos.TASK_KILLED); err != nil {
		return err
	}
	select {
	case <-exited:
		printNew()
		if exitErr != nil {
			return fmt.Errorf("executor exit: %w (see %s)", exitErr, logPath)
		}
		say("executor exited 0 after every update was acknowledged; its containers are removed")
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return errors.New("executor did not exit after SHUTDOWN")
	}
	left, err := dc.List(ctx, map[string]string{containerd.LabelFramework: "demo-framework"}, true)
	if err == nil {
		say("containers left behind: %d", len(left))
	}
	return nil
}

func say(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}
