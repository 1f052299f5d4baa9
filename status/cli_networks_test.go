package status

import (
	"strings"
	"testing"
	"time"
)

// CNI networks appear in a NETWORKS column (only when some task has them)
// and, with a gated task's launch step, in the task view.
func TestRunCLINetworks(t *testing.T) {
	t.Parallel()
	st := testState()
	st.Tasks[0].Networks = []TaskNetwork{{Name: "vlan100", IfName: "eth0", IPs: []string{"10.20.100.80"}},
		{Name: "evil\nname", IfName: "eth1"}}
	st.Tasks[1].Launch = "hook 10-announce"
	path := startServer(t, &fakeSource{st: st}, nil)
	now := testStart.Add(10 * time.Minute)

	out, err := runAt(t, now, envMap(nil), "--socket", path)
	if err != nil {
		t.Fatalf("RunCLI: %v", err)
	}
	lines := strings.Split(out, "\n")
	header := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "TASK ID") {
			header = i
		}
	}
	if header < 0 || !strings.HasSuffix(strings.TrimSpace(lines[header]), "NETWORKS") {
		t.Fatalf("no NETWORKS column:\n%s", out)
	}
	if row := lines[header+1]; !strings.HasSuffix(strings.TrimSpace(row), "vlan100=10.20.100.80 evil name=-") {
		t.Errorf("web-1 row %q", row)
	}
	if row := strings.Fields(lines[header+2]); row[len(row)-1] != "-" {
		t.Errorf("batch-7 row without networks %q", lines[header+2])
	}

	out, err = runAt(t, now, envMap(nil), "--socket", path, "batch-7")
	if err != nil {
		t.Fatalf("RunCLI: %v", err)
	}
	mustContain(t, "task view", out, "Launch step:", "hook 10-announce")
	out, err = runAt(t, now, envMap(nil), "--socket", path, "web-1")
	if err != nil {
		t.Fatalf("RunCLI: %v", err)
	}
	mustContain(t, "task view", out, "Networks:", "vlan100=10.20.100.80")
}
