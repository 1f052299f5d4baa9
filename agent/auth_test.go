package agent_test

import (
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/mdx-executor/mdx/agent/localagent"
)

// TestLocalAgentAuthentication: with executor authentication on, the local
// agent refuses calls without the token (401) and serves the link that sends
// it; the link's token tests can then rely on the agent itself.
func TestLocalAgentAuthentication(t *testing.T) {
	t.Parallel()
	const token = "eyJhbGciOiJIUzI1NiJ9.eyJlaWQiOiJleCJ9.c2ln"
	la := startAgent(t, localagent.Options{Checkpoint: true, AuthToken: token})

	f := newFront(t, "http://"+la.Endpoint(), "")
	wrong := baseConfig(f.addr())
	wrong.AuthToken = token + "x"
	rw := run(t, wrong, nil)
	eventually(t, "two refused SUBSCRIBEs", func() bool { return len(f.seen(executor.Call_SUBSCRIBE)) >= 2 })
	if la.SubscribeCalls() != 0 || rw.c.Stats().Connected {
		t.Fatalf("a SUBSCRIBE with the wrong token was served")
	}
	rw.cancel()

	cfg := baseConfig(la.Endpoint())
	cfg.AuthToken = token
	r := run(t, cfg, nil)
	r.next(t, executor.Event_SUBSCRIBED)
	launch(t, la, r, localagent.Task("t1", nil, 0.1, 32))
	r.c.Update(status("t1", mesos.TASK_RUNNING))
	drained(t, r.c)
	var found bool
	for _, kv := range la.Env(t.TempDir(), nil) {
		found = found || kv == "MESOS_EXECUTOR_AUTHENTICATION_TOKEN="+token
	}
	if !found {
		t.Error("Env does not hand the executor its token")
	}
}
