package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mdx-executor/mdx/agent/localagent"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// TestHealthProbesStayInTheContainer runs, through the real executor, a
// bridge task whose health endpoint redirects to a server this test runs on
// the host's 127.0.0.1 (issue 10, item 5). The probe follows the redirect in
// the container's own network namespace, where nothing listens on that port,
// so the task is killed for failing its health check, as with Mesos's curl
// -L, and the host server never sees a request. A task with a plain health
// endpoint on the same network turns healthy, so the probes do work.
func TestHealthProbesStayInTheContainer(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
	}))
	t.Cleanup(host.Close)

	h := start(t, config{})
	probe := map[string]string{
		"docker.args": jsonArray([]string{"serve", "8080"}),
		"health.type": "http", "health.port": "8080", "health.delay": "0s", "health.interval": "300ms",
		"health.timeout": "2s", "health.grace": "20s", "health.failures": "3",
	}
	with := func(extra ...string) map[string]string {
		labels := map[string]string{}
		for k, v := range probe {
			labels[k] = v
		}
		for i := 0; i+1 < len(extra); i += 2 {
			labels[extra[i]] = extra[i+1]
		}
		return labels
	}
	h.launch("web", with())
	h.launch("steal", with("health.path", "/redirect?to="+host.URL+"/steal", "health.grace", "0s"))

	if _, err := h.waitUpdate(func(u localagent.Update) bool {
		return u.Status.TaskID.Value == "web" && u.Status.GetState() == mesos.TASK_RUNNING &&
			u.Status.Healthy != nil && *u.Status.Healthy
	}); err != nil {
		t.Fatalf("task web never reported healthy: %v; its updates: %s", err, h.history("web"))
	}
	killed := h.waitState("steal", mesos.TASK_KILLED)
	if killed.Healthy == nil || *killed.Healthy || !strings.Contains(killed.GetMessage(), "health check") {
		t.Errorf("steal ended healthy=%v %q; want killed by its health check", killed.Healthy, killed.GetMessage())
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the host's 127.0.0.1 server got %d requests from health probes", n)
	}
}
