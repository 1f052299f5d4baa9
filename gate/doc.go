// Package gate holds a container's first instruction until the executor has
// prepared what the task needs around it (CNI attachments, the operator's
// pre-start hooks), then runs the task's real command exactly as Docker would
// have.
//
// # How it works
//
// The executor's own static binary is bind-mounted read-only into the
// container at [BinaryPath] and becomes its entrypoint: Docker runs
// `/.mdx/gate <real argv...>` (as docker-init's child when init is on), with
// the container's environment, user and working directory already applied.
// cmd/executor recognises that argv[0] and calls [Main], which waits on a
// FIFO bind-mounted read-only at [ReleasePath] and then execve()s the real
// argv, looking a relative argv[0] up in the container's PATH as runc does.
//
// The FIFO lives in a directory of the executor's own ([Config].Dir), never in
// a task's sandbox, and the channel is one-way: the executor only opens it
// O_WRONLY|O_NONBLOCK|O_NOFOLLOW through a directory fd and writes one byte,
// so nothing in the container can make the executor block or follow a path it
// chose. One byte releases the gate; the abort byte makes it exit with
// [ExitAborted]. If the FIFO is removed (the task ended, the executor cleaned
// up) the gate exits with [ExitGone] instead of waiting forever.
//
// Host side: [Manager.Prepare] makes a task's FIFO, [Gate.Wrap] rewrites the
// container's Spec, [Gate.Release] or [Gate.Abort] ends the wait, and
// [Gate.Cleanup] removes the files when the task ends.
package gate
