// Package testenv decides, in tests, what happens when something a test
// needs is missing: on a developer's machine the test is skipped with the
// reason printed; in CI (CI=true) it fails, because a CI runner is set up to
// have everything and a silent skip there hides a broken runner. It also
// holds the one rule for -short: every test that needs the Docker Engine (or
// takes long) skips under testing.Short(), so that `make test-unit` stays a
// unit run.
//
// It is for tests only and not a stable interface.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// InCI reports whether the tests run in CI, where every component must be
// present.
func InCI() bool { return os.Getenv("CI") == "true" }

// SkipOrFail skips t with the formatted reason, or fails it with that reason
// when CI=true.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI=true, so this is a failure, not a skip)", reason)
	}
	t.Skip(reason)
}

// SkipIfShort skips t under -short, saying what it needs ("runs containers
// on the Docker Engine").
func SkipIfShort(t testing.TB, needs string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("skipped under -short: %s", needs)
	}
}

// RequireDocker is the gate of every test that talks to the Docker Engine:
// it skips under -short. Reaching the daemon is the caller's part (see
// containerdtest.Docker, which calls this and then SkipOrFail when the
// daemon does not answer).
func RequireDocker(t testing.TB) {
	t.Helper()
	SkipIfShort(t, "needs the Docker Engine")
}
