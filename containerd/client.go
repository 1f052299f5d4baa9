package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/docker/docker/client"
	"github.com/docker/go-connections/tlsconfig"
	"github.com/sirupsen/logrus"
)

// Defaults for the zero values of Config.
const (
	DefaultCallTimeout = 30 * time.Second
	DefaultPullTimeout = 10 * time.Minute
	// DefaultPullStallTimeout fails a pull that has made no progress
	// for this long.
	DefaultPullStallTimeout = 5 * time.Minute
)

// Connection pool sizes for the request/response client. Bursts (a launch
// group, a reconcile after reconnect) reuse idle connections instead of
// dialling one per request, and the cap keeps a runaway caller from opening
// thousands of sockets to dockerd. Streams never use this pool: see
// Client.stream.
const (
	maxIdleConnsPerHost = 16
	maxConnsPerHost     = 64
	idleConnTimeout     = 90 * time.Second
)

// Config configures a Client. Zero values mean the documented defaults.
type Config struct {
	// Host is the Docker Engine address, e.g. "unix:///var/run/docker.sock".
	// "" uses DOCKER_HOST, or unix:///var/run/docker.sock when that is unset.
	Host string
	// CallTimeout bounds each short API call (inspect, create, start, kill,
	// remove, list). Default DefaultCallTimeout.
	CallTimeout time.Duration
	// PullTimeout bounds one image pull or import. Default DefaultPullTimeout.
	PullTimeout time.Duration
	// PullStallTimeout fails a pull that makes no progress (no new layer
	// status, no new bytes) for this long. Default DefaultPullStallTimeout;
	// negative disables it.
	PullStallTimeout time.Duration
	// DockerConfigPath is the operator's Docker config.json holding
	// registry credentials (the policy file's docker-config). It is read
	// at every pull, so rotated credentials apply to the next one; ""
	// pulls anonymously.
	DockerConfigPath string
	// Observe, when set, receives the latency of every API call.
	Observe CallObserver
	// Log is the Docker log configuration of every container whose Spec
	// sets none; the zero value means json-file, DefaultLogMaxSize,
	// DefaultLogMaxFile. New refuses an invalid one.
	Log LogConfig
}

// Client drives the Docker Engine for the executor. It is safe for concurrent
// use; it holds no per-container state.
type Client struct {
	log         *logrus.Entry
	host        string
	callTimeout time.Duration
	pullTimeout time.Duration
	// dockerConfig is Config.DockerConfigPath.
	dockerConfig string
	logConfig    LogConfig

	// api carries the short request/response calls over a bounded pool.
	api *client.Client
	// stream carries the calls that hold a connection for minutes or for a
	// container's lifetime (events, logs follow, pull, import). Each needs its
	// own connection; on the bounded pool enough followed logs would starve
	// every inspect and kill behind them.
	stream *client.Client
	// conns counts the open connections of both clients.
	conns *ConnCounter
	// logSocket is the daemon's Unix socket when it listens on one: log
	// streams then go over connections of their own (openLogStream).
	logSocket string
	observe   CallObserver

	pulls      *pullCoordinator
	reconnects atomic.Uint64
}

// DaemonInfo is what the executor logs and checks about the Docker daemon at
// start.
type DaemonInfo struct {
	ServerVersion string
	APIVersion    string // negotiated API version used by this client
	Driver        string // storage driver, e.g. "overlay2", "fuse-overlayfs"
	DriverStatus  [][2]string
	CgroupVersion string // "1" or "2"
	CgroupDriver  string // "cgroupfs" or "systemd"
	DockerRootDir string
	KernelVersion string
	InitBinary    string
	MemoryLimit   bool // the daemon can enforce memory limits
	SwapLimit     bool
}

// New connects to the Docker daemon and pings it, so that a daemon that is down
// or a wrong DOCKER_HOST fails the executor at start rather than at the first
// task. The caller must Close the client. A nil log discards the client's logs.
func New(ctx context.Context, cfg Config, log *logrus.Entry) (*Client, error) {
	if log == nil {
		discard := logrus.New()
		discard.SetOutput(io.Discard)
		log = logrus.NewEntry(discard)
	}
	host := cfg.Host
	if host == "" {
		host = os.Getenv(client.EnvOverrideHost)
	}
	if host == "" {
		host = client.DefaultDockerHost
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.PullTimeout <= 0 {
		cfg.PullTimeout = DefaultPullTimeout
	}
	switch {
	case cfg.PullStallTimeout == 0:
		cfg.PullStallTimeout = DefaultPullStallTimeout
	case cfg.PullStallTimeout < 0:
		cfg.PullStallTimeout = 0
	}
	if err := cfg.Log.Validate(); err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}

	conns := new(ConnCounter)
	api, err := newDockerClient(host, cfg.Observe, conns, &http.Transport{
		MaxIdleConns:        maxIdleConnsPerHost,
		MaxIdleConnsPerHost: maxIdleConnsPerHost,
		MaxConnsPerHost:     maxConnsPerHost,
		IdleConnTimeout:     idleConnTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("docker client for %s: %w", host, err)
	}
	stream, err := newDockerClient(host, cfg.Observe, conns, &http.Transport{
		MaxIdleConns:        4,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     idleConnTimeout,
		// One stream per running task (its followed logs) lives as long
		// as the container: small buffers keep that cheap; the output
		// of a task is rarely fast enough to notice.
		ReadBufferSize:  2 << 10,
		WriteBufferSize: 1 << 10,
	})
	if err != nil {
		_ = api.Close()
		return nil, fmt.Errorf("docker client for %s: %w", host, err)
	}

	c := &Client{
		log:          log,
		host:         host,
		callTimeout:  cfg.CallTimeout,
		pullTimeout:  cfg.PullTimeout,
		dockerConfig: cfg.DockerConfigPath,
		api:          api,
		stream:       stream,
		conns:        conns,
		logConfig:    cfg.Log.withDefaults(),
		observe:      cfg.Observe,
	}
	if path, ok := strings.CutPrefix(host, "unix://"); ok {
		c.logSocket = path
	}
	c.pulls = newPullCoordinator(c.pull, cfg.PullTimeout, cfg.PullStallTimeout)

	pctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	ping, err := api.Ping(pctx)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("docker daemon at %s not reachable: %w", host, err)
	}
	// Negotiate both clients from the one ping; the stream client would
	// otherwise ping again lazily on its first call.
	api.NegotiateAPIVersionPing(ping)
	stream.NegotiateAPIVersionPing(ping)
	return c, nil
}

// newDockerClient builds one Docker client on tr. It takes the TLS settings
// from DOCKER_CERT_PATH/DOCKER_TLS_VERIFY itself rather than through
// client.FromEnv, because FromEnv replaces the transport (and so the pool
// settings) when TLS is configured.
func newDockerClient(host string, observe CallObserver, conns *ConnCounter, tr *http.Transport) (*client.Client, error) {
	if certPath := os.Getenv(client.EnvOverrideCertPath); certPath != "" {
		tlsc, err := tlsconfig.Client(tlsconfig.Options{
			CAFile:             filepath.Join(certPath, "ca.pem"),
			CertFile:           filepath.Join(certPath, "cert.pem"),
			KeyFile:            filepath.Join(certPath, "key.pem"),
			InsecureSkipVerify: os.Getenv(client.EnvTLSVerify) == "",
		})
		if err != nil {
			return nil, fmt.Errorf("tls config from %s: %w", certPath, err)
		}
		tr.TLSClientConfig = tlsc
	}
	hc := &http.Client{Transport: tr, CheckRedirect: client.CheckRedirect}
	c, err := client.NewClientWithOpts(
		client.WithHTTPClient(hc),
		// WithHost configures the dialer (unix socket, tcp) on tr, which
		// it can only do while hc.Transport is the *http.Transport itself.
		client.WithHost(host),
		client.WithVersionFromEnv(),
		client.WithAPIVersionNegotiation(),
	)
	if err != nil {
		return nil, err
	}
	// Count connections at the dialer WithHost configured, so /metrics
	// shows whether connections to the daemon grow with tasks.
	tr.DialContext = conns.Wrap(tr.DialContext)
	if observe != nil {
		// Wrapped only now, after WithHost has configured tr.
		hc.Transport = &observedTransport{base: tr, observe: observe}
	}
	return c, nil
}

// Close releases the client's idle connections. Streams in progress end when
// their contexts do.
func (c *Client) Close() error {
	return errors.Join(c.api.Close(), c.stream.Close())
}

// Host returns the daemon address the client talks to.
func (c *Client) Host() string { return c.host }

// APIVersion returns the Engine API version negotiated with the daemon.
func (c *Client) APIVersion() string { return c.api.ClientVersion() }

// OpenConnections is the number of connections to the daemon open now
// (hijacked exec streams excepted).
func (c *Client) OpenConnections() int64 { return c.conns.Open() }

// StreamReconnects counts how many times an events stream was reopened after
// an error, over all WatchExits loops of this client.
func (c *Client) StreamReconnects() uint64 { return c.reconnects.Load() }

// DaemonInfo asks the daemon for its version, storage driver and cgroup setup.
func (c *Client) DaemonInfo(ctx context.Context) (DaemonInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	info, err := c.api.Info(ctx)
	if err != nil {
		return DaemonInfo{}, fmt.Errorf("docker info: %w", err)
	}
	return DaemonInfo{
		ServerVersion: info.ServerVersion,
		APIVersion:    c.APIVersion(),
		Driver:        info.Driver,
		DriverStatus:  info.DriverStatus,
		CgroupVersion: info.CgroupVersion,
		CgroupDriver:  info.CgroupDriver,
		DockerRootDir: info.DockerRootDir,
		KernelVersion: info.KernelVersion,
		InitBinary:    info.InitBinary,
		MemoryLimit:   info.MemoryLimit,
		SwapLimit:     info.SwapLimit,
	}, nil
}

// call returns a context bounded by the short-call timeout.
func (c *Client) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.callTimeout)
}

// lifecycleTimeout bounds a container create or start. They set up mounts,
// cgroups and networking and, on a daemon busy with hundreds of other
// containers, legitimately take far longer than an inspect; the short-call
// deadline failed healthy launches under load.
const lifecycleTimeout = 2 * time.Minute

func (c *Client) lifecycleCall(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, max(c.callTimeout, lifecycleTimeout))
}

// SetDockerConfigPath sets the registry credentials file (the operator
// policy's docker-config), read at every pull. Call it before any pull: the
// policy is known only once the daemon has said where it stores containers.
func (c *Client) SetDockerConfigPath(path string) { c.dockerConfig = path }
