package prestart

import (
	"os"
	"testing"

	"github.com/mdx-executor/mdx/reaper"
	"github.com/mdx-executor/mdx/reaper/reapertest"
)

var testReaper *reaper.Reaper

func TestMain(m *testing.M) { os.Exit(reapertest.Main(m, &testReaper)) }
