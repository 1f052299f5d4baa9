package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// maxBody bounds how much of an HTTP probe's response body is read. Only the
// status code matters; reading a little lets small bodies finish cleanly.
const maxBody = 4 << 10

// probe is what one check does, common to health checks and generic checks.
type probe struct {
	typ      Type
	port     uint32
	path     string
	scheme   string
	statuses []uint32
	cmd      []string
}

// observation is the raw outcome of one probe, judged afterwards as a health
// result or as a check status.
type observation struct {
	// err is set when the probe could not produce a result: a timeout, a
	// failed exec, an HTTP transport error, or a refused TCP connection.
	err      error
	timedOut bool

	exitCode   int    // Command, when err == nil
	output     []byte // Command
	statusCode int    // HTTP, when err == nil
	redirected string // HTTP: the URL of the last redirect followed, if any
	connected  bool   // TCP
}

// Bounds of an HTTP probe besides its timeout.
const (
	// maxRedirects is curl's default --max-redirs, as the Mesos HTTP
	// check runs curl -L.
	maxRedirects = 50
	// maxHeaderBytes bounds the response headers a probe reads, so an
	// endpoint sending endless headers costs little memory before the
	// timeout.
	maxHeaderBytes = 64 << 10
)

// probeHost is where every HTTP and TCP probe goes, in the container's own
// network namespace: its loopback, as in the Mesos checkers (DEFAULT_DOMAIN
// in src/checks/checker_process.cpp).
const probeHost = "127.0.0.1"

// prober runs the probes of one check against one container. It is used by
// that check's goroutine only.
type prober struct {
	probe     probe
	target    Target
	ns        *nsHandle // HTTP and TCP: where the probes dial from
	execer    Execer
	maxOutput int
	dialer    net.Dialer
	client    *http.Client // HTTP only
	// followed is the last redirect the current HTTP probe followed.
	followed string
}

// newProber returns the prober of one check. ns is the task's network
// namespace, which HTTP and TCP probes need.
func newProber(p probe, t Target, ns *nsHandle, execer Execer, maxOutput int) *prober {
	if p.path == "" {
		p.path = "/"
	}
	pr := &prober{probe: p, target: t, ns: ns, execer: execer, maxOutput: maxOutput}
	if p.typ == HTTP {
		pr.client = &http.Client{
			Transport: &http.Transport{
				// No Proxy: HTTP(S)_PROXY of the executor must not reroute a
				// probe of a local container.
				DialContext: pr.dial,
				// Like `curl -k` in the Mesos checkers: the task's
				// certificate is for its public name, not for its IP.
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // as curl -k
				// A fresh connection per probe, as curl makes: a kept-alive
				// one would hide a server that no longer accepts.
				DisableKeepAlives:      true,
				MaxResponseHeaderBytes: maxHeaderBytes,
			},
			CheckRedirect: pr.checkRedirect,
		}
	}
	return pr
}

// checkRedirect follows redirects as `curl -L` does in the Mesos HTTP check,
// which runs inside the task's network namespace, but only to the
// container's own loopback: a redirect elsewhere (another host, a name to
// resolve) is not followed and its 3xx status is the probe's result, as
// curl without -L would report it. Dialling only ever happens inside the
// container's namespace (dial), so even a followed redirect to 127.0.0.1
// reaches the container, never the host.
//
// The client calls it from the goroutine running the probe.
func (p *prober) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if ip := net.ParseIP(req.URL.Hostname()); ip == nil || !ip.IsLoopback() {
		return http.ErrUseLastResponse
	}
	p.followed = req.URL.String()
	return nil
}

// where qualifies a probe's description, so an operator reading
// "127.0.0.1" knows whose loopback it was.
func (p *prober) where() string {
	if p.target.Pid > 0 {
		return fmt.Sprintf(" (network namespace of pid %d)", p.target.Pid)
	}
	return ""
}

// dial connects from the container's network namespace, and only to its
// loopback.
func (p *prober) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := loopbackOnly(addr); err != nil {
		return nil, err
	}
	if p.ns == nil {
		return nil, errors.New("no network namespace to probe from")
	}
	return p.ns.dial(ctx, &p.dialer, network, addr)
}

// describe names what the probe does, for messages.
func (p *prober) describe() string {
	switch p.probe.typ {
	case HTTP:
		return "HTTP GET " + p.url() + p.where()
	case TCP:
		return "TCP connect " + p.addr() + p.where()
	default:
		return "command"
	}
}

func (p *prober) addr() string {
	return net.JoinHostPort(probeHost, strconv.FormatUint(uint64(p.probe.port), 10))
}

func (p *prober) url() string {
	scheme := p.probe.scheme
	if scheme == "" {
		scheme = "http"
	}
	return scheme + "://" + p.addr() + p.probe.path
}

// run performs one probe. timeout 0 means none. ctx ending (the check was
// stopped) is not a timeout.
func (p *prober) run(ctx context.Context, timeout time.Duration) observation {
	pctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var obs observation
	switch p.probe.typ {
	case HTTP:
		obs = p.runHTTP(pctx)
	case TCP:
		obs = p.runTCP(pctx)
	case Command:
		obs = p.runCommand(pctx)
	default:
		obs.err = fmt.Errorf("unknown probe type %q", p.probe.typ)
	}
	if obs.err != nil && ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded) {
		obs.timedOut = true
	}
	return obs
}

func (p *prober) runHTTP(ctx context.Context) observation {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url(), nil)
	if err != nil {
		return observation{err: err}
	}
	req.Header.Set("User-Agent", "mdx-health-check")
	p.followed = ""
	resp, err := p.client.Do(req)
	if err != nil {
		return observation{err: err, redirected: p.followed}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	_ = resp.Body.Close()
	return observation{statusCode: resp.StatusCode}
}

func (p *prober) runTCP(ctx context.Context) observation {
	conn, err := p.dial(ctx, "tcp", p.addr())
	if err != nil {
		return observation{err: err}
	}
	_ = conn.Close()
	return observation{connected: true}
}

func (p *prober) runCommand(ctx context.Context) observation {
	if p.execer == nil {
		return observation{err: errors.New("no Execer: the supervisor was built without one")}
	}
	code, out, err := p.execer.Exec(ctx, p.target.ContainerID, p.probe.cmd, p.maxOutput)
	if err != nil {
		return observation{err: err, output: out}
	}
	return observation{exitCode: code, output: out}
}

// healthy judges obs as a health check (Mesos: HTTP 200-399 unless statuses
// are given, TCP connected, command exit 0) and says what happened.
func (p *prober) healthy(obs observation, timeout time.Duration) (bool, string) {
	what := p.describe()
	if obs.timedOut {
		return false, fmt.Sprintf("%s timed out after %v", what, timeout)
	}
	switch p.probe.typ {
	case HTTP:
		if obs.err != nil && obs.redirected != "" {
			return false, fmt.Sprintf("%s failed after a redirect to %s: %s", what, obs.redirected, shortErr(obs.err))
		}
		if obs.err != nil {
			return false, fmt.Sprintf("%s failed: %s", what, shortErr(obs.err))
		}
		ok := obs.statusCode >= 200 && obs.statusCode < 400
		if len(p.probe.statuses) > 0 {
			ok = slices.Contains(p.probe.statuses, uint32(obs.statusCode))
		}
		return ok, fmt.Sprintf("%s returned %d", what, obs.statusCode)
	case TCP:
		if obs.err != nil {
			return false, fmt.Sprintf("%s failed: %s", what, shortErr(obs.err))
		}
		return true, what + " succeeded"
	default:
		if obs.err != nil {
			return false, fmt.Sprintf("command could not run: %s", obs.err)
		}
		msg := fmt.Sprintf("command exited with %d", obs.exitCode)
		if out := strings.TrimSpace(string(obs.output)); out != "" {
			msg += ": " + out
		}
		return obs.exitCode == 0, msg
	}
}

// checkStatus judges obs as a generic check, with Mesos's rules: the result
// of the check when it could be performed, and an empty result of the right
// type on a timeout or when the probe could not run.
func (p *prober) checkStatus(obs observation) mesos.CheckStatusInfo {
	st := emptyStatus(p.probe.typ)
	if obs.timedOut {
		return st
	}
	switch p.probe.typ {
	case Command:
		if obs.err == nil {
			code := int32(obs.exitCode)
			st.Command.ExitCode = &code
		}
	case HTTP:
		if obs.err == nil {
			code := uint32(obs.statusCode)
			st.HTTP.StatusCode = &code
		}
	case TCP:
		ok := obs.connected
		st.TCP.Succeeded = &ok
	}
	return st
}

// shortErr drops the layers that repeat what the message already says (the
// URL, "dial tcp ADDR") and keeps the cause, e.g. "connection refused".
func shortErr(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	return err.Error()
}
