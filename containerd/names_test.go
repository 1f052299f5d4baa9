package containerd_test

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	"github.com/mdx-executor/mdx/containerd"
)

// dockerName is the daemon's rule for container names (daemon/names).
var dockerName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func hash10(fw, ex, task string) string {
	sum := sha256.Sum256([]byte(fw + "\x00" + ex + "\x00" + task))
	return hex.EncodeToString(sum[:])[:10]
}

func TestContainerName(t *testing.T) {
	long := strings.Repeat("x", 200)
	tests := []struct {
		name               string
		fw, ex, task, want string
	}{
		{"plain", "fw", "ex", "web.1", "mdx-web.1-" + hash10("fw", "ex", "web.1")},
		{"allowed punctuation kept", "fw", "ex", "a_b-c.d", "mdx-a_b-c.d-" + hash10("fw", "ex", "a_b-c.d")},
		{"invalid characters", "fw", "ex", "a/b c:d", "mdx-a_b_c_d-" + hash10("fw", "ex", "a/b c:d")},
		{"one underscore per rune", "fw", "ex", "tâche", "mdx-t_che-" + hash10("fw", "ex", "tâche")},
		{"empty task id", "fw", "ex", "", "mdx-" + hash10("fw", "ex", "")},
		{"mesos-like task id", "fw", "ex", "mesos-1", "mdx-mesos-1-" + hash10("fw", "ex", "mesos-1")},
		{"long task id is cut", "fw", "ex", long, "mdx-" + long[:64] + "-" + hash10("fw", "ex", long)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := containerd.ContainerName(tt.fw, tt.ex, tt.task)
			if got != tt.want {
				t.Errorf("ContainerName(%q, %q, %q) = %q, want %q", tt.fw, tt.ex, tt.task, got, tt.want)
			}
			if !dockerName.MatchString(got) || !strings.HasPrefix(got, containerd.NamePrefix) {
				t.Errorf("ContainerName(%q, %q, %q) = %q is not a valid %s name", tt.fw, tt.ex, tt.task, got, containerd.NamePrefix)
			}
			if again := containerd.ContainerName(tt.fw, tt.ex, tt.task); again != got {
				t.Errorf("ContainerName is not deterministic: %q then %q", got, again)
			}
		})
	}
}

func TestContainerNameDistinct(t *testing.T) {
	long := strings.Repeat("y", 100)
	pairs := []struct {
		name string
		a, b [3]string
	}{
		{"ids that sanitize alike", [3]string{"fw", "ex", "a/b"}, [3]string{"fw", "ex", "a:b"}},
		{"ids that truncate alike", [3]string{"fw", "ex", long + "1"}, [3]string{"fw", "ex", long + "2"}},
		{"other executor", [3]string{"fw", "ex1", "t"}, [3]string{"fw", "ex2", "t"}},
		{"other framework", [3]string{"fw1", "ex", "t"}, [3]string{"fw2", "ex", "t"}},
		{"separator is not ambiguous", [3]string{"f", "wex", "t"}, [3]string{"fw", "ex", "t"}},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			a := containerd.ContainerName(p.a[0], p.a[1], p.a[2])
			b := containerd.ContainerName(p.b[0], p.b[1], p.b[2])
			if a == b {
				t.Errorf("ContainerName%q and ContainerName%q are both %q", p.a, p.b, a)
			}
		})
	}
}

// TestRunContainerName: two runs of one task id get distinct, valid names,
// and one run always gets the same name (a retried create must conflict).
func TestRunContainerName(t *testing.T) {
	first := containerd.RunContainerName("fw", "ex", "web.1", 1)
	second := containerd.RunContainerName("fw", "ex", "web.1", 2)
	if want := "mdx-web.1-" + hash10("fw", "ex", "web.1") + "-1"; first != want {
		t.Errorf("RunContainerName(run 1) = %q, want %q", first, want)
	}
	if first == second {
		t.Errorf("two runs of one task id share the name %q", first)
	}
	if again := containerd.RunContainerName("fw", "ex", "web.1", 1); again != first {
		t.Errorf("RunContainerName is not deterministic: %q then %q", first, again)
	}
	for _, n := range []string{first, second} {
		if !dockerName.MatchString(n) {
			t.Errorf("%q is not a valid Docker name", n)
		}
	}
}
