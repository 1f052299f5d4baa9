// Package cleanup removes what the executor owns once it is no longer
// needed, and nothing else. It replaces the cron jobs operators used to run
// on Docker hosts (`docker rm -v $(docker ps -aq)`, unmounting whatever df
// showed, daily daemon restarts, `docker rmi` of dangling images), which
// removed other tenants' containers mid-launch and lost their exit codes.
//
//   - RemovePreviousInstances, at start: containers of an earlier instance
//     of the same executor, killed and relaunched. Like the Sweeper it
//     removes another instance's container only when Liveness proves that
//     instance dead (one rule, instanceVerdict); a live one with the same
//     ids (two agents on one daemon) is reported and left alone.
//   - Remover: a bounded queue of container removals. The task manager
//     enqueues a container after it has reported the task's exit; the
//     queue removes it after the remove delay, by id, with its anonymous
//     volumes, and only if it carries this executor's ownership labels.
//     Busy filesystems are retried with jittered backoff and the processes
//     that hold the container's mounts in other mount namespaces are named
//     (FindHolders); an unreachable daemon pauses the queue.
//   - Sweeper: periodically queues what the queue lost, removes old task
//     sandboxes, and reports (optionally removes) containers of dead
//     executors (Liveness).
//   - ImageCollector (opt-in): images this executor's tasks stopped using.
//   - CheckStorage: storage driver settings that make removals fail.
//
// Nothing here ever prunes, force-removes an image, or unmounts anything in
// another mount namespace.
package cleanup
