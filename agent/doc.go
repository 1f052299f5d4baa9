// Package agent is the executor's link to the Mesos agent over the v1 Executor
// HTTP API: it reads the Mesos environment, SUBSCRIBEs and decodes the RecordIO
// event stream (protobuf by default, JSON supported) with mesos-go's generated
// types, and sends UPDATE calls from an ordered outbox that keeps every update,
// with its uuid fixed at creation, until the agent ACKNOWLEDGES it.
//
// The agent drops events written into a broken stream and only re-learns
// unacknowledged updates from the next SUBSCRIBE, so this package owns the
// unacknowledged updates and tasks and replays them byte-identical on every
// re-subscription. It does not interpret task state: that is the task
// package's job.
//
// What the agent sends is checked before it is used: every RecordIO size line
// is bounded before mesos-go's reader sees it (frames.go), an event without
// its payload or ids is dropped and counted rather than passed on (events.go),
// and a SUBSCRIBE counts as subscribed only once its SUBSCRIBED event arrives
// (otherwise it is re-sent every second, as Mesos's own executors do).
package agent
