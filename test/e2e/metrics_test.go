package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/internal/testenv"
	"github.com/mdx-executor/mdx/status"
)

// TestMetricsPassPromtool checks the executor's /metrics, with tasks in
// several states and a health check, against `promtool check metrics`.
// make test provides promtool (unpacked from Debian's prometheus package) in
// $PROMTOOL; CI must not skip this.
func TestMetricsPassPromtool(t *testing.T) {
	t.Parallel()
	testenv.RequireDocker(t) // before the promtool check: -short runs no end-to-end test, even in CI
	promtool := os.Getenv("PROMTOOL")
	if promtool == "" {
		if p, err := exec.LookPath("promtool"); err == nil {
			promtool = p
		}
	}
	if promtool == "" {
		testenv.SkipOrFail(t, "promtool not found (run through make test, which provides it; CI must check /metrics)")
	}
	h := start(t, config{})
	h.launch("web", map[string]string{
		"docker.args": jsonArray([]string{"serve", "8080"}),
		"health.type": "http", "health.port": "8080", "health.delay": "0s", "health.interval": "500ms",
	})
	h.launch("job", args("echo", "done"))
	h.launch("bad", args("exit", "3"))
	h.waitState("web", mesos.TASK_RUNNING)
	h.waitState("job", mesos.TASK_FINISHED)
	h.waitState("bad", mesos.TASK_FAILED)

	client := status.NewHTTPClient(filepath.Join(h.sandbox, status.SocketName))
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://executor/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d, %v", resp.StatusCode, err)
	}
	for _, want := range []string{
		`mesos_executor_tasks{state="TASK_RUNNING"} 1`,
		`mesos_executor_task_launches_total 3`,
		`mesos_executor_docker_api_call_seconds_bucket{call="container_create"`,
		"mesos_executor_unacknowledged_updates",
		"mesos_executor_docker_connections",
		"process_open_fds",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(string(body))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics failed (%v):\n%s", err, out)
	}
}
