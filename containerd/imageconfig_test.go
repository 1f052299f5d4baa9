package containerd_test

import (
	"slices"
	"testing"

	"github.com/mdx-executor/mdx/containerd"
)

// ImageConfig returns what the start gate needs to compute the argv Docker
// would run: the test image's ENTRYPOINT and CMD.
func TestImageConfig(t *testing.T) {
	t.Parallel()
	c, image := requireDocker(t)
	cfg, err := c.ImageConfig(t.Context(), image)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Entrypoint, []string{"/task"}) || !slices.Equal(cfg.Cmd, []string{"sleep", "1h"}) {
		t.Errorf("ImageConfig = %+v, want entrypoint [/task] and cmd [sleep 1h]", cfg)
	}
	if _, err := c.ImageConfig(t.Context(), "mdx-test/absent:nope"); !containerd.IsNotFound(err) {
		t.Errorf("absent image: %v, want a not-found error", err)
	}
}
