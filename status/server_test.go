package status

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestRoutes(t *testing.T) {
	path := startServer(t, &fakeSource{st: testState()}, prometheus.NewRegistry())
	tests := []struct {
		method, page string
		wantCode     int
		wantType     string
		wantBody     []string
	}{
		{"GET", "/", 200, "text/plain", []string{"/state", "/tasks/{id}", "/metrics", "/debug/pprof/"}},
		{"GET", "/state", 200, "application/json", []string{`"executor_id":"exec-1"`, `"task_id":"web-1"`}},
		{"GET", "/state?pretty", 200, "application/json", []string{"{\n  \"executor_id\": \"exec-1\""}},
		{"HEAD", "/state", 200, "application/json", nil},
		{"GET", "/tasks/web-1", 200, "application/json", []string{`"history"`, `"TASK_STARTING"`}},
		{"GET", "/tasks/" + url.PathEscape("new task/%"), 200, "application/json", []string{`"task_id":"new task/%"`}},
		{"GET", "/tasks/nope", 404, "application/json", []string{`"error"`, `unknown task \"nope\"`}},
		{"GET", "/metrics", 200, "text/plain", nil},
		{"GET", "/debug/pprof/", 200, "text/html", []string{"goroutine", "heap"}},
		{"GET", "/debug/pprof/goroutine?debug=1", 200, "text/plain", []string{"goroutine profile:"}},
		{"GET", "/debug/pprof/cmdline", 200, "text/plain", nil},
		{"GET", "/nowhere", 404, "application/json", []string{`"error"`, "/nowhere"}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.page, func(t *testing.T) {
			resp, body := get(t, path, tt.method, tt.page)
			if resp.StatusCode != tt.wantCode {
				t.Errorf("status = %d, want %d; body:\n%s", resp.StatusCode, tt.wantCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
				t.Errorf("Content-Type = %q, want prefix %q", ct, tt.wantType)
			}
			if tt.method == "HEAD" && body != "" {
				t.Errorf("HEAD returned a body: %q", body)
			}
			mustContain(t, "body", body, tt.wantBody...)
		})
	}
}

func TestStateOmitsHistoryAndKeepsSource(t *testing.T) {
	src := &fakeSource{st: testState()}
	path := startServer(t, src, nil)
	_, body := get(t, path, "GET", "/state")
	var got State
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("decode /state: %v\n%s", err, body)
	}
	want := testState()
	for i := range want.Tasks {
		want.Tasks[i].History = nil
	}
	// Times round-trip through JSON as equal instants but not equal structs.
	for _, s := range []*State{&got, &want} {
		s.StartedAt = s.StartedAt.UTC()
		for i := range s.Tasks {
			for _, p := range []**time.Time{&s.Tasks[i].StartedAt, &s.Tasks[i].FinishedAt} {
				if *p != nil {
					*p = ptr((*p).UTC())
				}
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GET /state = %+v\nwant %+v", got, want)
	}
	if strings.Contains(body, `"history"`) {
		t.Errorf("GET /state includes history:\n%s", body)
	}
	// The source's snapshot must not have been modified by the handler.
	if len(src.State().Tasks[0].History) != 2 {
		t.Errorf("handler modified the source's tasks")
	}
}

// The JSON contract: tasks is [] (never null) and the field names are fixed.
func TestStateJSONContract(t *testing.T) {
	path := startServer(t, &fakeSource{st: State{ExecutorID: "e", FrameworkID: "f"}}, nil)
	_, body := get(t, path, "GET", "/state")
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	if got := string(raw["tasks"]); got != "[]" {
		t.Errorf(`"tasks" = %s, want []`, got)
	}
	for _, k := range []string{"executor_id", "framework_id", "agent_connected", "unacknowledged_updates", "pid", "started_at", "docker"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("GET /state has no %q field:\n%s", k, body)
		}
	}

	path = startServer(t, &fakeSource{st: testState()}, nil)
	_, body = get(t, path, "GET", "/tasks/new%20task%2F%25")
	var task map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &task); err != nil {
		t.Fatal(err)
	}
	if got := string(task["healthy"]); got != "null" {
		t.Errorf(`task without health check: "healthy" = %s, want null`, got)
	}
	for _, k := range []string{"task_id", "state", "container_id", "healthy"} {
		if _, ok := task[k]; !ok {
			t.Errorf("task has no %q field:\n%s", k, body)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	path := startServer(t, &fakeSource{st: testState()}, nil)
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
		for _, page := range []string{"/state", "/tasks/web-1", "/debug/pprof/symbol", "/nowhere"} {
			resp, body := get(t, path, m, page)
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: status %d, want 405", m, page, resp.StatusCode)
			}
			if got := resp.Header.Get("Allow"); got != "GET, HEAD" {
				t.Errorf("%s %s: Allow = %q, want %q", m, page, got, "GET, HEAD")
			}
			var eb errorBody
			if err := json.Unmarshal([]byte(body), &eb); err != nil || !strings.Contains(eb.Error, "read-only") {
				t.Errorf("%s %s: body %q, want a JSON error saying read-only", m, page, body)
			}
		}
	}
}

// rawRequest writes req on a fresh connection and returns the status code of
// the response (0 if the server closed without one).
func rawRequest(t *testing.T, path string, req []byte) int {
	t.Helper()
	conn, err := Dial(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	// The server may answer and close before it has read everything; a
	// write error then is expected.
	_, _ = conn.Write(req)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestBadRequestsDoNotStopServer(t *testing.T) {
	path := startServer(t, &fakeSource{st: testState()}, nil)
	tests := []struct {
		name string
		req  []byte
		want int
	}{
		{"garbage", []byte("\x00\x01\x02 hello \xff\xfe\r\n\r\n"), http.StatusBadRequest},
		{"bad request line", []byte("GET\r\n\r\n"), http.StatusBadRequest},
		{"huge header", []byte("GET /state HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 1<<20) + "\r\n\r\n"),
			http.StatusRequestHeaderFieldsTooLarge},
		{"too many headers", []byte("GET /state HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: b\r\n", 10000) + "\r\n"),
			http.StatusRequestHeaderFieldsTooLarge},
		{"bad version", []byte("GET /state HTTP/9.9\r\nHost: x\r\n\r\n"), http.StatusHTTPVersionNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rawRequest(t, path, tt.req); got != tt.want {
				t.Errorf("status = %d, want %d", got, tt.want)
			}
			resp, _ := get(t, path, "GET", "/state")
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET /state after %s: status %d, want 200", tt.name, resp.StatusCode)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mdx_test_launches_total", Help: "Tasks launched.",
	}, []string{"result"})
	reg.MustRegister(c)
	c.WithLabelValues("ok").Add(3)
	c.WithLabelValues("failed").Inc()

	path := startServer(t, &fakeSource{}, reg)
	resp, body := get(t, path, "GET", "/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("GET /metrics does not parse as the text format: %v\n%s", err, body)
	}
	served := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		var out []*dto.MetricFamily
		for _, f := range families {
			out = append(out, f)
		}
		return out, nil
	})
	want := `
# HELP mdx_test_launches_total Tasks launched.
# TYPE mdx_test_launches_total counter
mdx_test_launches_total{result="failed"} 1
mdx_test_launches_total{result="ok"} 3
`
	if err := testutil.GatherAndCompare(served, strings.NewReader(want), "mdx_test_launches_total"); err != nil {
		t.Error(err)
	}
}

func TestServeReturnsNilOnCancel(t *testing.T) {
	ln, err := Listen(fmt.Sprintf("%s/s.sock", t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(&fakeSource{}, nil, nil).Serve(ctx, ln) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

// A request in flight sees the server's context, so a long pprof profile ends
// when the executor shuts down instead of holding it for 30 seconds.
func TestShutdownEndsLongRequests(t *testing.T) {
	ln, err := Listen(t.TempDir() + "/s.sock")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(&fakeSource{}, nil, testLogger(t)).Serve(ctx, ln) }()

	client := NewHTTPClient(ln.Addr().String())
	reqDone := make(chan struct{})
	go func() {
		defer close(reqDone)
		resp, err := client.Get("http://executor/debug/pprof/profile?seconds=30")
		if err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(200 * time.Millisecond) // let the profile start
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	case <-time.After(25 * time.Second): // the profile runs 30 s: returning before proves it was ended
		t.Fatal("Serve did not return after cancel")
	}
	t.Logf("Serve returned %v after cancel", time.Since(start))
	<-reqDone
}
