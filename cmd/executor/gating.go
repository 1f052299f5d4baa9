package main

import (
	"context"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/cni"
	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/gate"
	"github.com/mdx-executor/mdx/hooks"
	"github.com/mdx-executor/mdx/policy"
	"github.com/mdx-executor/mdx/prestart"
	"github.com/mdx-executor/mdx/reaper"
	"github.com/mdx-executor/mdx/task"
)

// cniCacheRoot keeps CNI attachment results across executor restarts (the
// sandbox is new for every executor run), per framework and executor, so
// that a relaunched executor can DEL what its predecessor attached.
const cniCacheRoot = "/var/lib/mdx/cni"

// startGating makes the start gates, the CNI client and the hook runner from
// the operator's policy, and DELs the attachments a killed predecessor left.
// It returns nil (no gated launches: CNI tasks fail, no hooks run) when the
// gate cannot be made, saying why.
func startGating(ctx context.Context, cfg Config, pol policy.Policy, rp *reaper.Reaper, dc *containerd.Client, log *logrus.Entry) *task.Gating {
	gates, err := gate.New(gate.Config{Dir: filepath.Join(cfg.Agent.Sandbox, "gates")})
	if err != nil {
		log.WithError(err).Error("cannot make start gates: CNI networks and prestart hooks are unavailable")
		return nil
	}
	cacheDir := filepath.Join(cniCacheRoot, filepath.Base(cfg.Agent.FrameworkID), filepath.Base(cfg.Agent.ExecutorID))
	cc, err := cni.New(cni.Config{ConfDir: pol.CNIConfDir, BinDir: pol.CNIBinDir, CacheDir: cacheDir}, rp, log.WithField("component", "cni"))
	if err != nil {
		log.WithError(err).Error("cannot set up CNI: CNI networks are unavailable")
		cc = nil
	}
	hr, err := hooks.New(hooks.Config{Dir: pol.HooksDir}, rp, log.WithField("component", "hooks"))
	if err != nil {
		log.WithError(err).Error("cannot set up the operator's hooks: prestart hooks are unavailable")
		hr = nil
	}
	if cc != nil {
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := cc.Sweep(sctx, func(id string) bool {
			ictx, cancel := context.WithTimeout(sctx, 10*time.Second)
			defer cancel()
			_, err := dc.Inspect(ictx, id)
			return err == nil || !containerd.IsNotFound(err)
		})
		cancel()
		if err != nil {
			log.WithError(err).Warn("CNI DEL of attachments left by an earlier executor failed for some containers")
		}
	}
	return &task.Gating{Gates: gates, Launcher: prestart.New(dc, cc, hr, log), Images: dc}
}
