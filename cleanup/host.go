package cleanup

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/mdx-executor/mdx/containerd"
)

// HostAPI is what the operator's one-shot host sweep (`executor cleanup`)
// needs from the Docker adapter; *containerd.Client implements it.
type HostAPI interface {
	List(ctx context.Context, labels map[string]string, all bool) ([]containerd.Summary, error)
	InspectStorage(ctx context.Context, id string) (containerd.StorageInfo, error)
	RemoveContainer(ctx context.Context, id string, force bool) error
	RemoveVolume(ctx context.Context, name string) error
	ListImages(ctx context.Context, dangling bool) ([]containerd.ImageSummary, error)
	ImagesInUse(ctx context.Context) (map[string]bool, error)
	DeleteImage(ctx context.Context, ref string) error
}

// HostSweepOptions configures PlanHostSweep and ApplyHostAction.
type HostSweepOptions struct {
	// FrameworkID, when set, limits the sweep to that framework's
	// containers.
	FrameworkID string
	// MinAge leaves alone exited containers of live executors that
	// finished less than this ago, and dangling images younger than this:
	// a live executor removes its own after its remove delay, once it has
	// reported the exit.
	MinAge time.Duration
	// DanglingImages adds untagged images no container uses.
	DanglingImages bool
	// ProcRoot and DockerRootDir locate /proc and the daemon's data root;
	// defaults /proc and /var/lib/docker.
	ProcRoot      string
	DockerRootDir string
	// Now is the time the ages are measured from; zero means time.Now().
	Now time.Time
}

// Kinds of HostAction.
const (
	KindContainer = "container" // exited or dead, with the ownership labels
	KindOrphan    = "orphan"    // not exited, but its executor is dead
	KindImage     = "image"     // dangling and unused
)

// HostAction is one removal the host sweep proposes, and after
// ApplyHostAction its result.
type HostAction struct {
	Kind        string
	ID          string
	Name        string // container name or image tag, for people
	TaskID      string
	FrameworkID string
	ExecutorID  string
	State       string
	Reason      string
	Force       bool // orphans are running: removal kills them

	Removed bool
	Err     string
	Holders []Holder // processes holding a busy container's mounts
}

// PlanHostSweep lists what an operator's host sweep would remove: every
// exited or dead container with the project's ownership labels (except
// recently finished ones of live executors), every other container with
// those labels whose executor is proven dead, and with DanglingImages the
// dangling images no container uses. A container without the labels is
// never listed. Nothing is changed. skipped counts labelled containers left
// alone (live executors' running or fresh ones).
func PlanHostSweep(ctx context.Context, d HostAPI, opts HostSweepOptions) (actions []HostAction, skipped int, err error) {
	opts = opts.withDefaults()
	live := Liveness{ProcRoot: opts.ProcRoot}
	list, err := d.List(ctx, map[string]string{containerd.LabelFramework: opts.FrameworkID}, true)
	if err != nil {
		return nil, 0, err
	}
	for _, c := range list {
		a := HostAction{
			ID: c.ID, TaskID: c.Labels[containerd.LabelTask], FrameworkID: c.Labels[containerd.LabelFramework],
			ExecutorID: c.Labels[containerd.LabelExecutor], State: c.State,
		}
		if len(c.Names) > 0 {
			a.Name = c.Names[0]
		}
		if a.FrameworkID == "" || a.ExecutorID == "" {
			skipped++
			continue
		}
		dead, why := instanceVerdict(live, c)
		alive := !dead
		switch c.State {
		case "exited", "dead":
			a.Kind = KindContainer
			if !alive {
				a.Reason = c.State + "; " + why
				break
			}
			info, err := d.InspectStorage(ctx, c.ID)
			if err != nil {
				if containerd.IsNotFound(err) {
					continue // removed since the list
				}
				return nil, 0, err
			}
			ago := opts.Now.Sub(info.FinishedAt)
			if !info.FinishedAt.IsZero() && ago < opts.MinAge {
				skipped++
				continue
			}
			a.Reason = fmt.Sprintf("%s; finished %s ago; executor alive: %s", c.State, ago.Round(time.Second), why)
			if info.FinishedAt.IsZero() {
				a.Reason = fmt.Sprintf("%s; executor alive: %s", c.State, why)
			}
		case "removing":
			skipped++
			continue
		default:
			if alive {
				skipped++
				continue
			}
			a.Kind, a.Force, a.Reason = KindOrphan, true, why
		}
		actions = append(actions, a)
	}
	if opts.DanglingImages {
		imgs, err := d.ListImages(ctx, true)
		if err != nil {
			return nil, 0, err
		}
		inUse, err := d.ImagesInUse(ctx)
		if err != nil {
			return nil, 0, err
		}
		for _, im := range imgs {
			if len(im.RepoTags) > 0 || inUse[im.ID] || opts.Now.Sub(im.Created) < opts.MinAge {
				continue
			}
			actions = append(actions, HostAction{
				Kind: KindImage, ID: im.ID, Name: "<none>",
				Reason: fmt.Sprintf("dangling, unused, %.1f MB, created %s ago", float64(im.Size)/1e6, opts.Now.Sub(im.Created).Round(time.Minute)),
			})
		}
	}
	sort.SliceStable(actions, func(i, j int) bool { return kindOrder(actions[i].Kind) < kindOrder(actions[j].Kind) })
	return actions, skipped, nil
}

func kindOrder(k string) int {
	switch k {
	case KindContainer:
		return 0
	case KindOrphan:
		return 1
	}
	return 2
}

// ApplyHostAction carries out one planned removal, re-checking first that
// the container still carries the labels (and, for an orphan, that its
// executor is still dead): time has passed since the plan.
func ApplyHostAction(ctx context.Context, d HostAPI, a *HostAction, opts HostSweepOptions) {
	opts = opts.withDefaults()
	if a.Kind == KindImage {
		if err := d.DeleteImage(ctx, a.ID); err != nil {
			a.Err = err.Error()
			return
		}
		a.Removed = true
		return
	}
	info, err := d.InspectStorage(ctx, a.ID)
	if err != nil {
		if containerd.IsNotFound(err) {
			a.Removed = true // gone meanwhile: what was wanted
			return
		}
		a.Err = err.Error()
		return
	}
	if info.Labels[containerd.LabelFramework] == "" || info.Labels[containerd.LabelExecutor] == "" {
		a.Err = fmt.Sprintf("no ownership labels any more: %v", ErrNotOwned)
		return
	}
	if a.Kind == KindOrphan {
		if err := checkOrphan(Liveness{ProcRoot: opts.ProcRoot}, info); err != nil {
			a.Err = err.Error()
			return
		}
	}
	err = d.RemoveContainer(ctx, a.ID, a.Force)
	switch classify(err) {
	case outDone:
		a.Removed = true
		for _, v := range info.Volumes {
			if anonVolume.MatchString(v) {
				_ = d.RemoveVolume(ctx, v) // best effort; the daemon usually took it
			}
		}
	case outBusy:
		a.Err = err.Error()
		a.Holders, _ = ContainerHolders(opts.ProcRoot, opts.DockerRootDir, info)
	default:
		a.Err = err.Error()
	}
}

// ContainerHolders looks for processes in other mount namespaces that hold
// one of the container's mounts (see FindHolders), from its inspect.
func ContainerHolders(procRoot, dockerRoot string, info containerd.StorageInfo) ([]Holder, error) {
	if procRoot == "" {
		procRoot = DefaultProcRoot
	}
	if dockerRoot == "" {
		dockerRoot = DefaultDockerRootDir
	}
	return FindHolders(procRoot, storageNeedles(info, info.ID, dockerRoot))
}

func (o HostSweepOptions) withDefaults() HostSweepOptions {
	if o.ProcRoot == "" {
		o.ProcRoot = DefaultProcRoot
	}
	if o.DockerRootDir == "" {
		o.DockerRootDir = DefaultDockerRootDir
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	return o
}
