package health

// AssertThreadsInOwnNetns lets the external Docker tests check that probes
// through a container's network namespace left no thread behind in it.
var AssertThreadsInOwnNetns = assertThreadsInOwnNetns
