// Package hooks runs the operator's pre-start and post-stop hooks: the
// executables in <hooks-dir>/prestart.d and <hooks-dir>/poststop.d, in name
// order, each with a timeout and in a process group of its own that is
// killed as a whole on timeout, when the caller's ctx ends, and after the
// hook exits (a hook cannot leave a daemon behind).
//
// Hooks are the operator's code running as root, so only files the operator
// controls are run: the directories must be root-owned and not writable by
// group or others, each hook a regular root-owned executable file that is not
// group- or world-writable; anything else is skipped with a warning. A hook's
// environment is exactly the contract's list ([Env.Environ]); nothing of the
// executor's own environment, and never its auth token, reaches it.
//
// Every hook is started through the executor's reaper, which is the only
// place in the process that waits for children.
package hooks
