package containerd

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
)

// RemoveTimeout bounds one RemoveContainer call. It is longer than the
// short-call timeout because the daemon itself retries a busy filesystem
// for a while before it answers (EnsureRemoveAll: 50 x 100 ms per path;
// devicemapper used to try for 20 s).
const RemoveTimeout = 2 * time.Minute

// StorageInfo is what storage cleanup needs from one container inspect: its
// ownership labels, its state, and where its filesystem lives on the host.
type StorageInfo struct {
	ID         string
	Name       string
	Status     string // created, running, paused, restarting, exited, dead, removing
	Running    bool
	ImageID    string
	Labels     map[string]string
	Created    time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	// GraphDriver is the storage driver's name and its per-container data:
	// MergedDir, UpperDir, WorkDir, LowerDir for overlay2/fuse-overlayfs,
	// DeviceName, DeviceId for devicemapper. Empty with the containerd
	// snapshotter, which mounts the rootfs at
	// <DockerRootDir>/rootfs/<snapshotter>/<id> instead.
	GraphDriver     string
	GraphDriverData map[string]string
	// Volumes are the names of the Docker volumes mounted in the container
	// (anonymous ones have 64 hex digit names), for checking that the
	// removal took them along.
	Volumes []string
}

// PingDaemon asks the daemon whether it is up. It is how storage cleanup
// tells "the daemon is down" from "this call failed".
func (c *Client) PingDaemon(ctx context.Context) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	if _, err := c.api.Ping(ctx); err != nil {
		return fmt.Errorf("ping docker daemon: %w", err)
	}
	return nil
}

// InspectStorage inspects a container for storage cleanup. A container that
// does not exist fails with an error for which IsNotFound is true.
func (c *Client) InspectStorage(ctx context.Context, id string) (StorageInfo, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.api.ContainerInspect(ctx, id)
	if err != nil {
		return StorageInfo{}, fmt.Errorf("inspect container %s: %w", id, err)
	}
	return storageInfoFrom(resp), nil
}

func storageInfoFrom(resp container.InspectResponse) StorageInfo {
	var si StorageInfo
	if b := resp.ContainerJSONBase; b != nil {
		si.ID = b.ID
		si.Name = strings.TrimPrefix(b.Name, "/")
		si.ImageID = b.Image
		si.Created = parseDockerTime(b.Created)
		si.GraphDriver = b.GraphDriver.Name
		si.GraphDriverData = b.GraphDriver.Data
		if s := b.State; s != nil {
			si.Status = s.Status
			si.Running = s.Running
			si.StartedAt = parseDockerTime(s.StartedAt)
			si.FinishedAt = parseDockerTime(s.FinishedAt)
		}
	}
	if cfg := resp.Config; cfg != nil {
		si.Labels = cfg.Labels
	}
	for _, m := range resp.Mounts {
		if m.Type == mount.TypeVolume && m.Name != "" {
			si.Volumes = append(si.Volumes, m.Name)
		}
	}
	return si
}

// RemoveContainer removes a container by id together with its anonymous
// volumes. Unlike Remove it reports every outcome, so that the caller can
// tell them apart: IsNotFound for a container that is gone, IsConflict for
// "removal already in progress" and "container is running" (the latter only
// without force), and Docker's own message for a busy filesystem.
func (c *Client) RemoveContainer(ctx context.Context, id string, force bool) error {
	ctx, cancel := context.WithTimeout(ctx, max(RemoveTimeout, c.callTimeout))
	defer cancel()
	err := c.api.ContainerRemove(ctx, id, container.RemoveOptions{RemoveVolumes: true, Force: force})
	if err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	return nil
}

// RemoveVolume removes a volume without force. A volume that does not exist
// is not an error; one still used by a container fails with an error for
// which IsConflict is true.
func (c *Client) RemoveVolume(ctx context.Context, name string) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	err := c.api.VolumeRemove(ctx, name, false)
	if err == nil || IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("remove volume %s: %w", name, err)
}

// VolumeExists reports whether a volume of that name exists.
func (c *Client) VolumeExists(ctx context.Context, name string) (bool, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.api.VolumeInspect(ctx, name)
	return present(err, "volume "+name)
}

// ImageSummary is one local image.
type ImageSummary struct {
	ID       string
	RepoTags []string // none for a dangling image
	Created  time.Time
	Size     int64
}

// ListImages lists the local images; only dangling (untagged) ones when
// dangling is set.
func (c *Client) ListImages(ctx context.Context, dangling bool) ([]ImageSummary, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	opts := image.ListOptions{}
	if dangling {
		opts.Filters = filters.NewArgs(filters.Arg("dangling", "true"))
	}
	list, err := c.api.ImageList(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := make([]ImageSummary, 0, len(list))
	for _, s := range list {
		var tags []string
		for _, t := range s.RepoTags {
			if t != "<none>:<none>" {
				tags = append(tags, t)
			}
		}
		out = append(out, ImageSummary{ID: s.ID, RepoTags: tags, Created: time.Unix(s.Created, 0), Size: s.Size})
	}
	return out, nil
}

// ImageID resolves an image reference to the local image id. An image that
// is not present yields "" and no error.
func (c *Client) ImageID(ctx context.Context, ref string) (string, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.api.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return resp.ID, nil
	case IsNotFound(err):
		return "", nil
	default:
		return "", fmt.Errorf("inspect image %s: %w", ref, err)
	}
}

// ImagesInUse returns the ids of the images that any container on the host
// uses, running or not, whoever created it. Only image ids leave this
// method: the adapter never hands out containers it cannot prove to be the
// executor's own (see ErrNoLabels), but an image collector must respect
// everybody's.
func (c *Client) ImagesInUse(ctx context.Context) (map[string]bool, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	list, err := c.api.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("list containers for image use: %w", err)
	}
	used := make(map[string]bool, len(list))
	for _, s := range list {
		if s.ImageID != "" {
			used[s.ImageID] = true
		}
	}
	return used, nil
}
