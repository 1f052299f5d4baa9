package agent

import "errors"

var (
	// ErrDisconnected is returned by Run when the link to the agent is lost
	// and the framework does not checkpoint, so the agent will not wait for
	// the executor to come back (the executor must shut down).
	ErrDisconnected = errors.New("lost connection to the agent and checkpointing is off")
	// ErrRecoveryTimeout is returned by Run when the agent stayed
	// unreachable for MESOS_RECOVERY_TIMEOUT from the first disconnect.
	ErrRecoveryTimeout = errors.New("agent did not come back within the recovery timeout")
	// ErrUnknownExecutor is returned by Run when the agent answers SUBSCRIBE
	// with 400: it does not know this framework or executor any more, and
	// retrying cannot help.
	ErrUnknownExecutor = errors.New("agent rejected SUBSCRIBE")
	// ErrBadEnvironment is returned by ConfigFromEnv when a required
	// MESOS_* variable is missing or malformed.
	ErrBadEnvironment = errors.New("bad Mesos executor environment")
)
