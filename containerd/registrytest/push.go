package registrytest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
)

const pushTimeout = 3 * time.Minute

var (
	rawOnce sync.Once
	raw     *client.Client
	rawErr  error
)

// rawDocker is a plain Docker client for what the executor never does (push,
// tag). Tests must not close it.
func rawDocker(t testing.TB) *client.Client {
	t.Helper()
	containerdtest.Docker(t) // skips or fails t without a daemon
	rawOnce.Do(func() { raw, rawErr = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation()) })
	if rawErr != nil {
		t.Fatal(rawErr)
	}
	return raw
}

// PushImage makes an image holding the project's static test program as
// /task and /bin/sh (ENTRYPOINT ["/task"], CMD ["sleep", "1h"]) and payload
// random bytes in /payload, so that its layer is unlike any other image's
// (a pull must download it) and its size is what the test needs. It pushes
// the image as ref (on r.Host, or a proxy in front of r) with r's
// credentials, removes the local copy, and returns the image id.
func (r *Registry) PushImage(t testing.TB, c *containerd.Client, ref string, payload int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pushTimeout)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "task")
	if err := containerdtest.BuildStatic(ctx, bin, "./test/taskbin"); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, payload)
	_, _ = io.ReadFull(rand.Reader, data)
	if err := os.WriteFile(filepath.Join(dir, "payload"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	err := c.ImportBinaryImage(ctx, ref,
		map[string]string{"/task": bin, "/bin/sh": bin, "/payload": filepath.Join(dir, "payload")},
		[]string{`ENTRYPOINT ["/task"]`, `CMD ["sleep", "1h"]`})
	if err != nil {
		t.Fatal(err)
	}
	id := ImageID(t, ref)
	if err := r.push(ctx, rawDocker(t), ref); err != nil {
		RemoveImage(t, ref)
		t.Fatal(err)
	}
	RemoveImage(t, ref)
	return id
}

func (r *Registry) push(ctx context.Context, d *client.Client, ref string) error {
	auth, err := registry.EncodeAuthConfig(registry.AuthConfig{Username: r.User, Password: r.Password})
	if err != nil {
		return err
	}
	rc, err := d.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: auth})
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var msg jsonmessage.JSONMessage
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("push %s: %w", ref, err)
		}
		if msg.Error != nil {
			return fmt.Errorf("push %s: %w", ref, msg.Error)
		}
	}
}

// ImageID returns the local image id of ref, or "" when it is absent.
func ImageID(t testing.TB, ref string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ins, err := rawDocker(t).ImageInspect(ctx, ref)
	if err != nil {
		if containerd.IsNotFound(err) {
			return ""
		}
		t.Fatalf("inspect %s: %v", ref, err)
	}
	return ins.ID
}

// Tag makes the local tag ref point at the image id.
func Tag(t testing.TB, id, ref string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rawDocker(t).ImageTag(ctx, id, ref); err != nil {
		t.Fatalf("tag %s as %s: %v", id, ref, err)
	}
}

// RemoveImage removes the local ref (a missing one is fine), pruning
// untagged parents.
func RemoveImage(t testing.TB, ref string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := rawDocker(t).ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true})
	if err != nil && !containerd.IsNotFound(err) {
		t.Errorf("remove image %s: %v", ref, err)
	}
}

// RemoveImageID removes an image by id, with every tag it has.
func RemoveImageID(t testing.TB, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := rawDocker(t).ImageRemove(ctx, id, image.RemoveOptions{Force: true, PruneChildren: true})
	if err != nil && !containerd.IsNotFound(err) {
		t.Errorf("remove image %s: %v", id, err)
	}
}
