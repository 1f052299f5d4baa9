package status

import (
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"
)

// taskSource serves /tasks/{id} from Task and counts State calls, which the
// route must not need.
type taskSource struct {
	fakeSource
	stateCalls atomic.Int32
}

func (s *taskSource) State() State {
	s.stateCalls.Add(1)
	return s.fakeSource.State()
}

func (s *taskSource) Task(id string) (Task, bool) {
	if id != "web" {
		return Task{}, false
	}
	return Task{TaskID: "web", State: "TASK_RUNNING", History: []HistoryEntry{{State: "TASK_STARTING"}, {State: "TASK_RUNNING"}}}, true
}

func TestTaskSourceServesOneTask(t *testing.T) {
	src := &taskSource{}
	path := startServer(t, src, nil)

	resp, body := get(t, path, http.MethodGet, "/tasks/web")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /tasks/web = %d; want 200: %s", resp.StatusCode, body)
	}
	var got Task
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("GET /tasks/web: bad JSON %q: %v", body, err)
	}
	if got.TaskID != "web" || len(got.History) != 2 {
		t.Errorf("GET /tasks/web = %+v; want task web with 2 history entries", got)
	}
	if resp, _ := get(t, path, http.MethodGet, "/tasks/nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /tasks/nope = %d; want 404", resp.StatusCode)
	}
	if n := src.stateCalls.Load(); n != 0 {
		t.Errorf("State called %d times for /tasks/{id}; want 0 when the source has Task", n)
	}
}
