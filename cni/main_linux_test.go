package cni

import (
	"context"
	"os"
	"testing"

	"github.com/mdx-executor/mdx/containerd/containerdtest"
	"github.com/mdx-executor/mdx/reaper"
)

// testReaper is the test binary's one reaper: plugins are started through
// it, as in the executor.
var testReaper *reaper.Reaper

func TestMain(m *testing.M) {
	r, err := reaper.New(nil)
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	testReaper = r
	code := containerdtest.Run(m)
	cancel()
	<-done
	os.Exit(code)
}
