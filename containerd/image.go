package containerd

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/sirupsen/logrus"
)

// ImageResult says how EnsureImageFor made an image available.
type ImageResult struct {
	// Pulled is true when a pull ran (possibly shared with other tasks)
	// and succeeded.
	Pulled bool
	// LocalFallback is true when the pull failed but the image was
	// present locally, and the task did not force the pull: the local
	// copy is used. PullError is the pull's failure.
	LocalFallback bool
	PullError     error
}

// Message is a sentence for the task's next status update, or "" when
// there is nothing to say.
func (r ImageResult) Message() string {
	if r.LocalFallback {
		return fmt.Sprintf("pull failed, using the image present locally: %v", r.PullError)
	}
	return ""
}

// EnsureImage makes the image present locally, pulling it only when it is
// absent or force is set. It is EnsureImageFor without a task id.
func (c *Client) EnsureImage(ctx context.Context, ref string, force bool) error {
	_, err := c.EnsureImageFor(ctx, "", ref, force)
	return err
}

// EnsureImageFor makes the image present locally for the task taskID,
// with Mesos's force_pull semantics (src/slave/containerizer/docker.cpp,
// src/docker/docker.cpp Docker::pull): without force an image present
// locally is used as it is, with force it is always pulled.
//
// Every caller needing the same image (by normalised reference) shares one
// pull, which Pulls reports with its waiting task ids and progress. A
// caller whose ctx ends returns at once with ctx's error while the pull
// goes on for the others; the pull is cancelled when no caller waits any
// more, fails when it makes no progress for Config.PullStallTimeout, and is
// bounded by Config.PullTimeout.
//
// Registry credentials come from Config.DockerConfigPath, read at each
// pull, for the image's own registry only. A failed pull of an image that
// turns out to be present locally (another pull or an import made it
// meanwhile) is not an error unless force is set: the result says so.
func (c *Client) EnsureImageFor(ctx context.Context, taskID, ref string, force bool) (ImageResult, error) {
	named, err := normalizeRef(ref)
	if err != nil {
		return ImageResult{}, err
	}
	if !force {
		present, err := c.imagePresent(ctx, ref)
		if err != nil {
			return ImageResult{}, err
		}
		if present {
			return ImageResult{}, nil
		}
	}
	pullErr := c.pulls.wait(ctx, named, taskID)
	if pullErr == nil {
		return ImageResult{Pulled: true}, nil
	}
	if ctx.Err() != nil || force {
		return ImageResult{}, pullErr
	}
	present, err := c.imagePresent(ctx, ref)
	if err != nil || !present {
		return ImageResult{}, pullErr
	}
	c.log.WithFields(logrus.Fields{"task_id": taskID, "image": ref}).WithError(pullErr).
		Warn("image pull failed; using the image present locally")
	return ImageResult{LocalFallback: true, PullError: pullErr}, nil
}

// Pulls returns the image pulls in flight, oldest first.
func (c *Client) Pulls() []PullInfo { return c.pulls.snapshot() }

// normalizeRef returns the full form of ref that keys the shared pulls:
// "busybox" and "docker.io/library/busybox:latest" are one pull.
func normalizeRef(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	return reference.TagNameOnly(named).String(), nil
}

func (c *Client) imagePresent(ctx context.Context, ref string) (bool, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.api.ImageInspect(ctx, ref)
	return present(err, "image "+ref)
}

// pull is the pullFunc of the client's coordinator: one ImagePull with the
// registry's credentials, its stream read to the end.
func (c *Client) pull(ctx context.Context, ref string, progress func(*jsonmessage.JSONMessage)) error {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	log := c.log.WithField("image", ref)
	auth, err := registryAuth(c.dockerConfig, named)
	if err != nil {
		return fmt.Errorf("pull image %s: registry credentials: %w", ref, err)
	}
	start := time.Now()
	log.WithField("authenticated", auth != "").Info("pulling image")
	rc, err := c.stream.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: auth})
	if err != nil {
		return fmt.Errorf("pull image %s: %w", ref, err)
	}
	defer rc.Close()
	// The pull only completes if the stream is read to its end.
	if err := readPullStream(rc, progress); err != nil {
		return fmt.Errorf("pull image %s: %w", ref, err)
	}
	log.WithField("duration", time.Since(start).String()).Info("pulled image")
	return nil
}

// DeleteImage removes an image by reference or id, without force, pruning
// untagged parents. An image that does not exist is not an error; an image
// still used by a container fails with an error for which IsConflict is true.
func (c *Client) DeleteImage(ctx context.Context, ref string) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.api.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true})
	if err == nil || IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("delete image %s: %w", ref, err)
}

// ImportBinaryImage creates the image ref from a single-layer filesystem that
// holds the given host files and nothing else but a minimal skeleton (/tmp,
// /etc/passwd, /etc/group, the sandbox mount point). files maps a path inside
// the image (e.g. "/task") to a host path; each file is installed with mode
// 0755. changes are Dockerfile instructions applied to the image config, e.g.
// `ENTRYPOINT ["/task"]`.
//
// This is how tests and the demo get images on hosts without a registry; the
// files must be static binaries, since the image has no libc.
func (c *Client) ImportBinaryImage(ctx context.Context, ref string, files map[string]string, changes []string) error {
	layer, err := binaryLayer(files)
	if err != nil {
		return fmt.Errorf("import image %s: %w", ref, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.pullTimeout)
	defer cancel()
	rc, err := c.stream.ImageImport(ctx,
		image.ImportSource{Source: bytes.NewReader(layer), SourceName: "-"},
		ref, image.ImportOptions{Changes: changes})
	if err != nil {
		return fmt.Errorf("import image %s: %w", ref, err)
	}
	defer rc.Close()
	if err := readPullStream(rc, nil); err != nil {
		return fmt.Errorf("import image %s: %w", ref, err)
	}
	return nil
}

// binaryLayer builds the tar for ImportBinaryImage in memory.
func binaryLayer(files map[string]string) ([]byte, error) {
	// A fixed time keeps the layer identical for identical inputs.
	mtime := time.Unix(0, 0)
	skeleton := map[string][]byte{
		"etc/passwd": []byte("root:x:0:0:root:/:/bin/sh\n"),
		"etc/group":  []byte("root:x:0:\n"),
	}
	dirs := map[string]int64{
		"tmp":               0o1777,
		"etc":               0o755,
		"mnt":               0o755,
		"mnt/mesos":         0o755,
		"mnt/mesos/sandbox": 0o755,
	}
	targets := make(map[string]string, len(files))
	for target, host := range files {
		name := path.Clean(strings.TrimPrefix(target, "/"))
		if name == "." || name == ".." || strings.HasPrefix(name, "../") {
			return nil, fmt.Errorf("bad path %q in image", target)
		}
		targets[name] = host
		delete(skeleton, name)
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if _, ok := dirs[d]; !ok {
				dirs[d] = 0o755
			}
		}
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// Sorted, so that every directory comes before what it holds.
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		hdr := &tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: dirs[d], ModTime: mtime}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("write tar: %w", err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(skeleton)) {
		if err := writeTarFile(tw, name, 0o644, mtime, skeleton[name]); err != nil {
			return nil, err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(targets)) {
		data, err := os.ReadFile(targets[name])
		if err != nil {
			return nil, fmt.Errorf("read %s for /%s: %w", targets[name], name, err)
		}
		if err := writeTarFile(tw, name, 0o755, mtime, data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write tar: %w", err)
	}
	return buf.Bytes(), nil
}

func writeTarFile(tw *tar.Writer, name string, mode int64, mtime time.Time, data []byte) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write tar header for %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("write tar data for %s: %w", name, err)
	}
	return nil
}

// ImageConfig is the part of an image's configuration that decides how its
// container's first process runs. The start gate needs it to compute the
// argv Docker would have run, since the gate replaces ENTRYPOINT and CMD.
type ImageConfig struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
}

// ImageConfig returns the run configuration of a local image. An image that
// is not present fails with an error for which IsNotFound is true.
func (c *Client) ImageConfig(ctx context.Context, ref string) (ImageConfig, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.api.ImageInspect(ctx, ref)
	if err != nil {
		return ImageConfig{}, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	cfg := resp.Config
	if cfg == nil {
		return ImageConfig{}, nil
	}
	return ImageConfig{
		Entrypoint: slices.Clone(cfg.Entrypoint),
		Cmd:        slices.Clone(cfg.Cmd),
		Env:        slices.Clone(cfg.Env),
		WorkingDir: cfg.WorkingDir,
		User:       cfg.User,
	}, nil
}
