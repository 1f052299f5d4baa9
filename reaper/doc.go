// Package reaper keeps the executor's process table clean and reports on the
// process tables of its containers.
//
// # The executor as reaper
//
// New makes the process a child subreaper (PR_SET_CHILD_SUBREAPER), unless it
// is PID 1 of its PID namespace and so already that namespace's init. Every
// process orphaned below the executor (a health check's background child, a
// helper's daemon) is then re-parented to the executor instead of to the
// agent or the host's init, and [Reaper.Run] reaps it.
//
// Run is the only place in the process that waits for children: one SIGCHLD
// loop calling wait4(-1, WNOHANG) until nothing is left to reap. That loop
// reaps every child, so a command started with plain os/exec would lose its
// exit status to it (exec.Cmd.Wait then fails with "no child processes"). The
// rule is therefore: every child process of the executor is started through
// [Reaper.Start] (or [Reaper.Output]) and awaited with [Process.Wait], never
// with exec.Cmd.Wait. Start registers the pid before the loop can reap it, so
// the status of a process that exits at once is not lost, and it is delivered
// only to that Process, so it is not stolen. Everything else the loop reaps is
// an orphan and is only counted ([Stats], the
// mesos_executor_orphans_reaped_total metric).
//
// Only one Reaper may Run in a process at a time: SIGCHLD and wait4(-1) are
// process-wide.
//
// # Zombies inside containers
//
// A container whose PID 1 does not reap (most programs are not written to be
// init) collects zombies that the executor cannot reap: they are not its
// children. The executor gives containers docker-init as PID 1 by default;
// [CountZombies] and [ZombieWatch] count the zombies in each task's PID
// namespace so that the operator sees the ones that opted out, in the
// executor's /state and /metrics and in a warning in its log.
//
// Linux only; on other systems New and CountZombies return errors wrapping
// errors.ErrUnsupported.
package reaper
