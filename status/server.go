package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
)

const (
	// Requests on this socket are bodiless GETs from a local operator, so any
	// connection that takes longer than this to send its headers or body is
	// broken or hostile; the limits keep one of those from pinning a goroutine.
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	idleTimeout       = 60 * time.Second
	// maxHeaderBytes is far above any request our CLI, curl or go tool pprof
	// sends; larger requests get 431 and the connection is dropped.
	maxHeaderBytes = 16 << 10
	// shutdownTimeout bounds the wait for in-flight requests once the
	// context is done. Requests see the same context and so end promptly
	// (pprof's profile and trace stop sampling when it is cancelled).
	shutdownTimeout = 5 * time.Second
)

// allowedMethods is sent in the Allow header of every 405.
const allowedMethods = "GET, HEAD"

// Server is the debug socket's HTTP handler and server. It is read-only and
// owns no state of its own. A Server is also an http.Handler, so it can be
// tested or mounted without a socket.
type Server struct {
	src Source
	log *logrus.Entry
	mux *http.ServeMux
}

var _ http.Handler = (*Server)(nil)

// New returns a server that reports src (which must not be nil) and serves
// the metrics gathered by reg. A nil reg serves an empty /metrics; a nil log
// discards the server's few log lines (encoding failures, handler panics).
func New(src Source, reg *prometheus.Registry, log *logrus.Entry) *Server {
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = logrus.NewEntry(l)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s := &Server{src: src, log: log, mux: http.NewServeMux()}

	s.mux.HandleFunc("/{$}", s.handleIndex)
	s.mux.HandleFunc("/state", s.handleState)
	s.mux.HandleFunc("/tasks/{id}", s.handleTask)
	s.mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: promErrorLog{log},
		// A collector that fails should cost its own series, not the
		// whole scrape: the rest is what the operator came for.
		ErrorHandling: promhttp.ContinueOnError,
	}))
	// The pprof handlers go on this mux, not http.DefaultServeMux, so that
	// importing net/http/pprof exposes nothing on any other server.
	s.mux.HandleFunc("/debug/pprof/", pprof.Index)
	s.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// The mux's own 404 is plain text; ours is JSON like every other error.
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such page %q; GET / lists the pages", r.URL.Path))
	})
	return s
}

// ServeHTTP refuses every method but GET and HEAD, then routes the request.
// The check comes before routing so that it covers every page, including
// pprof's /symbol, which would otherwise accept POST.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", allowedMethods)
		writeError(w, http.StatusMethodNotAllowed,
			fmt.Sprintf("method %s not allowed: the status socket is read-only", r.Method))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Serve serves HTTP on ln until ctx is done, then shuts the server down,
// closes ln and returns nil. ctx is also the base context of every request.
// Serve returns an error only when ln fails; ln is closed in every case.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		// No WriteTimeout: /debug/pprof/profile?seconds=N and /trace
		// legitimately take as long as asked, and pprof refuses any
		// duration longer than the server's WriteTimeout.
		IdleTimeout:    idleTimeout,
		MaxHeaderBytes: maxHeaderBytes,
		BaseContext:    func(net.Listener) context.Context { return ctx },
		ErrorLog:       stdlog.New(logWriter{s.log}, "", 0),
		// "OPTIONS *" would otherwise be answered by net/http itself.
		DisableGeneralOptionsHandler: true,
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return fmt.Errorf("serve status socket: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Some request outlived the grace period; cut it off rather than
		// keep the executor from exiting.
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve status socket: %w", err)
	}
	return nil
}

func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	// Keep in step with the routes registered in New.
	routes := [...]struct{ path, what string }{
		{"/state", "executor, agent link, Docker and task state (JSON)"},
		{"/tasks/{id}", "one task with its state history (JSON)"},
		{"/metrics", "Prometheus metrics (text exposition format)"},
		{"/debug/pprof/", "Go runtime profiles (net/http/pprof)"},
	}
	var b strings.Builder
	b.WriteString("executor status socket (read-only; GET and HEAD only)\n\n")
	for _, rt := range routes {
		fmt.Fprintf(&b, "GET %-14s %s\n", rt.path, rt.what)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, b.String())
}

func (s *Server) handleState(w http.ResponseWriter, r *http.Request) {
	st := s.src.State()
	// Copy the tasks: the source may hand out a shared snapshot, which must
	// not be modified here.
	tasks := make([]Task, len(st.Tasks))
	for i, t := range st.Tasks {
		t.History = nil
		tasks[i] = t
	}
	st.Tasks = tasks
	s.writeJSON(w, r, http.StatusOK, st)
}

func (s *Server) handleTask(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if ts, ok := s.src.(TaskSource); ok {
		if t, ok := ts.Task(id); ok {
			s.writeJSON(w, r, http.StatusOK, t)
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown task %q", id))
		return
	}
	for _, t := range s.src.State().Tasks {
		if t.TaskID == id {
			s.writeJSON(w, r, http.StatusOK, t)
			return
		}
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("unknown task %q", id))
}

// writeJSON encodes v before writing anything, so that an encoding failure
// becomes a clean 500 instead of a truncated 200.
// writeJSON writes v compact, or indented when the request asks for
// ?pretty: indenting re-scans the whole document, which with a thousand
// tasks cost more than building and encoding it (`executor status --json`
// indents on its side).
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if r.URL.Query().Has("pretty") {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		s.log.WithError(err).Warn("encode status response")
		writeError(w, http.StatusInternalServerError, "encode response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	// A failed write means the client went away; there is no one to tell.
	_, _ = w.Write(buf.Bytes())
}

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(errorBody{Error: msg}) // a struct of one string cannot fail
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// logWriter turns net/http's ErrorLog lines (accept errors, handler panics)
// into log entries.
type logWriter struct{ log *logrus.Entry }

func (l logWriter) Write(p []byte) (int, error) {
	l.log.Warn(strings.TrimSpace(string(p)))
	return len(p), nil
}

// promErrorLog adapts the entry to promhttp.Logger.
type promErrorLog struct{ log *logrus.Entry }

func (l promErrorLog) Println(v ...any) { l.log.Warnln(v...) }
