// Package reapertest gives a test binary the one reaper a process may have
// (it is the child subreaper that waits for every child), running for the
// whole binary as in the executor, for tests that start processes through it
// (CNI plugins, hooks).
package reapertest

import (
	"context"
	"testing"

	"github.com/mdx-executor/mdx/containerd/containerdtest"
	"github.com/mdx-executor/mdx/reaper"
)

// Main starts the reaper, stores it in *r, runs the tests through
// containerdtest.Run (with after, as it takes them) and stops the reaper. It
// returns the exit code for os.Exit.
func Main(m *testing.M, r **reaper.Reaper, after ...func() error) int {
	rp, err := reaper.New(nil)
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = rp.Run(ctx); close(done) }()
	*r = rp
	code := containerdtest.Run(m, after...)
	cancel()
	<-done
	return code
}
