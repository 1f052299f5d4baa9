package health

import (
	"errors"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// The fuzz targets feed Parse and ParseCheck what a framework controls: the
// protobuf bytes of TaskInfo.health_check / TaskInfo.check and the health.*
// labels. The seed corpus is in testdata/fuzz; `make fuzz` runs them. Any
// input must give either an error wrapping ErrInvalid or a spec the
// supervisor can run without surprises.

// FuzzParse: data is a mesos.HealthCheck in protobuf (ignored when it does
// not decode), labels holds "key=value" lines.
func FuzzParse(f *testing.F) {
	f.Add([]byte{}, "health.type=http\nhealth.port=8080\nhealth.path=/ready")
	f.Add(mustMarshal(f, nativeHTTP(70000, "0")), "")
	f.Add(mustMarshal(f, &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 80},
		IntervalSeconds: pointerTo(math.Inf(1)), TimeoutSeconds: pointerTo(math.NaN())}), "health.failures=2")
	f.Fuzz(func(t *testing.T, data []byte, labelText string) {
		var native *mesos.HealthCheck
		if h := new(mesos.HealthCheck); h.Unmarshal(data) == nil {
			native = h
		}
		labels := parseLabelLines(labelText)
		s, err := Parse(native, labels)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if s == nil {
			if native != nil || hasHealthLabel(labels) {
				t.Fatal("Parse returned nil, nil for a task with a health check")
			}
			return
		}
		switch s.Type {
		case HTTP, TCP:
			if s.Port == 0 || s.Port > 65535 {
				t.Fatalf("accepted port %d", s.Port)
			}
			if s.Type == HTTP {
				checkProbeURL(t, s.Scheme, s.Port, s.Path)
				for _, c := range s.Statuses {
					if c < 100 || c > 599 {
						t.Fatalf("accepted status code %d", c)
					}
				}
			}
		case Command:
			if len(s.Cmd) == 0 || s.Cmd[0] == "" {
				t.Fatalf("accepted an empty command %q", s.Cmd)
			}
		default:
			t.Fatalf("accepted type %q", s.Type)
		}
		checkDurations(t, s.Delay, s.Interval, s.Timeout, s.Grace)
		if s.Failures == 0 {
			t.Fatal("accepted 0 failures")
		}
	})
}

// FuzzParseCheck: data is a mesos.CheckInfo in protobuf.
func FuzzParseCheck(f *testing.F) {
	f.Add(mustMarshal(f, &mesos.CheckInfo{Type: mesos.CheckInfo_HTTP, HTTP: &mesos.CheckInfo_Http{Port: 8080, Path: pointerTo("/ready")}}))
	f.Add(mustMarshal(f, &mesos.CheckInfo{Type: mesos.CheckInfo_TCP, TCP: &mesos.CheckInfo_Tcp{Port: 1}, IntervalSeconds: pointerTo(math.Inf(1))}))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := new(mesos.CheckInfo)
		if c.Unmarshal(data) != nil {
			return
		}
		s, err := ParseCheck(c)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseCheck error %v does not wrap ErrInvalid", err)
			}
			return
		}
		switch s.Type {
		case HTTP:
			checkProbeURL(t, "http", s.Port, s.Path)
		case TCP:
			if s.Port == 0 || s.Port > 65535 {
				t.Fatalf("accepted port %d", s.Port)
			}
		case Command:
			if len(s.Cmd) == 0 || s.Cmd[0] == "" {
				t.Fatalf("accepted an empty command %q", s.Cmd)
			}
		default:
			t.Fatalf("accepted type %q", s.Type)
		}
		checkDurations(t, s.Delay, s.Interval, s.Timeout)
	})
}

func mustMarshal(f *testing.F, m interface{ Marshal() ([]byte, error) }) []byte {
	b, err := m.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func parseLabelLines(text string) map[string]string {
	labels := map[string]string{}
	for line := range strings.Lines(text) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		labels[k] = v
	}
	return labels
}

func hasHealthLabel(labels map[string]string) bool {
	for k := range labels {
		if strings.HasPrefix(k, LabelPrefix) {
			return true
		}
	}
	return false
}

// checkProbeURL asserts that the URL a prober builds from an accepted spec
// parses and names the container's loopback and the port, nothing else.
func checkProbeURL(t *testing.T, scheme string, port uint32, path string) {
	t.Helper()
	if scheme != "http" && scheme != "https" {
		t.Fatalf("accepted scheme %q", scheme)
	}
	if port == 0 || port > 65535 {
		t.Fatalf("accepted port %d", port)
	}
	if !strings.HasPrefix(path, "/") {
		t.Fatalf("accepted path %q", path)
	}
	p := newProber(probe{typ: HTTP, port: port, path: path, scheme: scheme}, Target{}, nil, nil, 0)
	u, err := url.Parse(p.url())
	if err != nil {
		t.Fatalf("accepted path %q gives a URL that does not parse: %v", path, err)
	}
	if u.Hostname() != "127.0.0.1" || u.Port() == "" {
		t.Fatalf("accepted path %q gives URL %q with host %q", path, p.url(), u.Host)
	}
}

func checkDurations(t *testing.T, delay, interval time.Duration, rest ...time.Duration) {
	t.Helper()
	if delay < 0 || interval <= 0 {
		t.Fatalf("accepted delay %v, interval %v", delay, interval)
	}
	for _, d := range rest {
		if d < 0 {
			t.Fatalf("accepted a negative duration %v", d)
		}
	}
}
