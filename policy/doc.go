// Package policy is the host operator's say over what a task may ask for
// beyond its own container: privileged mode, host and container namespaces,
// host mounts, user-defined networks, registry credentials, CNI and hook
// directories.
//
// A framework writes the executor's whole ExecutorInfo, command line and
// environment included, so the policy cannot come from there: it comes from a
// JSON file the operator owns (/etc/mdx/executor.json by default). Flags and
// environment variables may only narrow it, and path settings come from the
// file alone. Load refuses a file that anyone but root could have written and
// falls back to the safe defaults, saying why.
//
// Check is the one validator every container spec passes before any Docker
// call: whatever it refuses never reaches the daemon.
package policy
