package agent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// executorURL builds the API endpoint. MESOS_AGENT_ENDPOINT ("ip:port") is the
// documented source; MESOS_SLAVE_PID ("slave(1)@ip:port") is what the C++
// library uses and also names the libprocess id needed on a domain socket.
//
// Every part is checked here, so that a malformed value (a framework can set
// the executor's environment) fails the start with an error naming the
// variable instead of the first connect with a URL error.
func executorURL(endpoint, pid string, domainSocket bool) (string, error) {
	id, addr, addrVar := "slave(1)", endpoint, "MESOS_AGENT_ENDPOINT"
	if pid != "" {
		i := strings.IndexByte(pid, '@')
		if i <= 0 || i == len(pid)-1 {
			return "", fmt.Errorf("MESOS_SLAVE_PID=%q: want id@ip:port", pid)
		}
		id = pid[:i]
		if !validProcessID(id) {
			return "", fmt.Errorf("MESOS_SLAVE_PID=%q: process id %q: want letters, digits and ()_.-", pid, id)
		}
		if addr == "" {
			addr, addrVar = pid[i+1:], "MESOS_SLAVE_PID"
		}
	}
	var s string
	if domainSocket {
		// The agent serves only /slave(N)/api/v1/executor on its domain
		// socket and answers 403 to the plain /api/v1/executor.
		s = "http://localhost/" + id + "/api/v1/executor"
	} else {
		if addr == "" {
			return "", errors.New("neither MESOS_AGENT_ENDPOINT nor MESOS_SLAVE_PID is set")
		}
		hostPort, err := checkHostPort(addr)
		if err != nil {
			val := endpoint
			if addrVar == "MESOS_SLAVE_PID" {
				val = pid
			}
			return "", fmt.Errorf("%s=%q: agent endpoint %q: %w", addrVar, val, addr, err)
		}
		s = "http://" + hostPort + "/api/v1/executor"
	}
	// Belt and braces: the parts are checked, so net/http must read the
	// URL back as an absolute http URL with a host and no query.
	if u, err := url.Parse(s); err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("agent endpoint gives the unusable URL %q", s)
	}
	return s, nil
}

// checkHostPort checks "host:port" with host an IP address (IPv6 in
// brackets, without a zone) or a DNS name, and port a number in 1-65535. It
// returns the canonical "host:port".
func checkHostPort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 || port[0] == '+' {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return "", fmt.Errorf("host %q: an IPv6 zone is not supported", host)
		}
		return net.JoinHostPort(ip.String(), strconv.FormatUint(p, 10)), nil
	}
	if !validHostname(host) {
		return "", fmt.Errorf("host %q is neither an IP address nor a host name", host)
	}
	return net.JoinHostPort(host, strconv.FormatUint(p, 10)), nil
}

// validHostname reports whether h is a DNS name by RFC 1123: dot-separated
// labels of letters, digits and inner hyphens (underscores too, which some
// sites use), 1-63 bytes each, at most 253 in all.
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// validProcessID reports whether id can be a libprocess id such as
// "slave(1)", which becomes the first path segment on a domain socket.
func validProcessID(id string) bool {
	if len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("()_.-", c) >= 0) {
			return false
		}
	}
	return id != ""
}
