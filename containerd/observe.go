package containerd

import (
	"net/http"
	"strings"
	"time"
)

// CallObserver receives the latency of every Docker API call (until the
// response headers arrive, so a stream counts its opening only) under a short
// stable name such as "container_create", with the error if the call failed
// at the transport level.
type CallObserver func(call string, d time.Duration, err error)

// observedTransport times every request at one place, so no API method has
// to remember to.
type observedTransport struct {
	base    http.RoundTripper
	observe CallObserver
}

func (o *observedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := o.base.RoundTrip(r)
	o.observe(callName(r.Method, r.URL.Path), time.Since(start), err)
	return resp, err
}

// callName maps an Engine API request to a low-cardinality name: the
// resource kind and the action, never an id.
func callName(method, path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) > 0 && strings.HasPrefix(parts[0], "v1.") {
		parts = parts[1:] // the version prefix
	}
	if len(parts) == 0 || parts[0] == "" {
		return "other"
	}
	kind := strings.TrimSuffix(parts[0], "s") // containers -> container
	switch parts[0] {
	case "_ping":
		return "ping"
	case "info", "version", "events":
		return parts[0]
	case "containers", "images", "exec", "networks", "volumes":
	default:
		return "other"
	}
	switch {
	case len(parts) == 2 && parts[1] == "json" && method == http.MethodGet:
		return kind + "_list"
	case len(parts) == 2 && parts[1] == "create":
		if parts[0] == "images" {
			return "image_pull"
		}
		return kind + "_create"
	case len(parts) == 2 && method == http.MethodDelete:
		return kind + "_remove"
	case len(parts) == 2 && parts[0] == "images" && parts[1] == "load":
		return "image_load"
	case len(parts) >= 3:
		action := parts[len(parts)-1]
		if action == "json" {
			action = "inspect"
		}
		return kind + "_" + action
	case len(parts) == 2:
		return kind + "_" + parts[1]
	}
	return kind
}
