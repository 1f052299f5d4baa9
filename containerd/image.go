package containerd

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/image"
)

// EnsureImage makes the image present locally, pulling it only when it is
// absent or force is set. Concurrent calls for one reference share one pull.
//
// The shared pull runs on a context detached from the callers' (bounded by
// Config.PullTimeout), so one caller giving up does not fail the others; a
// caller whose ctx ends stops waiting but the pull goes on.
func (c *Client) EnsureImage(ctx context.Context, ref string, force bool) error {
	if !force {
		present, err := c.imagePresent(ctx, ref)
		if err != nil {
			return err
		}
		if present {
			return nil
		}
	}
	pullCtx := context.WithoutCancel(ctx)
	ch := c.pulls.DoChan(ref, func() (any, error) {
		return nil, c.pull(pullCtx, ref)
	})
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return fmt.Errorf("pull image %s: %w", ref, ctx.Err())
	}
}

func (c *Client) imagePresent(ctx context.Context, ref string) (bool, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.api.ImageInspect(ctx, ref)
	return present(err, "image "+ref)
}

func (c *Client) pull(ctx context.Context, ref string) error {
	ctx, cancel := context.WithTimeout(ctx, c.pullTimeout)
	defer cancel()
	start := time.Now()
	c.log.WithField("image", ref).Info("pulling image")
	rc, err := c.stream.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return fmt.Errorf("pull image %s: %w", ref, err)
	}
	defer rc.Close()
	// The pull only completes if the stream is read to its end; a failure
	// after the response headers (unknown manifest, registry down) arrives
	// as an error message inside the stream, with status 200.
	if err := drainJSONStream(rc); err != nil {
		return fmt.Errorf("pull image %s: %w", ref, err)
	}
	c.log.WithField("image", ref).WithField("duration", time.Since(start).String()).Info("pulled image")
	return nil
}

// jsonStreamMessage is the part of Docker's progress messages (pull, import)
// that says whether the operation failed.
type jsonStreamMessage struct {
	Status      string `json:"status"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Error string `json:"error"`
}

// drainJSONStream reads a progress stream to its end and returns the first
// error message in it.
func drainJSONStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg jsonStreamMessage
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read progress stream: %w", err)
		}
		if msg.ErrorDetail != nil && msg.ErrorDetail.Message != "" {
			return errors.New(msg.ErrorDetail.Message)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
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
	if err := drainJSONStream(rc); err != nil {
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
