package containerd

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
	"github.com/sirupsen/logrus"
)

// Create creates (but does not start) the container described by spec and
// returns its id. A name that is already in use fails with an error for which
// IsConflict is true; the caller may then adopt the existing container after
// checking its labels.
func (c *Client) Create(ctx context.Context, spec Spec) (string, error) {
	if spec.Log.IsZero() {
		spec.Log = c.logConfig
	}
	cfg, hostCfg, netCfg, err := dockerConfig(spec)
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", spec.Name, err)
	}
	ctx, cancel := c.lifecycleCall(ctx)
	defer cancel()
	resp, err := c.api.ContainerCreate(ctx, cfg, hostCfg, netCfg, nil, spec.Name)
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", spec.Name, err)
	}
	for _, w := range resp.Warnings {
		c.log.WithFields(logrus.Fields{"container_id": resp.ID, "container_name": spec.Name}).
			Warnf("docker warning on create: %s", w)
	}
	return resp.ID, nil
}

// dockerConfig translates a Spec into the three structs of ContainerCreate. It
// does no I/O so that the translation can be tested without a daemon.
func dockerConfig(spec Spec) (*container.Config, *container.HostConfig, *network.NetworkingConfig, error) {
	if spec.Image == "" {
		return nil, nil, nil, fmt.Errorf("no image")
	}
	netMode := container.NetworkMode(spec.Network)
	if netMode == "" {
		netMode = network.NetworkBridge
	}

	cfg := &container.Config{
		Image:      spec.Image,
		Env:        slices.Clone(spec.Env),
		Labels:     spec.Labels,
		Hostname:   spec.Hostname,
		User:       spec.User,
		WorkingDir: spec.WorkingDir,
	}
	// A nil slice is left out of the request, and Docker then keeps the
	// image's ENTRYPOINT/CMD; an empty non-nil slice would clear them.
	if spec.Entrypoint != nil {
		cfg.Entrypoint = slices.Clone(spec.Entrypoint)
	}
	if spec.Cmd != nil {
		cfg.Cmd = slices.Clone(spec.Cmd)
	}

	// A zero Log here (a Spec translated without a Client) still gets the
	// package defaults: no container is created with an unbounded log.
	logCfg, err := spec.Log.docker()
	if err != nil {
		return nil, nil, nil, err
	}

	useInit := spec.Init
	hostCfg := &container.HostConfig{
		LogConfig:    logCfg,
		NetworkMode:  netMode,
		Init:         &useInit,
		Privileged:   spec.Privileged,
		PidMode:      container.PidMode(spec.PidMode),
		IpcMode:      container.IpcMode(spec.IpcMode),
		UTSMode:      container.UTSMode(spec.UTSMode),
		UsernsMode:   container.UsernsMode(spec.UsernsMode),
		CgroupnsMode: container.CgroupnsMode(spec.CgroupnsMode),
		Resources: container.Resources{
			CPUShares:    spec.CPUShares,
			CPUQuota:     spec.CPUQuota,
			CPUPeriod:    spec.CPUPeriod,
			Memory:       spec.MemoryBytes,
			CgroupParent: spec.CgroupParent,
			// Only a positive value goes out: Docker reads 0 as
			// "unset", and -1 (unlimited) is the daemon default.
			MemoryReservation: spec.MemoryReservation,
		},
	}

	if spec.PidsLimit > 0 {
		pl := spec.PidsLimit
		hostCfg.PidsLimit = &pl
	}

	if len(spec.Ports) > 0 {
		cfg.ExposedPorts = nat.PortSet{}
		// Host, none and container: modes have no port mapping of their own;
		// Docker would only warn that the bindings are discarded.
		publish := !netMode.IsHost() && !netMode.IsNone() && !netMode.IsContainer()
		if publish {
			hostCfg.PortBindings = nat.PortMap{}
		}
		for _, p := range spec.Ports {
			proto := strings.ToLower(p.Protocol)
			if proto == "" {
				proto = "tcp"
			}
			if proto != "tcp" && proto != "udp" && proto != "sctp" {
				return nil, nil, nil, fmt.Errorf("port %d: unknown protocol %q", p.ContainerPort, p.Protocol)
			}
			if p.ContainerPort == 0 || p.ContainerPort > 65535 || p.HostPort > 65535 {
				return nil, nil, nil, fmt.Errorf("port mapping %d->%d out of range", p.HostPort, p.ContainerPort)
			}
			port, err := nat.NewPort(proto, strconv.FormatUint(uint64(p.ContainerPort), 10))
			if err != nil {
				return nil, nil, nil, fmt.Errorf("port %d/%s: %w", p.ContainerPort, proto, err)
			}
			cfg.ExposedPorts[port] = struct{}{}
			if !publish {
				continue
			}
			hostPort := "" // Docker picks a free port
			if p.HostPort != 0 {
				hostPort = strconv.FormatUint(uint64(p.HostPort), 10)
			}
			hostCfg.PortBindings[port] = append(hostCfg.PortBindings[port], nat.PortBinding{HostPort: hostPort})
		}
	}

	// Mounts rather than Binds: a Binds string cannot carry a path with a
	// colon, and Binds silently creates a missing host directory (root-owned)
	// where Mounts fails, which is what a missing sandbox should do.
	for _, m := range spec.Mounts {
		if m.HostPath == "" || m.ContainerPath == "" {
			return nil, nil, nil, fmt.Errorf("mount %q -> %q: empty path", m.HostPath, m.ContainerPath)
		}
		hostCfg.Mounts = append(hostCfg.Mounts, mount.Mount{
			Type:     mount.TypeBind,
			Source:   m.HostPath,
			Target:   m.ContainerPath,
			ReadOnly: m.ReadOnly,
		})
	}

	var netCfg *network.NetworkingConfig
	if netMode.IsUserDefined() {
		netCfg = &network.NetworkingConfig{
			EndpointsConfig: map[string]*network.EndpointSettings{string(netMode): {}},
		}
	}
	return cfg, hostCfg, netCfg, nil
}

// Start starts a created container.
func (c *Client) Start(ctx context.Context, id string) error {
	ctx, cancel := c.lifecycleCall(ctx)
	defer cancel()
	if err := c.api.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	return nil
}

// Inspect returns the container's current state. A container that does not
// exist fails with an error for which IsNotFound is true.
func (c *Client) Inspect(ctx context.Context, id string) (Info, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.api.ContainerInspect(ctx, id)
	if err != nil {
		return Info{}, fmt.Errorf("inspect container %s: %w", id, err)
	}
	return infoFrom(resp), nil
}

// infoFrom copies what the executor needs out of an inspect response. Every
// pointer in it may be nil on some daemon version or state.
func infoFrom(resp container.InspectResponse) Info {
	var info Info
	if b := resp.ContainerJSONBase; b != nil {
		info.ID = b.ID
		info.Name = strings.TrimPrefix(b.Name, "/")
		info.LogPath = b.LogPath
		if s := b.State; s != nil {
			info.Running = s.Running
			info.Status = s.Status
			info.Pid = s.Pid
			info.ExitCode = s.ExitCode
			info.OOMKilled = s.OOMKilled
			info.Error = s.Error
			info.StartedAt = parseDockerTime(s.StartedAt)
			info.FinishedAt = parseDockerTime(s.FinishedAt)
		}
	}
	if cfg := resp.Config; cfg != nil {
		info.StopSignal = cfg.StopSignal
		info.Labels = cfg.Labels
	}
	if ns := resp.NetworkSettings; ns != nil {
		for _, ep := range ns.Networks {
			if ep != nil && ep.IPAddress != "" {
				info.IPs = append(info.IPs, ep.IPAddress)
			}
		}
		// Daemons before API 1.44 fill only the top-level address for the
		// default bridge in some versions; it is deprecated, not gone.
		if ip := ns.IPAddress; ip != "" { //nolint:staticcheck // SA1019: older daemons.
			info.IPs = append(info.IPs, ip)
		}
		slices.Sort(info.IPs)
		info.IPs = slices.Compact(info.IPs)
	}
	return info
}

// parseDockerTime parses Docker's RFC 3339 timestamps; Docker's "never" is
// 0001-01-01T00:00:00Z, which parses to the zero time.
func parseDockerTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Kill sends signal (e.g. "SIGTERM", "SIGKILL"; "" means SIGKILL) to the
// container's PID 1. A container that is not running or no longer exists is
// not an error: the caller wanted it stopped and it is.
func (c *Client) Kill(ctx context.Context, id, signal string) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	err := c.api.ContainerKill(ctx, id, signal)
	if err == nil || IsNotFound(err) || isNotRunning(err) {
		return nil
	}
	return fmt.Errorf("kill container %s with %s: %w", id, signal, err)
}

// Remove force-removes the container and its anonymous volumes. A container
// that is already gone, or whose removal another caller has started, is not
// an error.
func (c *Client) Remove(ctx context.Context, id string) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	err := c.api.ContainerRemove(ctx, id, container.RemoveOptions{RemoveVolumes: true, Force: true})
	if err == nil || IsNotFound(err) || isRemovalInProgress(err) {
		return nil
	}
	return fmt.Errorf("remove container %s: %w", id, err)
}
