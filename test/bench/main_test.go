// Package bench measures what the executor costs beyond the Docker Engine it
// drives (`make bench`). One run, on one engine and one image, compares:
//
//	(a) LAUNCH -> TASK_RUNNING of 30 sequential tasks with the raw API's
//	    create+start of the same container shape,
//	(b) 100 tasks launched at once with 100 raw create+start calls in flight,
//	(c) container exit (Docker's State.FinishedAt) -> terminal update at the
//	    agent, next to Docker's own exit -> "die" event latency,
//	(d) the executor's RSS idle and with 100 and 300 running tasks, and its
//	    goroutines,
//	(e) GET /state latency with 1000 tasks known to the executor,
//
// and prints a table of the numbers, the ratios and the targets of issue 3.
// The executor is the binary built from ./cmd/executor, started by the local
// agent (agent/localagent) as a Mesos agent starts a custom executor; every
// time is taken where a Mesos agent would see it (the update's receipt).
//
// The benchmarks find Docker through DOCKER_HOST like the executor, skip under
// -short or without a reachable daemon, and remove every container they made,
// failed run or not. `go test ./test/bench/` without -bench runs nothing. For
// a quick try on a small host, -scale shrinks every task count:
//
//	go test -run '^$' -bench . -benchtime 1x ./test/bench/ -args -scale 0.1
//
// With -pprof DIR the run also saves the executor's CPU profiles of the burst
// and of the /state requests, its heap and goroutine profiles at the highest
// task count (for `go tool pprof`), and its /metrics after the burst and after
// the exits (Docker API latency by call, as the executor saw it).
package bench

import (
	"flag"
	"os"
	"testing"

	"github.com/mdx-executor/mdx/containerd/containerdtest"
)

var (
	scale    = flag.Float64("scale", 1, "multiply every task count of the benchmarks by this (e.g. 0.1 for a quick try)")
	pprofDir = flag.String("pprof", "", "directory for the executor's CPU, heap and goroutine profiles taken during the run")
)

// TestMain goes through containerdtest, which removes the task image once the
// benchmarks are done. Without -bench nothing here touches Docker.
func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(containerdtest.Run(m, removeBuildDir))
}
