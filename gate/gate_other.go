//go:build !linux

package gate

import (
	"fmt"
	"os"
)

// Main is the gate program; the gate exists on Linux only, where containers
// run.
func Main(argv []string) int {
	fmt.Fprintln(os.Stderr, "mdx-gate: only supported on Linux")
	return ExitUsage
}
