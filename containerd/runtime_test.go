package containerd_test

import (
	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/task"
)

// The task manager drives the Docker adapter only through task.Runtime.
var _ task.Runtime = (*containerd.Client)(nil)
