// Package prestart runs what happens to a gated task between "container
// started" and "task's code runs": CNI ADD for each of its networks, the
// operator's prestart.d hooks, then the release of its start gate (package
// gate). It also undoes that on failure, and on the container's end runs
// CNI DEL and the poststop.d hooks.
//
// The container is identified by the pid Docker reported, which could in
// principle be recycled if the container died in between. Start therefore
// pins the container's network namespace and root directory with file
// descriptors, checks with Docker that the container still runs with that
// pid, and hands plugins and hooks /proc/<executor pid>/fd/<n> paths: from
// then on nothing can make them act on another process's namespace.
package prestart
