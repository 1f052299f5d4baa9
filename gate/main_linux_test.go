package gate

import (
	"os"
	"testing"

	"github.com/mdx-executor/mdx/reaper"
	"github.com/mdx-executor/mdx/reaper/reapertest"
)

// testReaper runs the hooks and CNI plugins of the combined launch test, as
// the executor's reaper would.
var testReaper *reaper.Reaper

func TestMain(m *testing.M) { os.Exit(reapertest.Main(m, &testReaper)) }
