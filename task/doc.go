// Package task is the task manager: the single owner of every task's state.
//
// One event loop (Manager.Run) receives the agent's events (LAUNCH, KILL,
// SHUTDOWN), the results of Docker calls (which run in per-task goroutines
// and post back) and container exits, moves each task through an explicit
// Mesos state machine (STARTING -> RUNNING -> [KILLING] -> terminal) and hands
// every status update to the Publisher (the agent link's outbox). Handlers are
// idempotent: a duplicate LAUNCH, a second KILL or a repeated exit changes
// nothing. Internal errors become a Mesos reason and message here and nowhere
// else.
package task
