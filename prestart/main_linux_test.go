package prestart

import (
	"context"
	"os"
	"testing"

	"github.com/mdx-executor/mdx/containerd/containerdtest"
	"github.com/mdx-executor/mdx/reaper"
)

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
	code := containerdtest.Run(m, cleanupBinary)
	cancel()
	<-done
	os.Exit(code)
}
