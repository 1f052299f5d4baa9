package health

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Type is a probe kind.
type Type string

// Probe kinds, named as in the health.type label.
const (
	HTTP    Type = "http"
	TCP     Type = "tcp"
	Command Type = "cmd"
)

// Mesos defaults for absent fields (include/mesos/v1/mesos.proto).
const (
	DefaultDelay    = 15 * time.Second
	DefaultInterval = 10 * time.Second
	DefaultTimeout  = 20 * time.Second
	DefaultGrace    = 10 * time.Second
	DefaultFailures = 3
)

// LabelPrefix starts every health label key.
const LabelPrefix = "health."

// Spec is one task's health check.
type Spec struct {
	Type     Type
	Port     uint32   // HTTP and TCP
	Path     string   // HTTP, default "/"
	Scheme   string   // HTTP: "http" or "https"
	Statuses []uint32 // HTTP: accepted codes; empty = 200-399
	Cmd      []string // Command: exec form run inside the container
	Delay    time.Duration
	Interval time.Duration
	Timeout  time.Duration // 0 = no timeout
	Grace    time.Duration
	Failures uint32
}

// ErrInvalid marks a health check that cannot be run as given.
var ErrInvalid = errors.New("invalid health check")

// Parse builds the task's health check from the native field and the health.*
// labels (labels win). It returns nil, nil when the task has neither.
func Parse(native *mesos.HealthCheck, labels map[string]string) (*Spec, error) {
	var s *Spec
	if native != nil {
		var err error
		if s, err = fromNative(native); err != nil {
			return nil, err
		}
	}
	keys := make([]string, 0)
	for k := range labels {
		if strings.HasPrefix(k, LabelPrefix) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return s, nil
	}
	if s == nil {
		s = &Spec{Delay: DefaultDelay, Interval: DefaultInterval, Timeout: DefaultTimeout, Grace: DefaultGrace, Failures: DefaultFailures}
	}
	// Sorted, so that a task with two bad labels always gets the same
	// message.
	sort.Strings(keys)
	for _, k := range keys {
		if err := s.setLabel(k, labels[k]); err != nil {
			return nil, fmt.Errorf("%w: label %s=%q: %w", ErrInvalid, k, labels[k], err)
		}
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Spec) setLabel(key, v string) error {
	dur := func(d *time.Duration) error {
		x, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("want a Go duration such as 10s: %w", err)
		}
		if x < 0 {
			return errors.New("must not be negative")
		}
		*d = x
		return nil
	}
	switch strings.TrimPrefix(key, LabelPrefix) {
	case "type":
		switch t := Type(strings.ToLower(v)); t {
		case HTTP, TCP, Command:
			s.Type = t
		case "https":
			s.Type, s.Scheme = HTTP, "https"
		default:
			return errors.New("want http, tcp or cmd")
		}
	case "port":
		p, err := strconv.ParseUint(v, 10, 16)
		if err != nil || p == 0 {
			return errors.New("want a port number 1-65535")
		}
		s.Port = uint32(p)
	case "path":
		if !strings.HasPrefix(v, "/") {
			return errors.New("must start with /")
		}
		s.Path = v
	case "cmd":
		var cmd []string
		if err := json.Unmarshal([]byte(v), &cmd); err != nil {
			return fmt.Errorf("want a JSON array of strings: %w", err)
		}
		if len(cmd) == 0 {
			return errors.New("must not be empty")
		}
		s.Cmd = cmd
	case "interval":
		return dur(&s.Interval)
	case "timeout":
		return dur(&s.Timeout)
	case "delay":
		return dur(&s.Delay)
	case "grace":
		return dur(&s.Grace)
	case "failures":
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return errors.New("want a positive integer")
		}
		s.Failures = uint32(n)
	default:
		return errors.New("unknown health label")
	}
	return nil
}

func fromNative(h *mesos.HealthCheck) (*Spec, error) {
	s := &Spec{Failures: h.GetConsecutiveFailures()}
	for _, d := range []struct {
		field string
		v     float64
		to    *time.Duration
	}{
		{"delay_seconds", h.GetDelaySeconds(), &s.Delay},
		{"interval_seconds", h.GetIntervalSeconds(), &s.Interval},
		{"timeout_seconds", h.GetTimeoutSeconds(), &s.Timeout},
		{"grace_period_seconds", h.GetGracePeriodSeconds(), &s.Grace},
	} {
		var err error
		if *d.to, err = seconds("health_check."+d.field, d.v); err != nil {
			return nil, err
		}
	}
	switch h.GetType() {
	case mesos.HealthCheck_HTTP:
		s.Type = HTTP
		hh := h.GetHTTP()
		if hh == nil {
			return nil, fmt.Errorf("%w: health_check.type HTTP without health_check.http", ErrInvalid)
		}
		if err := checkPort("health_check.http.port", hh.Port); err != nil {
			return nil, err
		}
		s.Port, s.Path, s.Scheme, s.Statuses = hh.Port, hh.GetPath(), hh.GetScheme(), hh.Statuses
		if err := checkPath("health_check.http.path", s.Path); err != nil {
			return nil, err
		}
		if err := checkScheme("health_check.http.scheme", s.Scheme); err != nil {
			return nil, err
		}
		for _, code := range s.Statuses {
			if code < minStatus || code > maxStatus {
				return nil, fmt.Errorf("%w: health_check.http.statuses: %d is not an HTTP status code (%d-%d)",
					ErrInvalid, code, minStatus, maxStatus)
			}
		}
	case mesos.HealthCheck_TCP:
		s.Type = TCP
		if h.GetTCP() == nil {
			return nil, fmt.Errorf("%w: health_check.type TCP without health_check.tcp", ErrInvalid)
		}
		if err := checkPort("health_check.tcp.port", h.GetTCP().Port); err != nil {
			return nil, err
		}
		s.Port = h.GetTCP().Port
	case mesos.HealthCheck_COMMAND:
		s.Type = Command
		c := h.GetCommand()
		if c == nil {
			return nil, fmt.Errorf("%w: health_check.type COMMAND without health_check.command", ErrInvalid)
		}
		if c.GetShell() {
			s.Cmd = []string{"/bin/sh", "-c", c.GetValue()}
		} else {
			s.Cmd = append([]string{c.GetValue()}, c.Arguments...)
		}
	default:
		return nil, fmt.Errorf("%w: health_check.type %s is not supported", ErrInvalid, h.GetType())
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// validate checks the spec as a whole, once the native field and the labels
// are merged, and fills in the defaults that depend on the type. Each field
// was checked where it was read, with its own name; this catches what only
// the combination gets wrong.
func (s *Spec) validate() error {
	switch s.Type {
	case HTTP, TCP:
		if s.Port == 0 {
			return fmt.Errorf("%w: a %s check needs a port (health.port)", ErrInvalid, s.Type)
		}
		if err := checkPort("health.port", s.Port); err != nil {
			return err
		}
	case Command:
		if len(s.Cmd) == 0 || s.Cmd[0] == "" {
			return fmt.Errorf("%w: a cmd check needs a command (health.cmd)", ErrInvalid)
		}
	case "":
		return fmt.Errorf("%w: health.type is missing (http, tcp or cmd)", ErrInvalid)
	}
	if s.Path == "" {
		s.Path = "/"
	}
	if err := checkPath("health.path", s.Path); err != nil {
		return err
	}
	if s.Scheme == "" {
		s.Scheme = "http"
	}
	if s.Interval <= 0 {
		return fmt.Errorf("%w: interval must be positive", ErrInvalid)
	}
	if s.Failures == 0 {
		s.Failures = DefaultFailures
	}
	return nil
}
