package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The helpers end a test, so they are checked in a child test binary whose
// verdict the parent reads.
func TestSkipOrFail(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "1" {
		SkipOrFail(t, "no widget: %s", "missing")
		t.Fatal("SkipOrFail returned")
	}
	for _, tt := range []struct {
		ci   string
		want string
		fail bool
	}{
		{ci: "", want: "--- SKIP", fail: false},
		{ci: "false", want: "--- SKIP", fail: false},
		{ci: "true", want: "--- FAIL", fail: true},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSkipOrFail$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTENV_CHILD=1", "CI="+tt.ci)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tt.fail {
			t.Errorf("CI=%q: child error %v, want failure=%v\n%s", tt.ci, err, tt.fail, out)
		}
		if !strings.Contains(string(out), tt.want) || !strings.Contains(string(out), "no widget: missing") {
			t.Errorf("CI=%q: output lacks %q or the reason:\n%s", tt.ci, tt.want, out)
		}
	}
}

func TestSkipIfShort(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "1" {
		SkipIfShort(t, "needs a widget")
		return
	}
	for _, short := range []bool{false, true} {
		args := []string{"-test.run=^TestSkipIfShort$", "-test.v"}
		if short {
			args = append(args, "-test.short")
		}
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "TESTENV_CHILD=1", "CI=true")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("short=%v: %v\n%s", short, err, out)
		}
		skipped := strings.Contains(string(out), "--- SKIP") && strings.Contains(string(out), "skipped under -short: needs a widget")
		if skipped != short {
			t.Errorf("short=%v: skipped=%v, want %v\n%s", short, skipped, short, out)
		}
	}
}
