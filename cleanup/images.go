package cleanup

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/containerd"
)

// ImageAPI is the part of the Docker adapter image collection uses;
// *containerd.Client implements it.
type ImageAPI interface {
	ListImages(ctx context.Context, dangling bool) ([]containerd.ImageSummary, error)
	ImagesInUse(ctx context.Context) (map[string]bool, error)
	ImageID(ctx context.Context, ref string) (string, error)
	// DeleteImage removes an image without force; an image a container
	// uses fails with an error for which containerd.IsConflict is true.
	DeleteImage(ctx context.Context, ref string) error
}

// Defaults for the zero values of ImageConfig.
const (
	DefaultImageUnusedFor      = time.Hour
	DefaultImageInterval       = 10 * time.Minute
	DefaultImageInitialDelay   = 5 * time.Minute
	DefaultDanglingImageMinAge = time.Hour
)

// ImageConfig configures an ImageCollector. Zero values mean the documented
// defaults.
type ImageConfig struct {
	// UnusedFor is how long an image must have gone without a launch and
	// without any container on the host before it is removed. Default 1h.
	UnusedFor time.Duration
	// Interval between collections; default 10m, the first after
	// InitialDelay, default 5m.
	Interval     time.Duration
	InitialDelay time.Duration
	// Dangling also removes untagged images no container uses, once older
	// than DanglingMinAge (default 1h: a pull or build may be about to
	// tag or use a fresh one). Off by default: they may be anyone's.
	Dangling       bool
	DanglingMinAge time.Duration
	// Clock is the time source; nil means the wall clock.
	Clock Clock
}

// ImageReport is what one collection removed (or would have kept).
type ImageReport struct {
	Removed []string // references and ids removed
	Kept    []string // candidates kept because a container uses them
}

// ImageStats is a snapshot for /state and /metrics.
type ImageStats struct {
	Tracked   int // image references this executor has launched tasks from
	Removed   uint64
	LastRun   time.Time
	LastError string
}

// ImageCollector removes images this executor's tasks no longer use. Only
// references the executor launched from (see Used) are candidates, plus
// dangling images when configured; removal is never forced, so an image any
// container on the host uses, running or stopped, stays. Create it with
// NewImageCollector.
type ImageCollector struct {
	cfg   ImageConfig
	d     ImageAPI
	log   *logrus.Entry
	clock Clock

	// mu guards everything that follows.
	mu       sync.Mutex
	lastUsed map[string]time.Time // image reference -> last launch or seen in use
	stats    ImageStats
}

// NewImageCollector returns an ImageCollector.
func NewImageCollector(cfg ImageConfig, d ImageAPI, log *logrus.Entry) *ImageCollector {
	if cfg.UnusedFor <= 0 {
		cfg.UnusedFor = DefaultImageUnusedFor
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultImageInterval
	}
	if cfg.InitialDelay <= 0 {
		cfg.InitialDelay = DefaultImageInitialDelay
	}
	if cfg.DanglingMinAge <= 0 {
		cfg.DanglingMinAge = DefaultDanglingImageMinAge
	}
	if cfg.Clock == nil {
		cfg.Clock = wallClock{}
	}
	return &ImageCollector{cfg: cfg, d: d, log: log, clock: cfg.Clock, lastUsed: map[string]time.Time{}}
}

// Used records a launch from the image reference. The task manager calls it
// for every task before it makes sure the image is present, so that a
// collection running at the same time sees the use before it deletes.
func (c *ImageCollector) Used(imageRef string) {
	if imageRef == "" {
		return
	}
	c.mu.Lock()
	c.lastUsed[imageRef] = c.clock.Now()
	c.mu.Unlock()
}

// Run collects after InitialDelay and then every Interval until ctx ends;
// then it returns nil.
func (c *ImageCollector) Run(ctx context.Context) error {
	return runEvery(ctx, c.clock, c.cfg.InitialDelay, c.cfg.Interval, func(ctx context.Context) error {
		_, err := c.Collect(ctx)
		return err
	}, c.log, "image collection")
}

// Collect runs one collection now.
func (c *ImageCollector) Collect(ctx context.Context) (ImageReport, error) {
	var rep ImageReport
	inUse, err := c.d.ImagesInUse(ctx)
	if err != nil {
		// Without the in-use set nothing can be proven unused.
		return rep, c.finish(rep, fmt.Errorf("image collection: %w", err))
	}
	now := c.clock.Now()
	c.mu.Lock()
	snapshot := make(map[string]time.Time, len(c.lastUsed))
	for ref, t := range c.lastUsed {
		snapshot[ref] = t
	}
	c.mu.Unlock()

	refs := make([]string, 0, len(snapshot))
	for ref := range snapshot {
		refs = append(refs, ref)
	}
	sort.Strings(refs)
	var errs []error
	for _, ref := range refs {
		log := c.log.WithField("image", ref)
		id, err := c.d.ImageID(ctx, ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if id == "" {
			c.forget(ref, snapshot[ref]) // deleted by someone else
			continue
		}
		if inUse[id] {
			// Unused is counted from the last container, not the last
			// launch: a task may run for days.
			c.touch(ref, snapshot[ref], now)
			continue
		}
		if now.Sub(snapshot[ref]) < c.cfg.UnusedFor {
			continue
		}
		if !c.stillUnused(ref, snapshot[ref]) {
			continue // launched again meanwhile
		}
		if err := c.d.DeleteImage(ctx, ref); err != nil {
			if containerd.IsConflict(err) {
				// A container appeared since the list; it keeps it.
				log.WithError(err).Debug("image in use; kept")
				rep.Kept = append(rep.Kept, ref)
				continue
			}
			errs = append(errs, err)
			continue
		}
		c.forget(ref, snapshot[ref])
		rep.Removed = append(rep.Removed, ref)
		log.WithField("unused_for", now.Sub(snapshot[ref]).Round(time.Minute).String()).Info("removed an image no task used for the collection period")
	}
	for _, ref := range rep.Kept {
		c.touch(ref, snapshot[ref], now)
	}

	if c.cfg.Dangling {
		removed, kept, err := c.collectDangling(ctx, inUse, now)
		rep.Removed = append(rep.Removed, removed...)
		rep.Kept = append(rep.Kept, kept...)
		errs = append(errs, err)
	}
	return rep, c.finish(rep, errors.Join(errs...))
}

func (c *ImageCollector) collectDangling(ctx context.Context, inUse map[string]bool, now time.Time) (removed, kept []string, _ error) {
	list, err := c.d.ListImages(ctx, true)
	if err != nil {
		return nil, nil, fmt.Errorf("dangling image collection: %w", err)
	}
	var errs []error
	for _, im := range list {
		if len(im.RepoTags) > 0 || inUse[im.ID] || now.Sub(im.Created) < c.cfg.DanglingMinAge {
			continue
		}
		if err := c.d.DeleteImage(ctx, im.ID); err != nil {
			if containerd.IsConflict(err) {
				// In use, or the parent of another image.
				kept = append(kept, im.ID)
				continue
			}
			errs = append(errs, err)
			continue
		}
		removed = append(removed, im.ID)
		c.log.WithFields(logrus.Fields{"image_id": im.ID, "size_bytes": im.Size}).Info("removed a dangling image")
	}
	return removed, kept, errors.Join(errs...)
}

// stillUnused reports whether ref has not been used since the snapshot.
func (c *ImageCollector) stillUnused(ref string, seen time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.lastUsed[ref]
	return ok && t.Equal(seen)
}

// touch moves ref's last use to now unless a launch moved it meanwhile.
func (c *ImageCollector) touch(ref string, seen, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.lastUsed[ref]; ok && !t.After(seen) {
		c.lastUsed[ref] = now
	}
}

// forget drops ref unless a launch used it since the snapshot.
func (c *ImageCollector) forget(ref string, seen time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.lastUsed[ref]; ok && !t.After(seen) {
		delete(c.lastUsed, ref)
	}
}

func (c *ImageCollector) finish(rep ImageReport, err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Removed += uint64(len(rep.Removed))
	c.stats.LastRun = c.clock.Now()
	c.stats.LastError = ""
	if err != nil {
		c.stats.LastError = err.Error()
	}
	return err
}

// Stats returns a snapshot.
func (c *ImageCollector) Stats() ImageStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Tracked = len(c.lastUsed)
	return s
}

// Collectors returns the collector's Prometheus metrics.
func (c *ImageCollector) Collectors() []prometheus.Collector {
	const ns, sub = "mesos_executor", "cleanup"
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "images_removed_total",
			Help: "Images removed by the image collector."},
			func() float64 { return float64(c.Stats().Removed) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "images_tracked",
			Help: "Image references this executor launched tasks from and still tracks."},
			func() float64 { return float64(c.Stats().Tracked) }),
	}
}
