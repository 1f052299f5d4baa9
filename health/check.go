package health

import (
	"fmt"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// CheckSpec is one task's generic check (TaskInfo.check). Unlike a health
// check it has no failure threshold and no grace period: its results are only
// reported, never acted on.
type CheckSpec struct {
	Type     Type
	Port     uint32   // HTTP and TCP
	Path     string   // HTTP, default "/"; always plain http, as in Mesos
	Cmd      []string // Command: exec form run inside the container
	Delay    time.Duration
	Interval time.Duration
	Timeout  time.Duration // 0 = no timeout
}

// ParseCheck builds a generic check from TaskInfo.check, with the Mesos
// defaults (delay 15s, interval 10s, timeout 20s) for absent fields. It
// returns nil, nil when c is nil. Errors wrap ErrInvalid and name the field.
func ParseCheck(c *mesos.CheckInfo) (*CheckSpec, error) {
	if c == nil {
		return nil, nil
	}
	s := &CheckSpec{}
	var err error
	if s.Delay, err = seconds("check.delay_seconds", c.GetDelaySeconds()); err != nil {
		return nil, err
	}
	if s.Interval, err = seconds("check.interval_seconds", c.GetIntervalSeconds()); err != nil {
		return nil, err
	}
	if s.Timeout, err = seconds("check.timeout_seconds", c.GetTimeoutSeconds()); err != nil {
		return nil, err
	}
	if s.Interval == 0 {
		return nil, fmt.Errorf("%w: check.interval_seconds must be positive", ErrInvalid)
	}

	switch c.GetType() {
	case mesos.CheckInfo_COMMAND:
		s.Type = Command
		if c.Command == nil {
			return nil, fmt.Errorf("%w: check.type COMMAND without check.command", ErrInvalid)
		}
		ci := c.Command.Command
		if ci.GetValue() == "" {
			return nil, fmt.Errorf("%w: check.command.command.value is empty", ErrInvalid)
		}
		// Same argv as the health check's (spec.go), which follows the
		// Mesos Docker executor's `docker exec` wrapping.
		if ci.GetShell() {
			s.Cmd = []string{"/bin/sh", "-c", ci.GetValue()}
		} else {
			s.Cmd = append([]string{ci.GetValue()}, ci.Arguments...)
		}
	case mesos.CheckInfo_HTTP:
		s.Type = HTTP
		if c.HTTP == nil {
			return nil, fmt.Errorf("%w: check.type HTTP without check.http", ErrInvalid)
		}
		if err := checkPort("check.http.port", c.HTTP.Port); err != nil {
			return nil, err
		}
		s.Port, s.Path = c.HTTP.Port, c.HTTP.GetPath()
		if s.Path == "" {
			s.Path = "/"
		}
		if err := checkPath("check.http.path", s.Path); err != nil {
			return nil, err
		}
	case mesos.CheckInfo_TCP:
		s.Type = TCP
		if c.TCP == nil {
			return nil, fmt.Errorf("%w: check.type TCP without check.tcp", ErrInvalid)
		}
		if err := checkPort("check.tcp.port", c.TCP.Port); err != nil {
			return nil, err
		}
		s.Port = c.TCP.Port
	default:
		return nil, fmt.Errorf("%w: check.type %s is not supported (COMMAND, HTTP or TCP)", ErrInvalid, c.GetType())
	}
	return s, nil
}

// InitialStatus is the check_status a task's updates carry before the check's
// first result: the type and an empty result of that type, as Mesos sends
// it. A check that times out reports the same value.
func (s *CheckSpec) InitialStatus() mesos.CheckStatusInfo {
	return emptyStatus(s.Type)
}

func emptyStatus(t Type) mesos.CheckStatusInfo {
	var st mesos.CheckStatusInfo
	switch t {
	case Command:
		st.Type = mesos.CheckInfo_COMMAND.Enum()
		st.Command = &mesos.CheckStatusInfo_Command{}
	case HTTP:
		st.Type = mesos.CheckInfo_HTTP.Enum()
		st.HTTP = &mesos.CheckStatusInfo_Http{}
	case TCP:
		st.Type = mesos.CheckInfo_TCP.Enum()
		st.TCP = &mesos.CheckStatusInfo_Tcp{}
	}
	return st
}
