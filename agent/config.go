package agent

import (
	"errors"
	"fmt"
	"io"
	"time"

	mesostime "github.com/mesos/mesos-go/api/v1/lib/time"
)

// Wire formats for calls and the event stream.
const (
	ContentTypeProtobuf = "application/x-protobuf"
	ContentTypeJSON     = "application/json"
)

// TokenEnv is the variable that carries the executor's JWT when executor
// authentication is on. The executor unsets it after reading so that no child
// process and no container can see it.
const TokenEnv = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"

// Config is the agent link's configuration, read from the environment a Mesos
// agent gives a custom executor (see ConfigFromEnv). Zero durations mean the
// documented defaults.
type Config struct {
	FrameworkID string
	ExecutorID  string
	AgentID     string // MESOS_SLAVE_ID; informational
	// URL is the executor API endpoint, e.g. http://10.0.0.1:5051/api/v1/executor.
	URL string
	// DomainSocket, when set, is a unix socket the agent serves the executor
	// API on (--http_executor_domain_sockets); URL's path is then
	// /slave(N)/api/v1/executor because the agent refuses other paths there.
	DomainSocket string
	Directory    string // MESOS_DIRECTORY: the sandbox on the host
	Sandbox      string // MESOS_SANDBOX: the sandbox as the executor sees it

	Checkpoint bool
	// RecoveryTimeout bounds how long the executor keeps reconnecting after
	// the first disconnect (checkpointing only). Default 15m.
	RecoveryTimeout time.Duration
	// SubscriptionBackoffMax is the agent's executor_reregistration_timeout:
	// after an agent restart at least one SUBSCRIBE must land inside every
	// window of this length. Default 2s.
	SubscriptionBackoffMax time.Duration
	// ShutdownGracePeriod is how long the agent waits after SHUTDOWN before it
	// destroys the executor. Default 5s.
	ShutdownGracePeriod time.Duration
	// RegistrationTimeout bounds the first SUBSCRIBE attempts. Default 1m,
	// the agent's executor_registration_timeout.
	RegistrationTimeout time.Duration

	AuthToken   Secret // never logged, never passed on
	ContentType string // ContentTypeProtobuf (default) or ContentTypeJSON
	// MaxFrameSize caps one RecordIO frame; a LAUNCH with a large
	// TaskInfo.data passes mesos-go's 4 MiB default. Default 64 MiB.
	MaxFrameSize int
	// HeartbeatInterval is how often a HEARTBEAT call probes the connection:
	// the agent's own heartbeat comes only every 30 minutes and it never
	// notices a dead stream. Default 30s; negative disables.
	HeartbeatInterval time.Duration
	// CallTimeout bounds one non-SUBSCRIBE call. Default 10s.
	CallTimeout time.Duration
	// SubscribedTimeout is how long after a 200 to SUBSCRIBE the SUBSCRIBED
	// event may take; then the stream is closed and SUBSCRIBE sent again.
	// Default 1s, the period of Mesos's doReliableRegistration.
	SubscribedTimeout time.Duration
}

// Secret is a credential that must never reach a log line or an error
// message. fmt prints it as "[redacted]" under every verb (%v, %+v and %#v of
// a Config included, and the bad-verb path that would otherwise dump the raw
// string), and so does encoding/json. Use string(s) where the value itself is
// needed, i.e. for the Authorization header only.
type Secret string

// String returns "[redacted]", or "" when no secret is set so that logs still
// show whether there is one.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// Format implements fmt.Formatter; it wins over String and GoString for
// every verb.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// MarshalText keeps the secret out of JSON (and logrus's JSON formatter).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.RecoveryTimeout, 15*time.Minute)
	def(&c.SubscriptionBackoffMax, 2*time.Second)
	def(&c.ShutdownGracePeriod, 5*time.Second)
	def(&c.RegistrationTimeout, time.Minute)
	def(&c.HeartbeatInterval, 30*time.Second)
	def(&c.CallTimeout, 10*time.Second)
	def(&c.SubscribedTimeout, time.Second)
	if c.ContentType == "" {
		c.ContentType = ContentTypeProtobuf
	}
	if c.MaxFrameSize <= 0 {
		c.MaxFrameSize = 64 << 20
	}
	return c
}

// ConfigFromEnv reads the environment a Mesos agent sets for an executor.
// Durations are in stout's form ("2secs", "1.5secs", "15mins"); Go durations
// ("2s") are accepted too.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	var errs []error
	required := func(name string) string {
		v := getenv(name)
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is not set", name))
		}
		return v
	}
	duration := func(name string) time.Duration {
		v := getenv(name)
		if v == "" {
			return 0
		}
		d, err := ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
		} else if d < 0 {
			// time.ParseDuration accepts "-1s", and a stout value too big
			// for int64 can convert to a negative Duration; either would
			// make a deadline that has already passed (an immediate
			// recovery timeout).
			errs = append(errs, fmt.Errorf("%s=%q: negative or out of range", name, v))
		}
		return d
	}
	c := Config{
		FrameworkID:            required("MESOS_FRAMEWORK_ID"),
		ExecutorID:             required("MESOS_EXECUTOR_ID"),
		AgentID:                getenv("MESOS_SLAVE_ID"),
		Directory:              getenv("MESOS_DIRECTORY"),
		Sandbox:                getenv("MESOS_SANDBOX"),
		DomainSocket:           getenv("MESOS_DOMAIN_SOCKET"),
		RecoveryTimeout:        duration("MESOS_RECOVERY_TIMEOUT"),
		SubscriptionBackoffMax: duration("MESOS_SUBSCRIPTION_BACKOFF_MAX"),
		ShutdownGracePeriod:    duration("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"),
		AuthToken:              Secret(getenv(TokenEnv)),
	}
	switch v := getenv("MESOS_CHECKPOINT"); v {
	case "1":
		c.Checkpoint = true
	case "0", "":
	default:
		errs = append(errs, fmt.Errorf("MESOS_CHECKPOINT=%q: want \"1\" or \"0\"", v))
	}
	if c.Sandbox == "" {
		c.Sandbox = c.Directory
	}
	if c.Directory == "" {
		c.Directory = c.Sandbox
	}
	if c.Sandbox == "" {
		errs = append(errs, errors.New("neither MESOS_SANDBOX nor MESOS_DIRECTORY is set"))
	}
	url, err := executorURL(getenv("MESOS_AGENT_ENDPOINT"), getenv("MESOS_SLAVE_PID"), c.DomainSocket != "")
	if err != nil {
		errs = append(errs, err)
	}
	c.URL = url
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("%w: %w", ErrBadEnvironment, errors.Join(errs...))
	}
	return c, nil
}

// ParseDuration parses a stout duration ("1.5secs", "2mins") or, failing
// that, a Go duration ("1500ms").
func ParseDuration(s string) (time.Duration, error) {
	if d, err := mesostime.ParseDuration(s); err == nil {
		return d, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want a number and a unit such as 2secs, 1.5mins or 500ms", s)
	}
	return d, nil
}
