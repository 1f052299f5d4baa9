package health

import (
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"
)

// HTTP status codes a check may list: RFC 9110 defines 100-599.
const (
	minStatus = 100
	maxStatus = 599
)

// maxSeconds is the largest number of seconds a time.Duration holds. A float
// beyond it converts to a negative or undefined Duration: a timeout of 1e300
// seconds would become "no timeout", an interval of +Inf a busy loop.
const maxSeconds = float64(math.MaxInt64) / float64(time.Second)

// seconds converts a protobuf duration in seconds (a double the framework
// controls) to a Duration, refusing what has no meaning: NaN, negatives, and
// values too large for a Duration, including +Inf. field names it in the
// error.
func seconds(field string, f float64) (time.Duration, error) {
	switch {
	case math.IsNaN(f):
		return 0, fmt.Errorf("%w: %s is not a number", ErrInvalid, field)
	case f < 0:
		return 0, fmt.Errorf("%w: %s must not be negative, got %g", ErrInvalid, field, f)
	case f >= maxSeconds:
		return 0, fmt.Errorf("%w: %s is too large, got %g (at most %.0f)", ErrInvalid, field, f, math.Floor(maxSeconds))
	}
	return time.Duration(f * float64(time.Second)), nil
}

// checkPort refuses a port outside 1-65535: protobuf ports are uint32.
func checkPort(field string, p uint32) error {
	if p == 0 || p > math.MaxUint16 {
		return fmt.Errorf("%w: %s must be 1-65535, got %d", ErrInvalid, field, p)
	}
	return nil
}

// checkPath refuses an HTTP path that is not an absolute path or that would
// change the URL's host once appended to "scheme://127.0.0.1:port": a probe
// must only ever name the container's own loopback. "" is the default "/".
func checkPath(field, path string) error {
	if path == "" {
		return nil
	}
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("%w: %s %q must start with /", ErrInvalid, field, path)
	}
	const base = "http://127.0.0.1:1"
	u, err := url.Parse(base + path)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not a valid URL path: %w", ErrInvalid, field, path, err)
	}
	if u.Host != "127.0.0.1:1" {
		return fmt.Errorf("%w: %s %q changes the URL's host", ErrInvalid, field, path)
	}
	return nil
}

// checkScheme accepts the schemes Mesos's HTTP checks know.
func checkScheme(field, scheme string) error {
	switch scheme {
	case "", "http", "https":
		return nil
	}
	return fmt.Errorf("%w: %s %q is not http or https", ErrInvalid, field, scheme)
}
