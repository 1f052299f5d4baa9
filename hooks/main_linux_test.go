package hooks

import (
	"os"
	"testing"

	"github.com/mdx-executor/mdx/reaper"
	"github.com/mdx-executor/mdx/reaper/reapertest"
)

// testReaper is the test binary's one reaper: hooks are started through it,
// as in the executor, and only one may run per process.
var testReaper *reaper.Reaper

func TestMain(m *testing.M) { os.Exit(reapertest.Main(m, &testReaper)) }
