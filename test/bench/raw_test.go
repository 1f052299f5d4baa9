package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/containerd/containerdtest"
	"github.com/mdx-executor/mdx/task"
)

// benchResources is the resource part of every raw benchmark container: what
// the executor's own parser (task.ResourceSpec) makes of cpus 0.01 and mem 32
// under the executor's default flags (no --cpu-quota, --pids-limit 4096), so
// the baseline cannot drift from the executor's container shape.
func benchResources() (containerd.Spec, error) {
	ti := &mesos.TaskInfo{Resources: []mesos.Resource{
		{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 0.01}},
		{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 32}},
	}}
	return task.ResourceSpec(ti, task.Policy{PidsLimit: 4096})
}

// rawRunner creates and starts containers through the Docker API directly,
// with the shape the executor gives a task's container: the same image,
// command, init, resources, ownership labels, environment and sandbox bind
// mount. Its containers carry their own framework id, by which the cleanup
// finds them.
type rawRunner struct {
	dc      *containerd.Client
	image   string
	fw      string
	sandbox string // parent of the per-container sandbox directories
}

// newRawRunner connects a client of its own to Docker, as a separate program
// would, and registers the removal of everything it creates.
func newRawRunner(b *testing.B, s setup) *rawRunner {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	dc, err := containerd.New(ctx, containerd.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "mdx-bench-raw-")
	if err != nil {
		b.Fatal(err)
	}
	r := &rawRunner{dc: dc, image: s.image, fw: "bench-raw-" + containerdtest.RandHex(4), sandbox: dir}
	b.Cleanup(func() {
		if err := removeByLabel(dc, containerd.LabelFramework, r.fw); err != nil {
			b.Errorf("remove the raw containers: %v", err)
		}
		_ = dc.Close()
		_ = os.RemoveAll(dir)
	})
	return r
}

// spec is the container the executor would create for a task with id and
// the test program's args.
func (r *rawRunner) spec(id string, args ...string) (containerd.Spec, error) {
	dir := filepath.Join(r.sandbox, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return containerd.Spec{}, err
	}
	name := containerd.ContainerName(r.fw, "raw", id)
	res, err := benchResources()
	if err != nil {
		return containerd.Spec{}, err
	}
	return containerd.Spec{
		Name:  name,
		Image: r.image,
		Cmd:   args,
		Env: []string{
			"MESOS_TASK_ID=" + id,
			"MESOS_SANDBOX=" + containerd.SandboxMountPoint,
			"MESOS_EXECUTOR_ID=raw",
			"MESOS_FRAMEWORK_ID=" + r.fw,
			"MESOS_CONTAINER_NAME=" + name,
		},
		Labels: map[string]string{
			containerd.LabelFramework:   r.fw,
			containerd.LabelExecutor:    "raw",
			containerd.LabelAgent:       "raw",
			containerd.LabelTask:        id,
			containerd.LabelInstance:    "raw",
			containerd.LabelPID:         strconv.Itoa(os.Getpid()),
			containerd.LabelBootID:      "raw",
			containerd.LabelCreatedUnix: strconv.FormatInt(time.Now().Unix(), 10),
		},
		Network:           "bridge",
		Mounts:            []containerd.Mount{{HostPath: dir, ContainerPath: containerd.SandboxMountPoint}},
		Init:              true,
		CPUShares:         res.CPUShares,
		CPUPeriod:         res.CPUPeriod,
		CPUQuota:          res.CPUQuota,
		MemoryBytes:       res.MemoryBytes,
		MemoryReservation: res.MemoryReservation,
		PidsLimit:         res.PidsLimit,
	}, nil
}

// run creates and starts one container and returns how long the two calls
// took; preparing the spec is not timed.
func (r *rawRunner) run(ctx context.Context, id string, args ...string) (time.Duration, error) {
	spec, err := r.spec(id, args...)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	cid, err := r.dc.Create(ctx, spec)
	if err != nil {
		return 0, err
	}
	if err := r.dc.Start(ctx, cid); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// removeAll removes every container of the runner.
func (r *rawRunner) removeAll() error {
	return removeByLabel(r.dc, containerd.LabelFramework, r.fw)
}

// dieWatch records when Docker's "die" event of each container of one
// framework reaches a plain API client: Docker's own exit -> event latency,
// the floor under the executor's exit -> update latency.
type dieWatch struct {
	mu   sync.Mutex
	seen map[string]dieSeen // by container id
	err  error
}

// dieSeen is when a plain client got a container's die event, and when its
// inspect of the container after the event returned: the two Docker steps
// the executor's exit path starts with.
type dieSeen struct {
	event, inspected time.Time
}

// watchDies subscribes to the die events of the containers labelled with
// framework fw until the benchmark ends.
func watchDies(b *testing.B, fw string) *dieWatch {
	b.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		b.Fatal(err)
	}
	f := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("event", string(events.ActionDie)),
		filters.Arg("label", containerd.LabelFramework+"="+fw),
	)
	ctx, cancel := context.WithCancel(context.Background())
	// Since makes the daemon replay what happened while the stream was
	// being opened.
	msgs, errs := cli.Events(ctx, events.ListOptions{Filters: f, Since: time.Now().UTC().Format(time.RFC3339Nano)})
	w := &dieWatch{seen: map[string]dieSeen{}}
	done := make(chan struct{})
	var inspects sync.WaitGroup
	go func() {
		defer close(done)
		for {
			select {
			case m := <-msgs:
				now := time.Now()
				w.mu.Lock()
				_, dup := w.seen[m.Actor.ID]
				if !dup {
					w.seen[m.Actor.ID] = dieSeen{event: now}
				}
				w.mu.Unlock()
				if dup {
					continue
				}
				// Inspected off the reader, as the executor does not
				// either hold its events stream up.
				inspects.Add(1)
				go func(id string) {
					defer inspects.Done()
					if _, err := cli.ContainerInspect(ctx, id); err != nil {
						return
					}
					now := time.Now()
					w.mu.Lock()
					d := w.seen[id]
					d.inspected = now
					w.seen[id] = d
					w.mu.Unlock()
				}(m.Actor.ID)
			case err := <-errs:
				if ctx.Err() == nil {
					w.mu.Lock()
					w.err = fmt.Errorf("docker events: %w", err)
					w.mu.Unlock()
				}
				return
			}
		}
	}()
	b.Cleanup(func() {
		cancel()
		<-done
		inspects.Wait()
		_ = cli.Close()
	})
	return w
}

// received returns what the watcher saw of container id's die.
func (w *dieWatch) received(id string) (dieSeen, bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	d, ok := w.seen[id]
	return d, ok, w.err
}

func jsonArray(s []string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a []string always marshals
	}
	return string(b)
}
