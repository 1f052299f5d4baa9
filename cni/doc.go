// Package cni attaches task containers to the CNI networks the operator
// installed on the host, with libcni (github.com/containernetworking/cni)
// and the reference plugins (Debian's containernetworking-plugins).
//
// A network is chosen by the name field of a .conflist or .conf file in the
// configuration directory. ADD runs on the container's network namespace
// (/proc/<pid>/ns/net) with the container id; the result of every attachment
// is kept in libcni's cache under Config.CacheDir, a directory the executor
// owns, so that DEL can run later from the cache alone: after the operator
// changed the file, for an orphan found by the sweep, or in a relaunched
// executor that has nothing but the container id.
//
// Plugins are run through the executor's reaper (the one place that waits
// for children), each call bounded by a timeout and killed with its process
// group when it passes, with an environment of the CNI_* variables and a
// fixed PATH only.
package cni
